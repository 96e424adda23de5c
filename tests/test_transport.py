"""The shared HTTP transport: what counts as delivered, retry timing, pacing and scrubbing."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from pytest_mock import MockerFixture

from sms_stats.core.pacing import Pace
from sms_stats.core.records import Counts, Record
from sms_stats.core.redact import scrub, url_secrets
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import SinkError
from sms_stats.deliver.transport import Transport, parse_retry_after
from sms_stats.deliver.webhook import WebhookSink

from .conftest import APP_A, FakeClock
from .standins.webhook import Fault, WebhookReceiver

SHANGHAI = zone("Asia/Shanghai")
NOW = datetime(2021, 5, 10, tzinfo=timezone.utc)


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver(secret=None) as running:
        yield running


def _record() -> Record:
    window = Window.from_api("2021050113", "2021050113", SHANGHAI)
    return Record(APP_A, window, "Asia/Shanghai", Counts(100, 97, 120, "rid-1"), NOW)


class TestTransport:
    def test_given_retry_after_past_deadline_when_delivered_then_no_sleep_and_no_retry(
        self, receiver: WebhookReceiver, mocker: MockerFixture
    ) -> None:
        sleep = mocker.Mock()
        receiver.fault = Fault(status=503, retry_after="10")
        transport = Transport(timeout=2.0, max_attempts=3, sleep=sleep)
        hook = WebhookSink(receiver.url, "webhook:test", transport, None)
        with pytest.raises(SinkError, match="no time left to retry"):
            hook.deliver([_record()], deadline=time.monotonic() + 3.5)
        sleep.assert_not_called()
        assert len(receiver.received) == 1

    @pytest.mark.parametrize("status", [301, 302, 307])
    def test_given_redirect_when_delivered_then_sink_error_not_delivered(
        self, receiver: WebhookReceiver, mocker: MockerFixture, status: int
    ) -> None:
        """Redirects are not followed; a 3xx is not an acceptance of the records."""
        receiver.fault = Fault(status=status)
        transport = Transport(timeout=2.0, max_attempts=1, sleep=mocker.Mock())
        hook = WebhookSink(receiver.url, "webhook:test", transport, None)
        with pytest.raises(SinkError, match=f"HTTP {status}"):
            hook.deliver([_record()])

    def test_given_pace_slot_too_late_for_a_request_when_posted_then_refused_unsent(
        self, receiver: WebhookReceiver
    ) -> None:
        clock = FakeClock()
        pace = Pace([(1, 1.0)], clock=clock, sleep=clock.sleep)
        assert pace.acquire()
        transport = Transport(timeout=2.0, clock=clock, sleep=clock.sleep)
        with pytest.raises(SinkError, match="no slot is free"):
            transport.post(receiver.url, b"{}", {}, name="bot", deadline=clock.now + 2.5, pace=pace)
        assert receiver.received == []

    def test_given_retry_after_date_in_the_past_then_zero(self) -> None:
        when = datetime(2030, 1, 1, tzinfo=timezone.utc)
        now = datetime(2030, 1, 1, 0, 0, 10, tzinfo=timezone.utc).timestamp()
        assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == 0.0

    def test_given_percent_encoded_token_in_path_when_echoed_decoded_then_scrubbed(self) -> None:
        url = "https://hooks.example/hooks/t%C3%B6ken-SENTINEL-9f3a"
        echoed = "Cannot POST /hooks/t\u00f6ken-SENTINEL-9f3a"
        assert "SENTINEL" not in scrub(echoed, url_secrets(url))

    def test_given_token_query_value_when_echoed_alone_then_scrubbed(self) -> None:
        url = "https://hooks.example/hook?token=SENTINEL-9f3a"
        assert "SENTINEL" not in scrub("invalid token SENTINEL-9f3a", url_secrets(url))
