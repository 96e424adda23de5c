"""What a cold start does besides the work: checked in a fresh interpreter running a real timer
invocation against the stand-in, since an import happens once per process."""

from __future__ import annotations

import pytest

from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A
from .probe import run_fresh

_PROBE = """
import gc, json, sys
usual = gc.get_threshold()
import index
seen = {"usual": usual[0], "after_import": gc.get_threshold()[0],
        "frozen_import": gc.get_freeze_count()}
event = {"Type": "Timer", "TriggerName": "hourly", "Time": "2021-05-01T05:05:00Z", "Message": ""}
index.main_handler(event, {"request_id": "r1", "time_limit_in_ms": 60000})
seen["after_first"] = gc.get_threshold()[0]
seen["frozen_first"] = gc.get_freeze_count()
index.main_handler(event, {"request_id": "r2", "time_limit_in_ms": 60000})
seen["frozen_second"] = gc.get_freeze_count()
seen["html"] = "html" in sys.modules
print(json.dumps(seen))
"""


def test_given_a_cold_container_when_invoked_twice_then_gc_is_slow_only_until_the_first_ends(
    scf_env: dict[str, str],
) -> None:
    seen = run_fresh(_PROBE)

    assert seen["after_import"] >= 50_000 > seen["usual"]  # no collections while loading
    assert seen["frozen_import"] > 10_000  # what the import built is out of the collector's way
    assert seen["after_first"] == seen["usual"]  # then the usual pace, for good
    assert seen["frozen_first"] > seen["frozen_import"]  # the SDK and its client joined it
    # Once: a warm call freezes nothing (frozen objects may still be freed by their count).
    assert seen["frozen_second"] <= seen["frozen_first"]
    assert seen["html"] is False  # the redaction's HTML escaping needs no html module


def test_given_one_fetch_when_a_timer_runs_then_no_thread_pool_or_request_model_is_loaded(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual timer run (one app, sends) needs neither a thread pool nor the models of
    direct and HTTP requests: run one in a fresh interpreter and look at what it imported."""
    monkeypatch.setenv("SMS_STATS_APP_IDS", APP_A)
    code = (
        "import json, sys, index\n"
        "event = {'Type': 'Timer', 'TriggerName': 'hourly', 'Time': '2021-05-01T05:05:00Z', "
        "'Message': ''}\n"
        "index.main_handler(event, {'request_id': 'r', 'time_limit_in_ms': 60000})\n"
        "names = ('concurrent.futures.thread', 'sms_stats.events.direct', 'sms_stats.web.http')\n"
        "print(json.dumps([m for m in names if m in sys.modules]))\n"
    )
    assert run_fresh(code) == []


_FAILING_PROBE = """
import gc, json, weakref
import index
event = {"Type": "Timer", "TriggerName": "hourly", "Time": "2021-05-01T05:05:00Z", "Message": ""}
frozen_import = gc.get_freeze_count()
seen = {}
try:
    index.main_handler(event, {"request_id": "r1", "time_limit_in_ms": 60000})
except Exception as exc:
    seen["raised"] = type(exc).__name__
    first_error = weakref.ref(exc)
seen["after_first"] = gc.get_threshold()[0]
seen["frozen_by_first"] = gc.get_freeze_count() - frozen_import
index.main_handler(event, {"request_id": "r2", "time_limit_in_ms": 60000})  # the fault is spent
seen["frozen_by_second"] = gc.get_freeze_count() - frozen_import
gc.collect()  # whatever is not frozen and is garbage goes now
seen["first_error_kept"] = first_error() is not None
print(json.dumps(seen))
"""


def test_given_a_failed_first_invocation_when_the_next_ends_well_then_its_error_is_not_frozen(
    scf_env: dict[str, str], emulator: Emulator
) -> None:
    # The exception is alive while the handler unwinds, and then garbage held in a cycle with
    # the frame that raised it: frozen, it and every frame (and answer body) it holds would
    # stay for the container's life.
    emulator.set_fault(Fault(error_code="InternalError", times=3), APP_A)  # three attempts
    seen = run_fresh(_FAILING_PROBE)

    assert seen["raised"] == "UpstreamError"
    assert seen["after_first"] < 50_000  # the usual pace, although the invocation raised
    assert seen["frozen_by_first"] <= 0  # the freeze waits for an invocation that ends well
    assert seen["frozen_by_second"] > 0  # which makes it
    assert seen["first_error_kept"] is False  # after collecting the first one's garbage


@pytest.mark.parametrize(("command", "slow"), [("gaps", False), ("serve", False), ("invoke", True)])
def test_given_a_command_when_it_starts_then_only_invoke_keeps_the_cold_pace(
    command: str, slow: bool
) -> None:
    # A command has no first invocation to end the slow pace: a backfill would otherwise
    # collect at a seventieth of the usual rate for its whole run.
    probe = (
        "import gc, contextlib, io\n"
        "from sms_stats import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main([{command!r}, '--help'])\n"
        "print(gc.get_threshold()[0])\n"
    )
    assert (run_fresh(probe, timeout=60) >= 50_000) is slow


def test_given_the_package_when_its_dataclasses_are_read_then_each_has_its_own_docstring() -> None:
    # Without one, @dataclass writes one from inspect.signature(cls) as the class is created
    # (~0.5 ms each on a slow machine, a dozen of them on the timer path's cold start).
    import dataclasses
    import importlib
    import inspect
    import pkgutil

    import sms_stats

    missing = []
    for found in pkgutil.walk_packages(sms_stats.__path__, "sms_stats."):
        if found.name.endswith("__main__"):
            continue
        module = importlib.import_module(found.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == found.name
                and dataclasses.is_dataclass(value)
                and (value.__doc__ or "").startswith(f"{value.__name__}(")  # the written one
            ):
                missing.append(f"{found.name}.{name}")
    assert missing == []
