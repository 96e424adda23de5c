"""Structured logs and the invocation context: correlation fields and the deadline."""

from __future__ import annotations

import io
import json

import pytest

from sms_stats.context import Invocation
from sms_stats.log import Logger, correlation

from .conftest import APP_A


class TestLogAndContext:
    def test_given_nested_correlation_when_logged_then_outer_fields_kept_and_reset_after(
        self,
    ) -> None:
        stream = io.StringIO()
        log = Logger(stream)
        with correlation(request_id="r-1", trigger="timer"), correlation(app_id=APP_A):
            log.info("inner")
        log.info("after")
        inner, after = (json.loads(line) for line in stream.getvalue().splitlines())
        assert (inner["request_id"], inner["trigger"], inner["app_id"]) == ("r-1", "timer", APP_A)
        assert "request_id" not in after
        assert "app_id" not in after

    @pytest.mark.parametrize(("limit_ms", "budget"), [(60_000, 58.0), (3_000, 2.4)])
    def test_given_time_limit_when_begun_then_deadline_leaves_the_safety_margin(
        self, limit_ms: int, budget: float
    ) -> None:
        invocation = Invocation.begin({"time_limit_in_ms": limit_ms})
        assert invocation.deadline is not None
        assert invocation.deadline - invocation.started == pytest.approx(budget)
