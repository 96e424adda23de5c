"""Two runs overlapping on the alert state (issue 23, item 5b): R1 judges hour H (SCF's retry,
its state read slowly), R2 judges H+1; each loads the state, judges, writes it with what it
owes, sends, and writes it again. Every interleaving of those steps is driven through the real
`after_run`, the real COS SDK against the COS stand-in (no compare-and-swap there either) and a
webhook receiver that verifies signatures, and afterwards receivers must show what the store
holds: a receiver that orders an alert's notices by `timestamp` ends on the stored judgement,
never hears of a resolve for a firing it was not told, and gets the same bytes for the same id.

The runs take turns at the store's seam: each read of `alerts/state.json` is a gate, and a run
holds the turn from one gate to its next, so a read, a write, a round of sending each happen
whole and in the order the test names (a run's steps: load, save, deliver, save). Which notices
a run sends is the code's business; the test only orders the steps.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest

from sms_stats.alerts.run import after_run
from sms_stats.alerts.state import KEY, State, latest
from sms_stats.collect.client import StatsClient
from sms_stats.core.records import AnyRecord, CallbackRecord, Receipts
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import Sink, build_sinks
from sms_stats.store.base import Store, find_store

from .conftest import APP_A, SECRET_ID, SECRET_KEY, SESSION_TOKEN
from .standins.cos import CosStandIn
from .standins.webhook import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"overlap-test-secret-0123456789").decode()
BUCKET = "stats-1250000000"
TZ = zone("Asia/Shanghai")
DAY = datetime(2021, 5, 1, tzinfo=TZ)
H = 11  # R1's hour; R2 judges H+1
RULE = {"name": "delivery low", "metric": "delivery_rate", "below": 0.9, "min_volume": 50}
STEPS = ("load", "save", "deliver", "save")  # a run's gates, in its own order
TURN_WAIT_S = 30.0  # a run that never reaches the gate named next: the test fails, it never hangs


def hour(h: int) -> Window:
    start = DAY + timedelta(hours=h)
    return Window(start, start + timedelta(hours=1))


def receipts(h: int, *, bad: bool, total: int = 200) -> CallbackRecord:
    """Hour `h`'s receipts: half delivered (bad) or 99%; `total` below 50 is not judged."""
    ok = total // 2 if bad else total - total // 100
    r = Receipts(total, total, ok, total - ok, total - ok, 0, 0, 0, 0, "rid")
    return CallbackRecord(APP_A, hour(h), "Asia/Shanghai", r, hour(h).end)


def label(h: int) -> str:
    return f"202105{1:02d}{h:02d}"


# -- turns at the store's seam -----------------------------------------------------------------


class Turns:
    """Runs (threads named R1, R2) take turns at gates, in the order `script` names: a run
    that passes a gate holds the turn until it reaches its next gate or ends. Entries of a
    run that ended are skipped; gates past the script are passed in arrival order, one run at
    a time. `passed` is what happened, for the failure message."""

    def __init__(self, script: Sequence[str]) -> None:
        self.script = list(script)
        self.passed: list[str] = []
        self._cond = threading.Condition()
        self._holder: str | None = None
        self._ended: set[str] = set()
        self._waiting: list[str] = []
        self._count: dict[str, int] = {}

    def gate(self) -> None:
        run = threading.current_thread().name
        with self._cond:
            if self._holder == run:
                self._holder = None
            step = self._count.get(run, 0)
            self._count[run] = step + 1
            self._waiting.append(run)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._mine(run), TURN_WAIT_S):
                raise AssertionError(f"{run} waited for its turn; passed: {self.passed}")
            self._waiting.remove(run)
            if self.script and self.script[0] == run:
                self.script.pop(0)
            self._holder = run
            name = STEPS[step] if step < len(STEPS) else ("deliver", "save")[step % 2]
            self.passed.append(f"{run}.{name}")

    def end(self) -> None:
        with self._cond:
            run = threading.current_thread().name
            self._ended.add(run)
            if self._holder == run:
                self._holder = None
            self._cond.notify_all()

    def _mine(self, run: str) -> bool:
        if self._holder is not None:
            return False
        while self.script and self.script[0] in self._ended:
            self.script.pop(0)
        if self.script:
            return self.script[0] == run
        return self._waiting[0] == run


@dataclass
class GatedStore:
    """The real store, with a gate before each read of the alert state (the store's seam)."""

    inner: Store
    turns: Turns
    name: str = field(init=False)
    topics: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.name, self.topics = self.inner.name, self.inner.topics

    def get(self, key: str, deadline: float | None = None) -> bytes | None:
        if key == KEY:
            self.turns.gate()
        return self.inner.get(key, deadline)

    def put(self, key: str, data: bytes, deadline: float | None = None) -> None:
        self.inner.put(key, data, deadline)

    def exists(self, key: str, deadline: float | None = None) -> bool:
        return self.inner.exists(key, deadline)

    def delete(self, key: str, deadline: float | None = None) -> None:
        self.inner.delete(key, deadline)

    def keys(self, prefix: str, deadline: float | None = None) -> list[str]:
        return self.inner.keys(prefix, deadline)

    def listing(self, prefix: str, deadline: float | None = None) -> dict[str, str]:
        return self.inner.listing(prefix, deadline)

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return self.inner.batches(records)

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        self.inner.deliver(batch, deadline)


# -- the world: COS stand-in, receiver, the function's sinks -----------------------------------


@dataclass
class World:
    settings: Settings
    cos: CosStandIn
    receiver: WebhookReceiver

    def sinks(self, turns: Turns | None = None) -> list[Sink]:
        """The function's sinks as a fresh container builds them (the COS store first)."""
        sinks = build_sinks(self.settings)
        store = find_store(sinks)
        assert store is not None
        if turns is None:
            return sinks
        return [GatedStore(store, turns) if s is store else s for s in sinks]

    def run(
        self, h: int, *, bad: bool, quiet: bool = False, sinks: Sequence[Sink] | None = None
    ) -> None:
        """The alert part of the timer run that collected hour `h` (`quiet`: too few receipts
        to judge)."""
        after_run(
            [receipts(h, bad=bad, total=3 if quiet else 200)],
            self.settings,
            sinks if sinks is not None else self.sinks(),
            StatsClient(self.settings),
            now=hour(h).end + timedelta(minutes=5),
            app_ids=[APP_A],
            kinds=["callback"],
            deadline=None,
            with_digest=False,
        )

    def stored(self) -> State:
        body = self.cos.objects[(BUCKET, f"stats/{KEY}")].body
        return State.decode(body)

    def notices(self) -> list[dict[str, Any]]:
        """What the receiver took, each once (it drops a `webhook-id` it has seen, checking
        the repeat carries the same bytes), in the order a receiver shows them: by
        `timestamp`, then arrival."""
        seen: dict[str, bytes] = {}
        found = []
        for message in self.receiver.accepted:
            assert message.verified, "a notice failed Standard Webhooks verification"
            nid = message.headers["webhook-id"]
            if nid in seen:
                assert seen[nid] == message.body, f"{nid} came twice with different bodies"
                continue
            seen[nid] = message.body
            found.append({**message.json, "id": nid})
        return sorted(found, key=lambda n: n["timestamp"])


@pytest.fixture(scope="module")
def cos() -> Iterator[CosStandIn]:
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as s:
        yield s


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


@pytest.fixture
def world(cos: CosStandIn, receiver: WebhookReceiver) -> World:
    cos.reset()
    receiver.received.clear()
    receiver.fault = None
    settings = Settings.model_validate(
        {
            "secret_id": SECRET_ID,
            "secret_key": SECRET_KEY,
            "session_token": SESSION_TOKEN,
            "region": "ap-guangzhou",
            "endpoint": "http://127.0.0.1:9",  # the SMS API: never called here
            "sinks": (
                f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}",
                receiver.url,
            ),
            "webhook_secret": SECRET,
            "alerts": json.dumps([RULE]),
            "timeout": 10,
        }
    )
    return World(settings, cos, receiver)


def overlap(world: World, script: Sequence[str], r1_bad: bool, r2: str) -> Turns:
    """R1 (hour H) and R2 (hour H+1: `bad`, `good` or `quiet`) in threads, taking turns as
    `script` says."""
    turns = Turns(script)
    failures: list[BaseException] = []

    def run(h: int, bad: bool, quiet: bool, sinks: list[Sink]) -> Callable[[], None]:
        def body() -> None:
            try:
                world.run(h, bad=bad, quiet=quiet, sinks=sinks)
            except BaseException as exc:  # the test thread reports it
                failures.append(exc)
            finally:
                turns.end()

        return body

    threads = [
        threading.Thread(target=run(H, r1_bad, False, world.sinks(turns)), name="R1"),
        threading.Thread(
            target=run(H + 1, r2 == "bad", r2 == "quiet", world.sinks(turns)), name="R2"
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * TURN_WAIT_S)
        assert not thread.is_alive(), f"{thread.name} did not end; passed: {turns.passed}"
    if failures:
        raise failures[0]
    return turns


def interleavings() -> list[tuple[str, ...]]:
    """Every order of R1's four steps among R2's four (70)."""
    found = []
    for mine in itertools.combinations(range(8), 4):
        found.append(tuple("R1" if i in mine else "R2" for i in range(8)))
    return found


# One script of each kind the expectations below tell apart.
KINDS_OF_SCRIPT = [
    ("R1",) * 4 + ("R2",) * 4,  # in turn: R2 reads what R1 wrote
    ("R2",) * 4 + ("R1",) * 4,  # in turn the other way: R1 (a retry) finds H+1 judged
    ("R1", "R2", "R2", "R2", "R2", "R1", "R1", "R1"),  # R1's read slow: R2 writes first
    ("R1", "R2", "R1", "R1", "R2", "R1", "R2", "R2"),  # R1 sends before R2 writes
    ("R1", "R2", "R1", "R2", "R1", "R1", "R2", "R2"),  # R2 writes between R1's write and send
    ("R2", "R1", "R2", "R1", "R2", "R1", "R2", "R1"),  # alternating
]


def at(script: Sequence[str], run: str, step: int) -> int:
    """Where `run`'s `step`-th step (0: load, 1: save, 2: deliver, 3: save) is in `script`."""
    return [i for i, name in enumerate(script) if name == run][step]


def kind(script: Sequence[str]) -> str:
    """How the two runs met: `read` (R2 read R1's write), `lost` (R2 wrote first: R1's
    judgement lost), `sent` (R1 sent before R2 wrote), `owed` (R2 wrote after R1 owed its
    notice, before R1 sent it)."""
    if at(script, "R2", 0) > at(script, "R1", 1):
        return "read"
    if at(script, "R2", 1) < at(script, "R1", 1):
        return "lost"
    return "sent" if at(script, "R1", 2) < at(script, "R2", 1) else "owed"


def check_invariants(
    world: World, turns: Turns, *, judged: int, firing: bool
) -> list[dict[str, Any]]:
    """The store holds the newest judgement (of hour `judged`) with nothing owed, and
    receivers show it; none heard of a resolve for a firing it was not told."""
    state = world.stored()
    ((key, alert),) = state.alerts.items()
    assert alert.hour == hour(judged).start.isoformat(), turns.passed
    assert alert.firing is firing, turns.passed
    assert state.pending == [], turns.passed
    told = latest(state.told.get(key, []))
    assert told is None or told.firing is firing, turns.passed
    got = [n for n in world.notices() if n["type"].startswith("alert.")]
    shown = got[-1]["type"] == "alert.firing" if got else False
    assert shown is firing, (turns.passed, [n["id"] for n in got])
    fired = {n["data"]["since"] for n in got if n["type"] == "alert.firing"}
    for notice in got:
        if notice["type"] == "alert.resolved":
            assert notice["data"]["since"] in fired, ("resolve of what no one was told", got)
    return got


def short(notices: list[dict[str, Any]]) -> list[str]:
    """Each notice's id without the rule and app (`<since>_<what>`)."""
    return ["_".join(n["id"].split("_")[3:]) for n in notices]


S, H0, H1, H2 = label(H - 1), label(H), label(H + 1), label(H + 2)


class TestFiringRacesAResolve:
    """Base: H-1 healthy. R1 judges H bad (fires); R2 judges H+1 healthy: the issue's case.
    Whatever the order, receivers end on "not firing", and are told of a firing only if it
    went out before R2's judgement won."""

    EXPECTED: ClassVar[dict[str, list[str]]] = {
        "read": [f"{H0}_firing", f"{H0}_resolved"],  # R2 judged from R1's firing
        "lost": [],  # R1's firing never went out
        "sent": [f"{H0}_firing", f"{H0}_resolved_{H1}"],  # out before R2 won: resolved
        "owed": [],  # dropped before it went out
    }

    @pytest.mark.parametrize("script", interleavings(), ids="-".join)
    def test_given_two_overlapping_runs_when_both_end_then_receivers_show_the_stored_state(
        self, world: World, script: tuple[str, ...]
    ) -> None:
        world.run(H - 1, bad=False)
        turns = overlap(world, script, r1_bad=True, r2="good")
        got = check_invariants(world, turns, judged=H + 1, firing=False)
        assert short(got) == self.EXPECTED[kind(script)], turns.passed

        world.run(H + 2, bad=True)  # a new episode, with an id no receiver has seen
        after = [n for n in world.notices() if n["type"].startswith("alert.")]
        assert short(after) == [*short(got), f"{H2}_firing"]


class TestResolveRacesStillFiring:
    """Base: firing since H-1 (told). R1 judges H healthy (resolves); R2 judges H+1 bad. The
    reverse: receivers end on "firing", told again if R1's resolve went out."""

    EXPECTED: ClassVar[dict[str, list[str]]] = {
        "read": [f"{S}_firing", f"{S}_resolved", f"{H1}_firing"],  # R2 fired anew
        "lost": [f"{S}_firing"],
        "sent": [f"{S}_firing", f"{S}_resolved", f"{S}_repeat_{H1}"],  # still firing
        "owed": [f"{S}_firing"],
    }

    @pytest.mark.parametrize("script", interleavings(), ids="-".join)
    def test_given_two_overlapping_runs_when_both_end_then_receivers_show_the_stored_state(
        self, world: World, script: tuple[str, ...]
    ) -> None:
        world.run(H - 1, bad=True)
        turns = overlap(world, script, r1_bad=False, r2="bad")
        got = check_invariants(world, turns, judged=H + 1, firing=True)
        assert short(got) == self.EXPECTED[kind(script)], turns.passed

        world.run(H + 2, bad=False)  # resolved: a new id, never one a receiver drops
        after = [n for n in world.notices() if n["type"].startswith("alert.")]
        assert len(after) == len(got) + 1
        assert after[-1]["type"] == "alert.resolved"
        assert after[-1]["data"]["window_start"] == hour(H + 2).start.isoformat()


class TestFiringRacesFiring:
    """Base: H-1 healthy. Both judge their hour bad. A firing from R1's judgement that lost
    is not sent (R2, judging from the base, fires with its own `since`)."""

    EXPECTED: ClassVar[dict[str, list[str]]] = {
        "read": [f"{H0}_firing"],  # R2 continued R1's episode
        "lost": [f"{H1}_firing"],
        "sent": [f"{H0}_firing", f"{H1}_firing"],  # out already: both stand, R2's newest
        "owed": [f"{H1}_firing"],
    }

    @pytest.mark.parametrize("script", KINDS_OF_SCRIPT, ids="-".join)
    def test_given_two_overlapping_runs_when_both_end_then_one_episode_is_told(
        self, world: World, script: tuple[str, ...]
    ) -> None:
        world.run(H - 1, bad=False)
        turns = overlap(world, script, r1_bad=True, r2="bad")
        got = check_invariants(world, turns, judged=H + 1, firing=True)
        assert short(got) == self.EXPECTED[kind(script)], turns.passed


class TestFiringRacesAQuietHour:
    """Base: H-1 healthy. R1 judges H bad; R2's hour is too quiet to judge: it changes
    nothing, so R1's firing stands and is told, whatever the order."""

    @pytest.mark.parametrize("script", KINDS_OF_SCRIPT, ids="-".join)
    def test_given_two_overlapping_runs_when_both_end_then_the_firing_stands(
        self, world: World, script: tuple[str, ...]
    ) -> None:
        world.run(H - 1, bad=False)
        turns = overlap(world, script, r1_bad=True, r2="quiet")
        got = check_invariants(world, turns, judged=H, firing=True)
        assert short(got) == [f"{H0}_firing"], turns.passed
