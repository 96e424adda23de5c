"""The alert state: what fires and since when, what receivers have been told of each alert, what
is still owed to which sink, the usage a runway is computed from, and the last digest sent. One
JSON object at `alerts/state.json` in the first store sink (in `/tmp` without one: per
container, so alerts then repeat after a cold start).

COS has no compare-and-swap, so the state is written in a way that tolerates overlapping runs:
- a run judges an app's hour only if it is newer than the hour the state last judged for that
  alert (a retry, or an older run finishing late, changes nothing);
- notices are written into the state (`pending`, with the sinks each is owed to) before any is
  sent, and struck when sent: a run stopped between the two leaves them for the next run;
- every write merges with what is stored at that moment: per alert the newer judgement wins
  (the first written, for the same hour), pending is the union less what either run sent;
- receivers end up where the store is: each alert keeps what they were told (`told`: the
  transitions sent or pending). A judgement that lost the merge has its notices dropped while
  none went out; when one did, or the winner's base differed from what receivers were told,
  `engine.reconcile` adds the notice that brings them to the merged state. A run sends only
  what the store still holds as owed (it reads it again just before sending);
- notice ids are deterministic: when two runs do send the same transition, receivers and the
  chat bots' repeat memory drop the second.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sms_stats.core.log import logger
from sms_stats.core.notices import Notice
from sms_stats.core.windows import isoformat
from sms_stats.store.base import SinkError, Store

KEY = "alerts/state.json"
SCHEMA = "sms-stats-alerts/v1"
FIRED_DAYS = 8  # how long a fired alert is remembered for the digest
TOLD_KEPT = 4  # the newest transitions kept per alert (besides those still owed)
FIRING = "alert.firing"


@dataclass
class Alert:
    """One rule on one app. `hour`: the start (ISO) of the hour last judged; `streak`: judged
    bad hours in a row up to it; `since`: the start of the first of them (while firing);
    `notified`: the start of the hour of the last firing notice (for repeats)."""

    rule: str
    metric: str
    app_id: str
    hour: str
    firing: bool = False
    streak: int = 0
    since: str | None = None
    notified: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Told(NamedTuple):
    """A transition receivers have been, or will be, told of one alert: its notice's id, type,
    `timestamp` (UTC ISO: a receiver orders by it, so the newest one is what it shows) and the
    `since` of the episode it speaks of (a resolve that corrects it names the same)."""

    id: str
    type: str
    at: str
    since: str

    @classmethod
    def of(cls, notice: Notice) -> Told:
        at = isoformat(notice.timestamp.astimezone(timezone.utc))
        return cls(notice.id, notice.type, at, str(notice.data.get("since") or ""))

    @property
    def firing(self) -> bool:
        return self.type == FIRING

    @property
    def moment(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def to_dict(self) -> dict[str, str]:
        return dict(self._asdict())


def latest(told: list[Told]) -> Told | None:
    """What a receiver that orders an alert's notices by `timestamp` shows: the newest told
    (of two at one time, the one told last)."""
    found: Told | None = None
    for item in told:
        if found is None or item.moment >= found.moment:
            found = item
    return found


@dataclass
class Pending:
    """A notice written into the state before it is sent, with the sinks that still owe it: a
    run that dies between the two sends it next time instead of losing or repeating it. `out`:
    some sink has it already (so it can no longer be taken back, only corrected)."""

    notice: Notice
    owed: list[str]
    out: bool = False


@dataclass
class State:
    """Everything alerts remember between runs, in one store object (`alerts/state.json`), so a
    new container picks up where the last one stopped.

    `sent`, `out` and `seen` are this run's, never written: what it struck, what it got to a
    sink, and the ids (pending and told) the store held when it last read or wrote it. The
    merge tells by them what another run did in between (an id seen but gone was sent or
    dropped by it; one not seen is this run's own, new)."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # app -> hour label -> fee
    balance: dict[str, int] = field(default_factory=dict)  # app -> remaining, newest known
    fired: list[dict[str, str]] = field(default_factory=list)  # {alert, app_id, since, date}
    digest: str = ""  # the date (YYYY-MM-DD) of the last digest made
    told: dict[str, list[Told]] = field(default_factory=dict)  # alert key -> oldest first
    sent: list[str] = field(default_factory=list)  # ids this run struck (for the merge)
    out: set[str] = field(default_factory=set)  # ids this run got to at least one sink
    seen: set[str] = field(default_factory=set)  # ids in the store at this run's last read

    def owe(self, notice: Notice, sinks: list[str]) -> None:
        """Owe `notice` to `sinks` (nothing when none takes it)."""
        if sinks:
            self.pending.append(Pending(notice, list(sinks)))

    def ids(self) -> set[str]:
        """The ids of what is pending and what receivers were told."""
        found = {item.notice.id for item in self.pending}
        for told in self.told.values():
            found.update(item.id for item in told)
        return found

    def encode(self) -> bytes:
        # `told` and each pending's `out` sit beside what an older version reads: one still
        # running during a deployment reads this state (and writes it without them: this
        # version then sees alerts told nothing, and corrects nothing).
        payload = {
            "schema": SCHEMA,
            "alerts": {key: alert.to_dict() for key, alert in sorted(self.alerts.items())},
            "pending": [
                {"notice": p.notice.to_dict(), "owed": p.owed, **({"out": True} if p.out else {})}
                for p in self.pending
            ],
            "usage": self.usage,
            "balance": self.balance,
            "fired": self.fired,
            "digest": self.digest,
            "told": {
                key: [item.to_dict() for item in told]
                for key, told in sorted(self.told.items())
                if told
            },
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> State:
        """ValueError when the object is not an alert state this version reads."""
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON: {type(exc).__name__}") from None
        if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} object")
        try:
            state = cls(
                alerts={k: Alert(**v) for k, v in payload.get("alerts", {}).items()},
                pending=[
                    Pending(
                        Notice.from_dict(p["notice"]),
                        [str(s) for s in p["owed"]],
                        p.get("out") is True,
                    )
                    for p in payload.get("pending", [])
                ],
                usage={
                    str(app): {str(h): int(v) for h, v in hours.items()}
                    for app, hours in payload.get("usage", {}).items()
                },
                balance={str(k): int(v) for k, v in payload.get("balance", {}).items()},
                fired=[dict(item) for item in payload.get("fired", [])],
                digest=str(payload.get("digest", "")),
                told={
                    str(key): [_told(item) for item in told]
                    for key, told in payload.get("told", {}).items()
                },
            )
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"malformed: {type(exc).__name__}: {exc}") from None
        state.seen = state.ids()
        return state

    def merge(self, stored: State | None) -> State:
        """This run's state written over `stored` (what another run may have written since
        this one read; None when there is none to read): per alert the newer judgement wins
        (the stored one for the same hour: it was written first), with what receivers were
        told of it; pending is the union, less what either run sent and what a losing
        judgement owed but never got out; usage and fired are unions; the later digest wins.
        `engine.reconcile` then brings receivers to the merged judgement."""
        if stored is None:
            stored = State()
        dropped: set[str] = set()
        alerts = dict(stored.alerts)
        told = {key: list(items) for key, items in stored.told.items()}
        stored_pending = {p.notice.id: p for p in stored.pending}
        for key in sorted(set(self.alerts) | set(self.told)):
            mine, theirs = self.alerts.get(key), stored.alerts.get(key)
            my_told, their_told = self.told.get(key, []), stored.told.get(key, [])
            their_ids = {item.id for item in their_told}
            if mine is not None and (theirs is None or mine.hour > theirs.hour):
                alerts[key] = mine
                told[key], lost = self._told_as_winner(my_told, their_told, stored_pending)
                dropped |= lost
            else:  # the stored judgement stands; of mine, only what reached a sink remains
                told[key] = their_told + [
                    item for item in my_told if item.id not in their_ids and item.id in self.out
                ]
                dropped |= {
                    item.id
                    for item in my_told
                    if item.id not in their_ids
                    and item.id not in self.seen
                    and item.id not in self.out
                }
        pending = self._pending(stored, stored_pending, dropped)
        owed = {item.notice.id for item in pending}
        for key, items in told.items():
            told[key] = _prune([i for i in items if i.id not in dropped], alerts.get(key), owed)
        usage = {app: dict(hours) for app, hours in stored.usage.items()}
        for app, hours in self.usage.items():
            usage.setdefault(app, {}).update(hours)
        fired = list(stored.fired)
        fired += [item for item in self.fired if item not in fired]
        return State(
            alerts=alerts,
            pending=pending,
            usage=usage,
            balance={**stored.balance, **self.balance},
            fired=fired,
            digest=max(self.digest, stored.digest),
            told={key: items for key, items in told.items() if items},
            sent=self.sent,
            out=self.out,
            seen=self.seen,
        )

    def _told_as_winner(
        self, mine: list[Told], theirs: list[Told], stored_pending: dict[str, Pending]
    ) -> tuple[list[Told], set[str]]:
        """What receivers were told of an alert whose judgement is this run's, and the ids
        dropped: another run's transitions since this one read (they come from a judgement
        that lost) that are still owed and have reached no sink yet."""
        their_ids = {item.id for item in theirs}
        my_ids = {item.id for item in mine}
        kept = [
            item
            for item in mine  # an id this run saw in the store and that is gone: dropped there
            if item.id in their_ids or item.id not in self.seen or item.id in self.out
        ]
        dropped: set[str] = set()
        for item in theirs:
            if item.id in my_ids:
                continue
            owed = stored_pending.get(item.id)
            if owed is not None and not owed.out and item.id not in self.out:
                dropped.add(item.id)
            else:
                kept.append(item)
        return kept, dropped

    def _pending(
        self, stored: State, stored_pending: dict[str, Pending], dropped: set[str]
    ) -> list[Pending]:
        sent = set(self.sent)
        mine = {p.notice.id: p for p in self.pending}
        pending: list[Pending] = []
        for item in stored.pending:
            nid = item.notice.id
            if nid in sent or nid in dropped:
                continue
            own = mine.get(nid)
            if own is not None:  # both hold it: owed to the sinks neither has reached
                owed = [name for name in item.owed if name in own.owed]
                if owed:
                    pending.append(Pending(item.notice, owed, item.out or own.out))
                continue
            pending.append(item)
        for item in self.pending:
            nid = item.notice.id
            if nid in stored_pending or nid in dropped:
                continue
            if nid in self.seen and nid not in self.out:
                continue  # in the store when this run read it, gone now: sent or dropped there
            if nid not in self.seen and _digest_made_elsewhere(item.notice, stored):
                continue
            pending.append(item)
        return pending


def _digest_made_elsewhere(notice: Notice, stored: State) -> bool:
    """A digest this run made that another run made too and no longer owes (it sent it)."""
    if notice.type != "digest.daily":
        return False
    return bool(stored.digest) and stored.digest >= str(notice.data.get("date", ""))


def _prune(told: list[Told], alert: Alert | None, owed: set[str]) -> list[Told]:
    """Oldest first: what is still owed, the newest few, and while an alert fires the resolves
    of its episode already told (its own resolve must not reuse their id)."""
    ordered = sorted(told, key=lambda item: item.moment)
    newest_ids = {item.id for item in ordered[-TOLD_KEPT:]}
    episode = alert.since if alert is not None and alert.firing else None
    kept: list[Told] = []
    ids: set[str] = set()
    for item in ordered:
        if item.id in ids:
            continue
        if (
            item.id in owed
            or item.id in newest_ids
            or (episode is not None and not item.firing and item.since == episode)
        ):
            kept.append(item)
            ids.add(item.id)
    return kept


def _told(item: Any) -> Told:
    told = Told(str(item["id"]), str(item["type"]), str(item["at"]), str(item.get("since", "")))
    told.moment  # noqa: B018 - a time that does not parse is a malformed state, said at once
    return told


def read(store: Store, deadline: float | None) -> State | None:
    """The stored state; None when there is none, or it is not one this version reads (logged).
    SinkError when the store cannot answer."""
    data = store.get(KEY, deadline)
    if data is None:
        return None
    try:
        return State.decode(data)
    except ValueError as exc:
        logger.warning("alerts.state_unreadable", key=KEY, error=str(exc))
        return None


def load(store: Store, deadline: float | None) -> State:
    """The stored state; a fresh one when there is none. An unreadable one is logged and
    replaced (alerts then start over: better than never alerting again)."""
    return read(store, deadline) or State()


def owed_now(store: Store, deadline: float | None) -> set[str] | None:
    """The ids the store holds as still owed; None when it cannot say (no state, unreadable,
    the store down): the caller then sends what it holds."""
    try:
        stored = read(store, deadline)
    except SinkError:
        return None
    return None if stored is None else {item.notice.id for item in stored.pending}


def save(
    state: State,
    store: Store,
    deadline: float | None,
    settle: Callable[[State], None] | None = None,
) -> State:
    """Merge with what is stored now, let `settle` bring receivers to the merged judgement
    (it adds notices to what is owed), then write; the merged state is what this run goes on
    with. SinkError when the store cannot be read or take it (nothing is merged blind)."""
    merged = state.merge(read(store, deadline))
    if settle is not None:
        settle(merged)
    store.put(KEY, merged.encode(), deadline)
    merged.seen = merged.ids()
    return merged
