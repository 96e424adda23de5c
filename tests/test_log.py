"""Structured logs and the invocation context: correlation fields and the deadline."""

from __future__ import annotations

import io
import json

import pytest

from sms_stats.core.context import Invocation
from sms_stats.core.log import Logger, correlation

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


class TestLinesAreScrubbed:
    SECRET = "Zk3vQ9-log-secret-7Hd2"

    def lines(self, logger: Logger, stream: io.StringIO) -> list[dict[str, object]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    def test_given_a_secret_in_a_text_field_then_it_is_masked(self) -> None:
        from sms_stats.core import redact

        redact.register(self.SECRET)
        stream = io.StringIO()
        logger = Logger(stream)
        logger.info("x", message=f"the receiver said: token {self.SECRET} is unknown", n=3)
        logger.info("x", nested={"error": f"echo {self.SECRET}"}, many=[f"{self.SECRET}"])
        text = stream.getvalue()
        assert self.SECRET not in text
        assert self.SECRET[:8] not in text
        first, _ = self.lines(logger, stream)
        assert first["n"] == 3
        assert "the receiver said" in str(first["message"])

    def test_given_a_value_logged_before_a_secret_is_registered_then_masked_after(
        self,
    ) -> None:
        from sms_stats.core import redact

        stream = io.StringIO()
        logger = Logger(stream)
        line = f"callback to https://example.com/hook?t={self.SECRET}"
        logger.info("x", url=line)  # remembered as scrubbed: nothing to mask yet
        redact.register(self.SECRET)  # new settings: the memory must not serve the old text
        logger.info("x", url=line)
        first, second = self.lines(logger, stream)
        assert self.SECRET in str(first["url"])
        assert self.SECRET not in str(second["url"])
