"""The alert state: what fires and since when, what is still owed to which sink, the usage a
runway is computed from, and the last digest sent. One JSON object at `alerts/state.json` in the
first store sink (in `/tmp` without one: per container, so alerts then repeat after a cold start).

COS has no compare-and-swap, so the state is written in a way that tolerates overlapping runs:
- a run judges an app's hour only if it is newer than the hour the state last judged for that
  alert (a retry, or an older run finishing late, changes nothing);
- notices are written into the state (`pending`, with the sinks each is owed to) before any is
  sent, and struck when sent: a run stopped between the two leaves them for the next run;
- every write merges with what is stored at that moment (the newer judgement of each alert, the
  union of what is pending, minus what either run sent), so a run that read an older state does
  not undo another's transition;
- notice ids are deterministic: when two runs do send the same transition, receivers and the
  chat bots' repeat memory drop the second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from ..notices import Notice
from ..sinks.base import SinkError, Store

KEY = "alerts/state.json"
SCHEMA = "sms-stats-alerts/v1"
FIRED_DAYS = 8  # how long a fired alert is remembered for the digest


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


@dataclass
class Pending:
    """A notice written into the state before it is sent, with the sinks that still owe it: a
    run that dies between the two sends it next time instead of losing or repeating it."""

    notice: Notice
    owed: list[str]


@dataclass
class State:
    """Everything alerts remember between runs, in one store object (`alerts/state.json`), so a
    new container picks up where the last one stopped."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # app -> hour label -> fee
    balance: dict[str, int] = field(default_factory=dict)  # app -> remaining, newest known
    fired: list[dict[str, str]] = field(default_factory=list)  # {alert, app_id, since, date}
    digest: str = ""  # the date (YYYY-MM-DD) of the last digest made
    sent: list[str] = field(default_factory=list)  # ids this run struck (for the merge)

    def encode(self) -> bytes:
        payload = {
            "schema": SCHEMA,
            "alerts": {key: alert.to_dict() for key, alert in sorted(self.alerts.items())},
            "pending": [{"notice": p.notice.to_dict(), "owed": p.owed} for p in self.pending],
            "usage": self.usage,
            "balance": self.balance,
            "fired": self.fired,
            "digest": self.digest,
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
            return cls(
                alerts={k: Alert(**v) for k, v in payload.get("alerts", {}).items()},
                pending=[
                    Pending(Notice.from_dict(p["notice"]), [str(s) for s in p["owed"]])
                    for p in payload.get("pending", [])
                ],
                usage={
                    str(app): {str(h): int(v) for h, v in hours.items()}
                    for app, hours in payload.get("usage", {}).items()
                },
                balance={str(k): int(v) for k, v in payload.get("balance", {}).items()},
                fired=[dict(item) for item in payload.get("fired", [])],
                digest=str(payload.get("digest", "")),
            )
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"malformed: {type(exc).__name__}: {exc}") from None

    def merge(self, stored: State) -> State:
        """This run's state written over `stored` (what another run may have written since
        this one read): per alert the newer judgement wins; pending is the union, less what
        either run sent; usage and fired are unions; the later digest date wins."""
        alerts = dict(stored.alerts)
        for key, alert in self.alerts.items():
            other = alerts.get(key)
            if other is None or alert.hour >= other.hour:
                alerts[key] = alert
        sent = set(self.sent)
        mine = {p.notice.id: p for p in self.pending}
        pending = list(self.pending)
        for item in stored.pending:
            if item.notice.id not in mine and item.notice.id not in sent:
                pending.append(item)
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
            sent=self.sent,
        )


def load(store: Store, deadline: float | None) -> State:
    """The stored state; a fresh one when there is none. An unreadable one is logged and
    replaced (alerts then start over: better than never alerting again)."""
    data = store.get(KEY, deadline)
    if data is None:
        return State()
    try:
        return State.decode(data)
    except ValueError as exc:
        logger.warning("alerts.state_unreadable", key=KEY, error=str(exc))
        return State()


def save(state: State, store: Store, deadline: float | None) -> State:
    """Merge with what is stored now, then write; the merged state is what this run goes on
    with. SinkError when the store cannot take it."""
    try:
        current = load(store, deadline)
    except SinkError:
        current = State()
    merged = state.merge(current)
    store.put(KEY, merged.encode(), deadline)
    return merged
