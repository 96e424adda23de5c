"""What the four chat bots share: what a message says, how it is marked up and split into parts,
what was posted already, how a bot's answer is judged, and the sink base they all build on.

`notices` words an alert or the daily digest into the same summary a window of records gets.
A chat message is read by people, so it carries one window's figures for every app at once
(one message per window, not per record), in local time, with a rate instead of raw ratios.
Each platform (`wecom`, `dingtalk`, `feishu`, `slack`, here too) only says how a
part is rendered and whether a rendered part fits; everything else lives here, one job a module.
Nothing here is imported unless a chat sink is configured: a store-only run never loads it.
"""
