"""Run a job: fetch every (app, window), turn answers into records, hand them to every sink.

Calls run concurrently under the process-wide rate limiter, and a window's records go to the
sinks as soon as every app of that window is in, so deliveries overlap the calls still running.
What was collected is always delivered and returned, even when other fetches failed: a failed app
never costs the records of the apps that worked. The result says what failed and what was left
for the next run, so the entry can answer or raise (and SCF retry: keys and webhook ids are
stable, so a retry duplicates nothing).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sms_stats.collect.apis import api
from sms_stats.collect.client import OUT_OF_TIME, StatsClient
from sms_stats.core.context import Invocation
from sms_stats.core.errors import DeliveryError, SmsStatsError, UpstreamError, detached
from sms_stats.core.log import logger
from sms_stats.core.records import AnyRecord, Kind, isoformat_utc
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window
from sms_stats.deliver.outbox import Outbox
from sms_stats.deliver.sinks import Delivery, Sink, deliver_all
from sms_stats.deliver.topics import record_sinks
from sms_stats.events.jobs import Job, Task
from sms_stats.run.heal import KINDS as HEAL_KINDS
from sms_stats.run.heal import Healed, Healer
from sms_stats.store.base import Store, find_store, public_name, stored_record
from sms_stats.store.layout import ensure_zone

Batch = tuple[Kind, Window]  # what goes to the sinks together: one kind, one window


class FetchFailure(NamedTuple):
    """One app and window the API did not answer (after retries): kept with its code, so the run
    can answer, log and raise for it without holding the frames it failed in."""

    app_id: str
    window: str
    error: UpstreamError
    kind: Kind = "send"

    @property
    def out_of_time(self) -> bool:
        return self.error.code == OUT_OF_TIME

    def to_dict(self, public: bool = False) -> dict[str, Any]:
        body = {
            "kind": self.kind,
            "sms_sdk_app_id": self.app_id,
            "window": self.window,
            "attempts": self.error.attempts,
            **self.error.to_dict(),
        }
        body["message"] = self.message(public)
        return body

    def message(self, public: bool = False) -> str:
        """The error's text, naming the API when it is not the seed's; `public` (an HTTP
        caller) leaves out the transport's detail (hosts, ports, a proxy's page), which only
        the logs keep. A permission refused says which CAM action to grant."""
        if public and self.error.code in TRANSPORT_CODES:
            text = (
                f"the SMS API could not be reached or did not answer properly "
                f"({self.error.code}); the function's logs have the detail"
            )
        else:
            text = self.error.message
        action = api(self.kind).action
        if self.kind != "send":
            text = f"{action}: {text}"
        if self.error.code.startswith(_DENIED):
            text += (
                f" (the function's role needs sms:{action}; or leave {self.kind} "
                "out of SMS_STATS_COLLECT)"
            )
        return text


_DENIED = ("UnauthorizedOperation.RequestPermissionDeny", "AuthFailure.UnauthorizedOperation")

# Failures whose message quotes the transport: an HTTP caller gets the code, the logs the rest.
TRANSPORT_CODES = frozenset(
    {"ClientNetworkError", "ServerNetworkError", "InternalError.BadUpstreamResponse"}
)


@dataclass
class RunResult:
    """What a job came to: records fetched, fetches that failed and deliveries made; the handler
    turns it into the answer, the closing log line, or the error that makes SCF retry."""

    records: list[AnyRecord] = field(default_factory=list)
    failures: list[FetchFailure] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    # Windows that had not ended when fetched: their counts are answered, never stored or sent,
    # so the store never holds a partial hour under the key of the final one.
    incomplete: list[Window] = field(default_factory=list)
    # The hours before a timer's hour, healed: the records written (missing hours, changed
    # receipts) and the counts of what it took (apps, calls per kind, records, hours left).
    healed: list[AnyRecord] = field(default_factory=list)
    heal: dict[str, int] = field(default_factory=dict)

    @property
    def failed_deliveries(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]

    @property
    def left_for_next_run(self) -> list[FetchFailure]:
        return [f for f in self.failures if f.out_of_time]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_deliveries

    def summary(self, public: bool = False) -> dict[str, Any]:
        return {
            "records": [r.to_dict() for r in self.records],
            "failures": [f.to_dict(public) for f in self.failures if not f.out_of_time],
            "left_for_next_run": [
                {"sms_sdk_app_id": f.app_id, "window": f.window} for f in self.left_for_next_run
            ],
            "deliveries": [_delivery(d, public) for d in self.deliveries],
            "incomplete_windows": [str(w) for w in self.incomplete],
            **({"heal": dict(self.heal)} if self.heal else {}),
            "ok": self.ok,
        }

    def error(self, public: bool = False) -> SmsStatsError | None:
        """One exception that says what went wrong: the first few problems, then a count.
        `public`: for an HTTP caller (see `FetchFailure.message`)."""
        if self.ok:
            return None
        late = self.left_for_next_run
        failed = [f for f in self.failures if not f.out_of_time]
        parts = [
            f"app {f.app_id} window {f.window}: {f.error.code}: {f.message(public)}" for f in failed
        ]
        parts += [f"app {d.app_id} window {d.window}: {d.error}" for d in self.failed_deliveries]
        if late:
            shown = ", ".join(f"{f.app_id}:{f.window}" for f in late[:_SHOWN])
            more = f" and {len(late) - _SHOWN} more" if len(late) > _SHOWN else ""
            parts.append(
                f"no time left for {len(late)} fetches, left for the next run: {shown}{more}"
            )
        if len(parts) > _SHOWN:
            parts = [*parts[:_SHOWN], f"... {len(parts) - _SHOWN} more (see the summary and logs)"]
        total = len(self.records) + len(self.failures)
        heads = []
        if failed:
            everything = len(failed) == total
            heads.append(
                ("the fetch failed" if total == 1 else f"all {total} fetches failed")
                if everything
                else f"{len(failed)} of {total} fetches failed"
            )
        if late:
            heads.append(f"no time left for {len(late)} of {total} fetches")
        if self.failed_deliveries:
            heads.append(f"{len(self.failed_deliveries)} deliveries failed")
        message = ", ".join(heads) + ": " + "; ".join(parts)
        codes = {f.error.code for f in self.failures}
        if len(codes) == 1 and not self.failed_deliveries:
            # One cause (every fetch out of time, or the same upstream refusal for each app):
            # its code says more than "partial", and keeps its HTTP status.
            first = self.failures[0].error
            return UpstreamError(
                message,
                code=first.code,
                request_id=first.request_id if len(self.failures) == 1 else None,
                attempts=first.attempts,
            )
        if not self.failures:
            return DeliveryError(message)
        return SmsStatsError(message, code="FailedOperation.PartialFailure", status=502)


_SHOWN = 5


def _delivery(delivery: Delivery, public: bool) -> dict[str, object]:
    """One delivery's line of the summary; for an HTTP caller without the server's paths."""
    out = delivery.to_dict()
    if public:
        out["sink"] = public_name(str(out["sink"]))
    return out


def run_job(
    job: Job,
    settings: Settings,
    invocation: Invocation,
    sinks: Sequence[Sink],
    *,
    clock: Callable[[], datetime] | None = None,
    client: StatsClient | None = None,
    on_fetched: Callable[[str, Window, bool], None] | None = None,
    drain: bool = True,
) -> RunResult:
    """`on_fetched(app_id, window, ok)` is called as each fetch ends (a progress bar's hook).

    With a store among the sinks, every window's deliveries go through its outbox, and with
    `drain` what earlier runs still owe is delivered after this run's own windows (fresh data
    first: the debts wait if time runs out).
    """
    now = clock or (lambda: datetime.now(timezone.utc))
    client = client or client_for(settings)
    result = RunResult()
    courier = Courier(sinks, invocation.deadline)
    if len(job):  # one zone per store, every store: before any call or write
        for sink in sinks:
            if isinstance(sink, Store):
                ensure_zone(sink, settings.timezone, invocation.deadline)
    # Records go out per batch, (kind, window): as soon as every app of it is in.
    waiting: dict[Batch, int] = {}
    for kind, _, window in job.tasks():
        waiting[kind, window] = waiting.get((kind, window), 0) + 1
    done: dict[Batch, list[AnyRecord]] = {batch: [] for batch in waiting}
    incomplete: set[Batch] = set()
    healer = _healer(job, settings, sinks, client, invocation, now)
    # SMS_STATS_CONCURRENCY calls in flight per API: each has a rate budget of its own.
    workers = max(1, min(settings.concurrency * len(job.kinds), len(job)))

    def fetch(kind: Kind, app_id: str, window: Window) -> AnyRecord:
        return api(kind).fetch(
            client, app_id, window, settings.timezone, now(), invocation.deadline
        )

    deliveries: list[Future[list[Delivery]]] = []
    with _pool(max(workers, len(job.kinds)), "deliver") as deliverers:
        with _pool(workers, "fetch") as fetchers:
            futures: dict[Future[AnyRecord], Task] = {
                _submit(fetchers, fetch, *task): task for task in job.tasks()
            }
            try:
                # Inline futures are all done already; as_completed would only add waiter locks.
                finished = futures if isinstance(fetchers, _Inline) else as_completed(futures)
                for future in finished:
                    task = futures[future]
                    kind, app_id, window = task
                    batch = (kind, window)
                    _take_fetched(future, task, result, done[batch], incomplete)
                    waiting[batch] -= 1
                    if on_fetched is not None:
                        on_fetched(app_id, window, future.exception() is None)
                    if waiting[batch] == 0 and done[batch] and sinks and batch not in incomplete:
                        deliveries.append(
                            _submit(
                                deliverers,
                                courier.deliver,
                                _in_job_order(done[batch], job),
                                job.for_chat(kind),
                            )
                        )
            except BaseException:  # Ctrl-C in a backfill: start nothing new, finish what runs
                for pending in futures:
                    pending.cancel()
                raise
        if healer is not None:
            # The hours before the job's own, once its own are in (fresh data first): app by
            # app, twice as many at once as one API's calls in flight (healing asks receipts
            # almost only, and reads the store between calls; more threads only contend for
            # the interpreter: 3x took 19% longer over 1,000 apps, `benchmarks/heal_bench.py`).
            deliveries += _heal(healer, job, settings.concurrency, result, courier, deliverers)
        for delivered in deliveries:
            result.deliveries.extend(delivered.result())
    if drain:
        result.deliveries.extend(courier.drain(result.deliveries))
    result.records = [r for batch in done for r in _in_job_order(done[batch], job)]
    _report(result, job, sinks)
    return result


HEAL_BUNCH = 200  # healed records held before they go out (per window, in one delivery each)
HEAL_RESERVE = 0.1  # the share of an invocation's time healing leaves to what comes after it


def _heal(
    healer: Healer,
    job: Job,
    concurrency: int,
    result: RunResult,
    courier: Courier,
    deliverers: Executor,
) -> list[Future[list[Delivery]]]:
    """Heal every app (from where the last run stopped), delivering what is found in bunches
    as it comes, so a run that runs out of time has written what it fetched."""
    apps = healer.order(job.app_ids)
    waiting: dict[Batch, list[AnyRecord]] = {}
    deliveries: list[Future[list[Delivery]]] = []
    healed: dict[str, Healed] = {}

    def send(bunches: list[list[AnyRecord]]) -> None:
        for records in bunches:
            deliveries.append(
                _submit(deliverers, courier.deliver, _in_job_order(records, job), False)
            )

    with _pool(min(2 * concurrency, len(apps)), "heal") as healers:
        futures = [_submit(healers, _heal_one, healer, app) for app in apps]
        try:
            finished = futures if isinstance(healers, _Inline) else as_completed(futures)
            for future in finished:
                outcome = future.result()
                healed[outcome.app_id] = outcome
                _take_healed(outcome, result, waiting)
                if sum(map(len, waiting.values())) >= HEAL_BUNCH:
                    send(list(waiting.values()))
                    waiting.clear()
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise
    send(list(waiting.values()))
    healer.leave_cursor(apps, healed)
    return deliveries


def _heal_one(healer: Healer, app_id: str) -> Healed:
    """One app's healing; a bug in it costs that app this run's healing, not the run."""
    try:
        return healer.heal(app_id)
    except Exception as exc:
        logger.error("heal.error", app_id=app_id, error_type=type(exc).__name__)
        return Healed(app_id, [], [], healer.count * len(healer.kinds), {})


def _take_fetched(
    future: Future[AnyRecord],
    task: Task,
    result: RunResult,
    done: list[AnyRecord],
    incomplete: set[Batch],
) -> None:
    """One fetch of the job's own into the result: its record, or its failure."""
    kind, app_id, window = task
    try:
        record = future.result()
    except UpstreamError as exc:
        result.failures.append(FetchFailure(app_id, str(window), detached(exc), kind))
        return
    done.append(record)
    # A window that had not ended when fetched holds partial counts: answered, never stored or
    # sent (a balance is a snapshot: always whole).
    if kind != "packages" and window.end > record.fetched_at:
        incomplete.add((kind, window))
        if window not in result.incomplete:
            result.incomplete.append(window)


def _healer(
    job: Job,
    settings: Settings,
    sinks: Sequence[Sink],
    client: StatsClient,
    invocation: Invocation,
    now: Callable[[], datetime],
) -> Healer | None:
    """The healer of a job with hours to heal, a store to heal them in, and a windowed kind."""
    store = find_store(sinks)
    if job.heal is None or store is None or not any(k in HEAL_KINDS for k in job.kinds):
        return None
    deadline = invocation.deadline
    if deadline is not None:
        # Time left for what comes after: writing what healing found, the outbox, alerts.
        reserve = max(3 * settings.timeout, HEAL_RESERVE * (deadline - invocation.started))
        deadline -= reserve
    return Healer(store, client, job.heal, job.kinds, settings.timezone, deadline, now)


def _take_healed(healed: Healed, result: RunResult, waiting: dict[Batch, list[AnyRecord]]) -> None:
    """One app's healing into the result (its counts; failures are counted, not raised: the
    next run heals what this one could not) and its records into the bunches waiting."""
    result.healed.extend(healed.records)
    report = result.heal
    report["apps"] = report.get("apps", 0) + 1
    for kind, calls in healed.calls.items():
        report[f"{kind}_calls"] = report.get(f"{kind}_calls", 0) + calls
    report["hours_left"] = report.get("hours_left", 0) + healed.left
    report["records"] = report.get("records", 0) + len(healed.records)
    report["failures"] = report.get("failures", 0) + len(healed.failures)
    for record in healed.records:
        waiting.setdefault((record.kind, record.window), []).append(record)


class Courier:
    """Takes a window's records to every sink, through the store's outbox when there is one."""

    def __init__(self, sinks: Sequence[Sink], deadline: float | None) -> None:
        self.sinks = sinks
        self.deadline = deadline
        store = find_store(sinks)
        self.outbox = Outbox(store) if store is not None else None
        self.opened: list[str] = []  # entries this run wrote (settled by this run, not drained)

    def deliver(self, records: list[AnyRecord], chat: bool = True) -> list[Delivery]:
        """`chat=False`: not for people's chats (a correction, an hourly balance).

        Only sinks whose `?notify=` takes records get them, or are owed them: a chat bot by
        default hears alerts and the digest, not every hour.
        """
        takers = record_sinks(self.sinks)
        sinks = takers if chat else [s for s in takers if not getattr(s, "chat", False)]
        if self.outbox is None:
            return deliver_all(records, sinks, self.deadline)
        records = self._changed(records)
        if not records:
            return []
        left_out = [s.name for s in takers if s not in sinks]
        entry = self.outbox.open(records, sinks, self.deadline, carry=left_out)
        outcomes = deliver_all(records, sinks, self.deadline)
        if entry is not None:
            if not any(name in entry.owed for name in left_out):
                self.opened.append(entry.key)  # else this run's drain pays the carried debt
            self.outbox.settle(entry, outcomes, self.deadline)
        return outcomes

    def _changed(self, records: list[AnyRecord]) -> list[AnyRecord]:
        """What the store does not hold already, and never older than what it holds.

        A record whose key holds a later fetch goes nowhere: an older run finishing after a
        newer one (SCF's retry of an earlier hour, a slow invocation) must not put its older
        counts over the newer ones, in the store or at a receiver. Receipts fetched again are
        told again only when they changed: a receipt record whose content the store already
        holds goes nowhere (what an earlier run failed to deliver of it, the outbox still
        owes)."""
        assert self.outbox is not None
        kept: list[AnyRecord] = []
        for record in records:
            stored = stored_record(self.outbox.store, record.key, self.deadline)
            if stored is not None and stored.fetched_at > record.fetched_at:
                logger.info(
                    "delivery.superseded",
                    kind=record.kind,
                    sms_sdk_app_id=record.sms_sdk_app_id,
                    window=str(record.window),
                    stored_fetched_at=isoformat_utc(stored.fetched_at),
                )
                continue
            if (
                record.kind == "callback"
                and stored is not None
                and stored.content() == record.content()
            ):
                logger.info(
                    "delivery.unchanged",
                    kind=record.kind,
                    sms_sdk_app_id=record.sms_sdk_app_id,
                    window=str(record.window),
                )
                continue
            kept.append(record)
        return kept

    def drain(self, this_run: Sequence[Delivery]) -> list[Delivery]:
        """What earlier runs still owe, except to sinks that just failed in this run."""
        if self.outbox is None:
            return []
        failed = {d.sink for d in this_run if not d.ok}
        return self.outbox.drain(
            self.sinks, self.deadline, skip_entries=self.opened, skip_sinks=failed
        )


def _report(result: RunResult, job: Job, sinks: Sequence[Sink]) -> None:
    """Outcomes in job order (earlier runs' debts after this run's windows), then logged."""
    order = {(app, str(window)): i for i, (_, app, window) in enumerate(job.tasks())}
    result.failures.sort(key=lambda f: order.get((f.app_id, f.window), len(order)))
    sink_rank = {sink.name: i for i, sink in enumerate(sinks)}
    result.deliveries.sort(
        key=lambda d: (sink_rank[d.sink], order.get((d.app_id, d.window), len(order)))
    )
    for delivery in result.deliveries:
        (logger.info if delivery.ok else logger.error)(
            "delivery", **delivery.to_dict(), duration_ms=delivery.duration_ms
        )
    if result.left_for_next_run:
        logger.warning(
            "job.out_of_time",
            left=[f"{f.app_id}:{f.window}" for f in result.left_for_next_run],
        )


class _Inline(Executor):
    """Runs each call at once in this thread: one fetch needs no thread (warm-path cost)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _pool(workers: int, name: str) -> Executor:
    if workers <= 1:
        return _Inline()
    # Imported here: a run of one fetch (the timer's usual) never loads the thread pool.
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    return ThreadPoolExecutor(workers, thread_name_prefix=name)


_clients: dict[Settings, StatsClient] = {}


def client_for(settings: Settings) -> StatsClient:
    """One StatsClient per container and settings: warm invocations skip rebuilding it."""
    client = _clients.get(settings)
    if client is None:
        _clients.clear()
        client = _clients[settings] = StatsClient(settings, on_attempt=_log_attempt)
    return client


def _submit(pool: Executor, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run in the pool with this thread's context, so log lines keep the correlation fields."""
    if isinstance(pool, _Inline):
        return pool.submit(fn, *args)
    context = contextvars.copy_context()
    return pool.submit(context.run, fn, *args)


def _in_job_order(records: list[AnyRecord], job: Job) -> list[AnyRecord]:
    rank = {app_id: i for i, app_id in enumerate(job.app_ids)}
    return sorted(records, key=lambda r: rank[r.sms_sdk_app_id])


def _log_attempt(fields: dict[str, Any]) -> None:
    log = logger.info if fields["code"] == "OK" else logger.warning
    log("upstream.call", **fields)
