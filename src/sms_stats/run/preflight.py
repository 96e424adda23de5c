"""Everything a run needs before its first API call, checked at once.

A function set up wrong should say everything that is wrong in its first invocation: a sink URL,
missing credentials and a scheduled run with nowhere to put its records are three problems in
one message, not three deployments in a row.
"""

from __future__ import annotations

from collections.abc import Mapping

from sms_stats.core.errors import ConfigError
from sms_stats.core.settings import Settings, load_settings
from sms_stats.deliver.sinks import Sink, build_each

NO_SINKS = (
    "SMS_STATS_SINKS: a scheduled run needs somewhere to put its records, and none is set "
    "(e.g. SMS_STATS_SINKS=file:///tmp/sms-stats or cos://<bucket-appid>/sms-stats); "
    "only HTTP queries may run without a sink"
)


def check(
    settings: Settings,
    *,
    scheduled: bool = False,
    credentials: bool = True,
    built: tuple[list[Sink], list[str]] | None = None,
) -> tuple[list[Sink], list[str]]:
    """(the sinks that could be built, every problem found).

    `credentials=False` for an offline check of a deployment, whose role injects them only at
    run time; `built` is `build_each(settings)` when the caller keeps it cached.
    """
    sinks, found = built if built is not None else build_each(settings)
    problems = list(found)
    if scheduled and not settings.sinks:
        problems.append(NO_SINKS)
    try:
        settings.credentials()
    except ConfigError as exc:
        if credentials and exc.message not in problems:
            problems.insert(0, exc.message)
        if not credentials:  # a COS sink reports them missing too: not a problem offline
            problems = [p for p in problems if p != exc.message]
    return sinks, problems


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings, or a ConfigError that also names every sink and credentials problem of
    the fields that did validate: a function set up wrong says it all in its first run."""
    return load_settings(environ, more_checks=lambda settings: check(settings)[1])
