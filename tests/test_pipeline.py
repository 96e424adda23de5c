"""The job runner: concurrency under the shared limiter, ordering, remaining-time cut-off."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from typing import Any

import pytest
from index import main_handler

from sms_stats.collect.client import limiter_for
from sms_stats.core.context import Invocation
from sms_stats.core.errors import detached
from sms_stats.core.log import correlation
from sms_stats.core.settings import load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import build_sinks
from sms_stats.emulator import Emulator, Fault
from sms_stats.events.jobs import Job
from sms_stats.run.pipeline import run_job

from .conftest import APP_A, APP_B, load_event, record_files

SHANGHAI = zone("Asia/Shanghai")


def windows(begin: str, end: str) -> tuple[Window, ...]:
    return tuple(Window.from_api(begin, end, SHANGHAI).split("hour"))


def invocation(seconds: float | None = None) -> Invocation:
    started = time.monotonic()
    return Invocation(
        "test", "sms-stats", started, None if seconds is None else started + seconds, {}
    )


def test_given_many_apps_and_hours_when_run_concurrently_then_records_in_job_order(
    scf_env: dict[str, str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_CONCURRENCY", "4")
    emulator.set_fault(Fault(latency_s=0.05))
    job = Job((APP_A, APP_B), windows("2021050100", "2021050105"))
    settings = load_settings()
    before = len(emulator.requests)
    result = run_job(job, settings, invocation(), build_sinks(settings))
    log = emulator.requests[before:]
    assert [(r.sms_sdk_app_id, r.window.begin_time) for r in result.records] == [
        (app, w.begin_time) for w in job.windows for app in job.app_ids
    ]
    for r in result.records:
        expected = Emulator.expected(r.sms_sdk_app_id, r.window.begin_time, r.window.end_time)
        assert r.counts.request_count == expected["RequestCount"]
    assert result.ok
    assert len(result.deliveries) == 12
    # Calls overlapped: some request arrived while another was still being answered.
    spans = sorted((e["t"], e["t"] + e["latency_ms"] / 1000) for e in log)
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans))


@pytest.mark.parametrize(
    ("rate", "most", "last_hour"),
    [("5", 5, "2021050105"), ("2.5", 2, "2021050102")],  # 2.5: a quarter of 10/s per host
)
def test_given_rate_limit_when_many_calls_then_stand_in_never_sees_more_than_limit_per_second(
    scf_env: dict[str, str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    rate: str,
    most: int,
    last_hour: str,
) -> None:
    """Judged by the limiter's own record of each start, in this process's clock: the stand-in's
    arrival times add loopback's scheduling jitter, which a loaded machine makes unbounded."""
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", rate)
    monkeypatch.setenv("SMS_STATS_CONCURRENCY", "8")
    monkeypatch.setenv("SMS_STATS_SINKS", "")
    settings = load_settings()
    starts: list[float] = []
    limiter_for(settings, settings.credentials()[0]).on_start = starts.append
    before = len(emulator.requests)
    job = Job((APP_A, APP_B), windows("2021050100", last_hour))
    result = run_job(job, settings, invocation(), [])
    assert len(result.records) == len(job)
    assert len(emulator.requests) - before == len(job)
    assert len(starts) == len(job)
    for first in starts:
        assert sum(1 for t in starts if first <= t < first + 1.0) <= most


def test_given_little_time_left_when_run_then_no_call_started_and_windows_reported(
    scf_env: dict[str, str], emulator: Emulator
) -> None:
    before = len(emulator.requests)
    job = Job((APP_A,), windows("2021050100", "2021050102"))
    result = run_job(job, load_settings(), invocation(seconds=0.5), [])
    assert len(emulator.requests) == before
    assert [f.window for f in result.left_for_next_run] == [str(w) for w in job.windows]
    summary = result.summary()
    assert summary["failures"] == []
    assert [w["window"] for w in summary["left_for_next_run"]] == [str(w) for w in job.windows]
    error = result.error()
    assert error is not None
    assert "next run" in error.message


def test_given_one_failing_window_when_run_then_other_windows_delivered(
    scf_env: dict[str, str], emulator: Emulator, store: Any
) -> None:
    emulator.set_fault(Fault(error_code="UnauthorizedOperation.SdkAppIdIsDisabled"), APP_B)
    settings = load_settings()
    job = Job((APP_A, APP_B), windows("2021050100", "2021050101"))
    result = run_job(job, settings, invocation(), build_sinks(settings))
    assert [r.sms_sdk_app_id for r in result.records] == [APP_A, APP_A]
    assert [f.app_id for f in result.failures] == [APP_B, APP_B]
    assert len(record_files(store)) == 2


def test_given_correlation_when_worker_threads_log_then_lines_carry_request_id(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job = Job((APP_A, APP_B), windows("2021050100", "2021050100"))
    with correlation(request_id="req-42", trigger="direct"):
        run_job(job, load_settings(), invocation(), [])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    calls = [line for line in lines if line["event"] == "upstream.call"]
    assert len(calls) == 2
    assert all(line["request_id"] == "req-42" for line in calls)


def test_given_repeated_app_id_in_settings_when_timer_runs_then_one_record_per_app_and_hour(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
) -> None:
    """`A,B,A` is a copy-paste slip, not a wish to pay for A twice (or send it twice)."""
    monkeypatch.setenv("SMS_STATS_APP_IDS", f"{APP_A},{APP_B},{APP_A}")
    summary = main_handler(load_event("timer.json"), context)
    assert [r["sms_sdk_app_id"] for r in summary["records"]] == [APP_A, APP_B]


SHANGHAI = zone("Asia/Shanghai")


class TestPipelineOutcome:
    def test_given_two_apps_failing_differently_when_run_then_partial_failure_not_first_code(
        self, scf_env: dict[str, str], emulator: Emulator
    ) -> None:
        """Two different upstream failures: answering with the first one's code (and status)
        would tell the caller that one app's problem is the whole run's."""
        emulator.set_fault(Fault(error_code="InvalidParameterValue.SdkAppIdNotExist"), APP_A)
        emulator.set_fault(Fault(error_code="UnauthorizedOperation.SdkAppIdIsDisabled"), APP_B)
        job = Job((APP_A, APP_B), (Window.from_api("2021050113", "2021050113", SHANGHAI),))
        result = run_job(job, load_settings(), invocation(), [])
        error = result.error()
        assert error is not None
        assert (error.code, error.status) == ("FailedOperation.PartialFailure", 502)

    def test_given_apps_finishing_out_of_order_when_delivered_then_batch_in_job_order(
        self, scf_env: dict[str, str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A chat summary lists apps in job order: a run-to-run order change would also make
        a retried run's message differ, and the bot would post it again."""
        monkeypatch.setenv("SMS_STATS_CONCURRENCY", "2")
        emulator.set_fault(Fault(latency_s=0.3), APP_A)

        class Recorder:
            name = "recorder:x"
            topics = frozenset({"records"})

            def __init__(self) -> None:
                self.batches_seen: list[list[str]] = []

            def batches(self, records: Any) -> list[Any]:
                return [records]

            def deliver(self, batch: Any, deadline: float | None = None) -> None:
                self.batches_seen.append([r.sms_sdk_app_id for r in batch])

        sink = Recorder()
        job = Job((APP_A, APP_B), (Window.from_api("2021050113", "2021050113", SHANGHAI),))
        result = run_job(job, load_settings(), invocation(), [sink])  # type: ignore[list-item]
        assert result.ok
        assert sink.batches_seen == [[APP_A, APP_B]]


def test_given_failed_fetches_when_kept_in_the_result_then_they_hold_no_frames(
    scf_env: dict[str, str], emulator: Emulator
) -> None:
    # A traceback keeps every frame it passed (the client's holds the answer's body) and ties a
    # cycle through the Future that re-raised it: kept in a result, only code and message count.
    emulator.set_fault(Fault(error_code="UnauthorizedOperation.SdkAppIdIsDisabled"), APP_B)
    settings = load_settings()
    job = Job((APP_A, APP_B), windows("2021050100", "2021050101"))
    result = run_job(job, settings, invocation(), build_sinks(settings))
    assert len(result.failures) == 2
    for failure in result.failures:
        chain: list[BaseException] = []
        link: BaseException | None = failure.error
        while link is not None:
            chain.append(link)
            link = link.__cause__ or link.__context__
        assert len(chain) > 1  # the SDK's exception it was mapped from is still there
        assert [e.__traceback__ for e in chain] == [None] * len(chain)
        assert failure.error.code == "UnauthorizedOperation.SdkAppIdIsDisabled"


def test_given_an_error_chain_with_a_loop_when_detached_then_every_link_loses_its_traceback() -> (
    None
):
    def raised(exc: BaseException) -> BaseException:
        try:
            raise exc
        except BaseException as caught:
            return caught

    first, second = raised(ValueError("sdk")), raised(KeyError("mapped"))
    second.__cause__, first.__context__ = first, second  # a loop must not hang the walk
    assert detached(second) is second
    assert second.__traceback__ is None
    assert first.__traceback__ is None
