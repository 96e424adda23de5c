"""Run a job: fetch every (app, window), turn answers into records, hand them to every sink.

What was collected is always delivered and returned, even when other fetches failed: a failed
app never costs the records of the apps that worked. The result says what failed, so the entry
can answer or raise (and SCF retry; keys and webhook ids are stable, so a retry duplicates nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .client import StatsClient
from .context import Invocation
from .errors import DeliveryError, SmsStatsError, UpstreamError
from .jobs import Job
from .log import logger
from .records import Record
from .settings import Settings
from .sinks import Delivery, Sink, deliver_all


@dataclass(frozen=True)
class FetchFailure:
    app_id: str
    window: str
    error: UpstreamError

    def to_dict(self) -> dict[str, Any]:
        return {
            "sms_sdk_app_id": self.app_id,
            "window": self.window,
            "attempts": self.error.attempts,
            **self.error.to_dict(),
        }


@dataclass
class RunResult:
    records: list[Record] = field(default_factory=list)
    failures: list[FetchFailure] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def failed_deliveries(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_deliveries

    def summary(self) -> dict[str, Any]:
        return {
            "records": [r.to_dict() for r in self.records],
            "failures": [f.to_dict() for f in self.failures],
            "deliveries": [d.to_dict() for d in self.deliveries],
            "ok": self.ok,
        }

    def error(self) -> SmsStatsError | None:
        """One exception that says everything that went wrong, or None."""
        if self.ok:
            return None
        parts = [
            f"app {f.app_id} window {f.window}: {f.error.code}: {f.error.message}"
            for f in self.failures
        ] + [
            f"delivery to {d.sink} of app {d.app_id} window {d.window}: {d.error}"
            for d in self.failed_deliveries
        ]
        total = len(self.records) + len(self.failures)
        head = (
            f"{len(self.failures)} of {total} fetches failed, "
            f"{len(self.failed_deliveries)} deliveries failed"
        )
        message = f"{head}: " + "; ".join(parts)
        if len(self.failures) == 1 and not self.failed_deliveries:
            only = self.failures[0].error
            return UpstreamError(
                message, code=only.code, request_id=only.request_id, attempts=only.attempts
            )
        if not self.failures:
            return DeliveryError(message)
        return SmsStatsError(message, code="FailedOperation.PartialFailure", status=502)


def run_job(
    job: Job,
    settings: Settings,
    invocation: Invocation,
    sinks: Sequence[Sink],
    *,
    clock: Callable[[], datetime] | None = None,
) -> RunResult:
    now = clock or (lambda: datetime.now(timezone.utc))
    client = StatsClient(settings, on_attempt=_log_attempt)
    result = RunResult()
    for app_id, window in job.tasks():
        try:
            counts = client.fetch(app_id, window, invocation.deadline)
        except UpstreamError as exc:
            result.failures.append(FetchFailure(app_id, str(window), exc))
            continue
        result.records.append(Record(app_id, window, settings.timezone, counts, now()))
    if sinks and result.records:
        result.deliveries = deliver_all(result.records, sinks, invocation.deadline)
        for delivery in result.deliveries:
            log = logger.info if delivery.ok else logger.error
            log("delivery", **delivery.to_dict())
    return result


def _log_attempt(fields: dict[str, Any]) -> None:
    log = logger.info if fields["code"] == "OK" else logger.warning
    log("upstream.call", action="SendStatusStatistics", **fields)
