"""Getting records and notices to where they are wanted: the sinks built from
`SMS_STATS_SINKS`, signed webhooks, the four chat bots (`chat`), who takes which topic, the
shared HTTP transport, and the outbox that owes what could not be delivered yet.
"""
