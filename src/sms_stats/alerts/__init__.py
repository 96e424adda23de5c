"""Alerts and the daily digest: a room of its own that reads the run's records and the store.

`rules` (what to judge), `metrics` (the figures of an hour), `state` (what fires, kept in the
store), `engine` (judging: transitions and repeats), `digest` (yesterday, once a day) and `run`
(what the handler calls after a timer run). Nothing here is imported until a timer run ends.
"""
