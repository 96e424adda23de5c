"""Notices through the generic webhook, to a receiver that verifies with `standardwebhooks`."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_mock import MockerFixture
from standardwebhooks.webhooks import Webhook

from sms_stats.core.notices import WEBHOOK_TOPICS
from sms_stats.core.settings import Settings
from sms_stats.deliver.sinks import SinkError, build_sinks
from sms_stats.deliver.transport import Transport
from sms_stats.deliver.webhook import WebhookSink

from .notice_samples import digest, firing, resolved
from .standins.webhook import Fault, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
TOKEN = "hook-token-5d1e9a0c7b"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def sleep(mocker: MockerFixture) -> Any:
    return mocker.Mock()


def make(url: str, sleep: Any, secret: str | None = SECRET) -> WebhookSink:
    """Through the real factory, as SMS_STATS_SINKS and SMS_STATS_WEBHOOK_SECRET build it."""
    transport = Transport(timeout=2.0, max_attempts=3, sleep=sleep)
    (sink,) = build_sinks(Settings(sinks=(url,), webhook_secret=secret), transport)
    assert isinstance(sink, WebhookSink)
    return sink


@pytest.mark.parametrize("notice", [firing(), resolved(), digest()], ids=lambda n: n.type)
def test_given_notice_when_notified_then_contract_body_under_its_id_verified(
    receiver: WebhookReceiver, sleep: Any, notice: Any
) -> None:
    sink = make(receiver.url, sleep)
    assert sink.topics == WEBHOOK_TOPICS

    sink.notify(notice)

    (message,) = receiver.received
    assert message.verified is True
    assert message.json == notice.body()
    assert set(message.json) == {"type", "timestamp", "data"}
    assert message.headers["webhook-id"] == notice.id
    assert message.body == json.dumps(
        notice.body(), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    # A receiver's own check, independent of the stand-in's: the signature covers id and body.
    Webhook(SECRET).verify(message.body, message.headers)
    sleep.assert_not_called()


def test_given_receiver_failing_twice_when_notified_then_same_id_and_fresh_signatures(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    receiver.fault = Fault(status=503, times=2)
    notice = firing()

    make(receiver.url, sleep).notify(notice)

    assert [m.headers["webhook-id"] for m in receiver.received] == [notice.id] * 3
    assert [m.verified for m in receiver.received] == [True, True, True]
    assert [m.status for m in receiver.received] == [503, 503, 200]
    assert sleep.call_count == 2


def test_given_timestamp_older_than_a_retry_when_notified_then_signed_with_the_attempts_time(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    """The notice's own timestamp (the hour judged) is in the body; the header is the send's."""
    make(receiver.url, sleep).notify(firing())
    (message,) = receiver.received
    assert abs(int(message.headers["webhook-timestamp"]) - time.time()) < 60
    assert message.json["timestamp"] == "2021-05-01T06:00:00Z"


def test_given_no_secret_when_notified_then_unsigned_but_id_sent(sleep: Any) -> None:
    with WebhookReceiver() as open_receiver:
        make(open_receiver.url, sleep, secret=None).notify(digest())
        (message,) = open_receiver.received
    assert "webhook-signature" not in message.headers
    assert message.headers["webhook-id"] == digest().id


def test_given_receiver_refuses_and_echoes_path_when_notified_then_error_without_token(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    receiver.fault = Fault(status=404, echo_path=True)
    sink = make(f"{receiver.endpoint}/hooks/{TOKEN}?key={TOKEN}", sleep)

    with pytest.raises(SinkError, match="HTTP 404") as caught:
        sink.notify(firing())

    assert TOKEN not in str(caught.value)
    sleep.assert_not_called()


def test_given_data_that_is_not_json_when_notified_then_sink_error_and_nothing_sent(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    notice = firing(value=object())
    with pytest.raises(SinkError, match="is not JSON"):
        make(receiver.url, sleep).notify(notice)
    assert receiver.received == []
