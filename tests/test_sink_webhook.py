"""The generic webhook sink against a real receiver that verifies with `standardwebhooks`."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import ConfigError, DeliveryError
from sms_stats.core.records import Counts, Record
from sms_stats.core.settings import Settings, load_settings
from sms_stats.core.signing import decode_whsec
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import SinkError, build_sinks, deliver_all, sink_kind
from sms_stats.deliver.transport import Transport, parse_retry_after
from sms_stats.deliver.webhook import WebhookSink, message_id
from sms_stats.store.base import label

from .conftest import APP_A, APP_B, load_event, seed_record
from .standins.webhook import Fault, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()


def record(app_id: str = APP_A, hour: str = "2021050113") -> Record:
    window = Window.from_api(hour, hour, zone("Asia/Shanghai"))
    counts = Counts(100, 97, 120, "rid-1")
    return Record(
        app_id, window, "Asia/Shanghai", counts, datetime(2021, 5, 1, tzinfo=timezone.utc)
    )


def receiver_sink_name(receiver: WebhookReceiver) -> str:
    """The name a webhook sink at the receiver's URL has in reports and in the outbox."""
    return label("webhook", receiver.url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def sleep(mocker: MockerFixture) -> Any:
    return mocker.Mock()


def sink(
    receiver: WebhookReceiver, sleep: Any, secret: str | None = SECRET, **kw: Any
) -> WebhookSink:
    transport = Transport(
        timeout=kw.pop("timeout", 2.0), max_attempts=kw.pop("attempts", 3), sleep=sleep
    )
    return WebhookSink(receiver.url, "webhook:test", transport, secret)


class TestSigning:
    def test_given_secret_when_delivered_then_standardwebhooks_verifies_it(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        sink(receiver, sleep).deliver([record()])
        (message,) = receiver.received
        assert message.verified is True
        assert message.json == {"kind": "send", "records": [record().to_dict()]}
        assert message.headers["content-type"].startswith("application/json")
        assert message.headers["webhook-id"] == message_id(record())
        assert abs(int(message.headers["webhook-timestamp"]) - time.time()) < 60

    def test_given_wrong_secret_when_delivered_then_receiver_refuses_and_no_retry(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
        with pytest.raises(SinkError, match="HTTP 401"):
            sink(receiver, sleep, secret=other).deliver([record()])
        assert [m.verified for m in receiver.received] == [False]
        sleep.assert_not_called()

    def test_given_retries_when_delivered_then_same_id_and_fresh_valid_signatures(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        receiver.fault = Fault(status=503, times=2)
        sink(receiver, sleep).deliver([record()])
        ids = {m.headers["webhook-id"] for m in receiver.received}
        assert ids == {message_id(record())}
        assert len(receiver.received) == 3
        assert receiver.received[-1].verified is True

    def test_given_no_secret_when_delivered_then_unsigned_but_id_and_timestamp_sent(
        self, sleep: Any
    ) -> None:
        with WebhookReceiver(secret=None) as plain:
            sink(plain, sleep, secret=None).deliver([record()])
            (message,) = plain.received
        assert "webhook-signature" not in message.headers
        assert message.headers["webhook-id"]

    def test_given_two_windows_and_apps_when_ids_made_then_stable_and_distinct(self) -> None:
        ids = {
            message_id(record(a, h)) for a in (APP_A, APP_B) for h in ("2021050113", "2021050114")
        }
        assert len(ids) == 4
        assert message_id(record()) == message_id(record())


class TestRetries:
    @pytest.mark.parametrize("status", [500, 502, 503, 429])
    def test_given_transient_status_twice_when_delivered_then_third_attempt_lands(
        self, receiver: WebhookReceiver, sleep: Any, status: int
    ) -> None:
        receiver.fault = Fault(status=status, times=2)
        sink(receiver, sleep).deliver([record()])
        assert [m.status for m in receiver.received] == [status, status, 200]
        assert sleep.call_count == 2

    @pytest.mark.parametrize("status", [400, 404, 410, 422])
    def test_given_client_error_when_delivered_then_no_retry(
        self, receiver: WebhookReceiver, sleep: Any, status: int
    ) -> None:
        receiver.fault = Fault(status=status)
        with pytest.raises(SinkError, match=f"HTTP {status}"):
            sink(receiver, sleep).deliver([record()])
        assert len(receiver.received) == 1

    @pytest.mark.parametrize(
        ("status", "retry_after", "waited"),
        [(429, "7", 7.0), (503, "3600", 30.0)],  # as asked; a huge one capped at 30 s
        ids=["waits-that-long", "capped"],
    )
    def test_given_retry_after_when_delivered_then_waits_that_long_within_the_cap(
        self, receiver: WebhookReceiver, sleep: Any, status: int, retry_after: str, waited: float
    ) -> None:
        receiver.fault = Fault(status=status, retry_after=retry_after, times=1)
        sink(receiver, sleep).deliver([record()])
        sleep.assert_called_once_with(waited)

    def test_given_always_500_when_delivered_then_gives_up_after_attempts(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        receiver.fault = Fault(status=500)
        with pytest.raises(SinkError, match="after 3 attempts"):
            sink(receiver, sleep).deliver([record()])

    def test_given_hanging_receiver_when_delivered_then_times_out(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        receiver.fault = Fault(hang=True)
        started = time.monotonic()
        with pytest.raises(SinkError, match=r"no answer within 0\.3 s"):
            sink(receiver, sleep, timeout=0.3, attempts=2).deliver([record()])
        assert time.monotonic() - started < 5

    def test_given_refused_connection_when_delivered_then_retried_then_error(
        self, sleep: Any
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        transport = Transport(timeout=1, max_attempts=2, sleep=sleep)
        closed = WebhookSink(f"http://127.0.0.1:{port}/x", "webhook:closed", transport, SECRET)
        with pytest.raises(SinkError, match="could not connect"):
            closed.deliver([record()])
        assert sleep.call_count == 1

    def test_given_deadline_near_when_retry_due_then_stops_without_sleeping(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        receiver.fault = Fault(status=503)
        with pytest.raises(SinkError, match="no time left"):
            sink(receiver, sleep).deliver([record()], deadline=time.monotonic() + 1.0)
        sleep.assert_not_called()


class TestDeadline:
    def test_given_no_time_left_when_delivered_then_no_request_is_started(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        with pytest.raises(SinkError, match="no time left"):
            sink(receiver, sleep, timeout=2.0).deliver([record()], deadline=time.monotonic() + 1)
        assert receiver.received == []


class TestDeliverAll:
    def test_given_a_sink_that_raises_anything_when_delivered_then_others_still_deliver(
        self, tmp_path: Path
    ) -> None:
        class Broken:
            name = "broken:x"
            topics = frozenset({"records"})

            def batches(self, records: Any) -> list[Any]:
                return [records]

            def deliver(self, batch: Any, deadline: float | None = None) -> None:
                raise TypeError("surprise with https://secret.example/key=abc")

        (store,) = build_sinks(load_settings({"SMS_STATS_SINKS": f"file://{tmp_path}"}))
        outcomes = deliver_all([record()], [Broken(), store])  # type: ignore[list-item]
        assert [(d.sink, d.ok) for d in outcomes] == [(store.name, True), ("broken:x", False)]
        assert outcomes[1].error == "broken:x: unexpected TypeError"


class TestNoSecretEchoed:
    TOKEN = "hooktoken-SENTINEL-9f3a"

    @pytest.mark.parametrize(
        "path", [f"/hooks/{TOKEN}", f"/hooks/x?token={TOKEN}", f"/webhook/{TOKEN}?token={TOKEN}"]
    )
    def test_given_token_in_url_when_receiver_echoes_it_in_a_404_then_error_holds_no_token(
        self, receiver: WebhookReceiver, sleep: Any, path: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """n8n and Zapier URLs carry their credential in the path or query; 404 pages echo it."""
        receiver.fault = Fault(status=404, echo_path=True)
        url = f"{receiver.endpoint}{path}"
        (hook,) = build_sinks(
            load_settings({"SMS_STATS_SINKS": url}), Transport(timeout=2.0, max_attempts=1)
        )
        (outcome,) = deliver_all([record()], [hook])

        assert not outcome.ok
        assert "Cannot POST ***" in (outcome.error or "")  # the answer is quoted, scrubbed
        assert self.TOKEN not in (outcome.error or "")
        assert self.TOKEN not in hook.name
        assert self.TOKEN not in capsys.readouterr().out


class TestConnections:
    def test_given_two_threads_when_delivering_then_each_keeps_its_own_connection_alive(
        self, receiver: WebhookReceiver, sleep: Any
    ) -> None:
        """One requests.Session per thread: reused within a thread, never lent to another.

        The threads run one after the other, so with one shared session the second thread
        would be handed the first one's idle kept-alive connection (the same client port)."""
        hook = sink(receiver, sleep)

        def deliver_twice(app_id: str) -> None:
            hook.deliver([record(app_id)])
            hook.deliver([record(app_id)])

        for app_id in (APP_A, APP_B):
            thread = threading.Thread(target=deliver_twice, args=(app_id,))
            thread.start()
            thread.join()
        ports = {
            app: {r.peer_port for r in receiver.received if app in r.body.decode()}
            for app in (APP_A, APP_B)
        }
        assert all(len(p) == 1 for p in ports.values())  # each thread: one kept-alive connection
        assert ports[APP_A] != ports[APP_B]  # and not the other thread's


class TestRetryAfter:
    def test_given_seconds_then_float(self) -> None:
        assert parse_retry_after("12") == 12.0

    def test_given_http_date_then_seconds_from_now(self) -> None:
        when = datetime(2030, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
        now = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
        assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == 10.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "\u00b9", "\u0663"])
    def test_given_garbage_then_none(self, value: str | None) -> None:
        assert parse_retry_after(value) is None


class TestFactory:
    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            ("https://example.com/hooks/sms", "webhook"),
            ("http://127.0.0.1:9/x", "webhook"),
            ("webhook+http://127.0.0.1:9/x", "webhook"),
            ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "wecom"),
            ("https://oapi.dingtalk.com/robot/send?access_token=t", "dingtalk"),
            ("https://open.feishu.cn/open-apis/bot/v2/hook/x", "feishu"),
            ("https://open.larksuite.com/open-apis/bot/v2/hook/x", "feishu"),
            ("lark+http://127.0.0.1:9/open-apis/bot/v2/hook/x", "feishu"),
            ("https://hooks.slack.com/services/T/B/X", "slack"),
            ("file:///tmp/x", "file"),
            ("cos://b-1250000000/p", "cos"),
        ],
    )
    def test_given_url_when_classified_then_kind(self, url: str, kind: str) -> None:
        assert sink_kind(url)[0] == kind

    @pytest.mark.parametrize(
        ("sinks", "words"),
        [
            ("ftp://host/dir", "unknown sink scheme 'ftp'"),
            ("teams+https://x/y", "unknown sink kind"),
            ("nonsense", "is not a URL"),
            ("https://user:pw@example.com/h", "user:password"),
            ("file://host/dir", "has a host"),
            ("file:///tmp/a,file:///tmp/a", "listed twice"),
        ],
    )
    def test_given_bad_sink_url_when_built_then_config_error_names_setting(
        self, sinks: str, words: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            build_sinks(load_settings({"SMS_STATS_SINKS": sinks}))
        assert "SMS_STATS_SINKS" in caught.value.message
        assert words in caught.value.message
        assert "pw@" not in caught.value.message

    def test_given_secret_path_in_url_when_named_then_only_host_and_hash(self) -> None:
        (built,) = build_sinks(load_settings({"SMS_STATS_SINKS": "https://h.example/catch/s3cr3t"}))
        assert "s3cr3t" not in built.name
        assert built.name.startswith("webhook:h.example#")


class TestThroughHandler:
    def test_given_timer_with_webhook_when_handled_then_one_signed_message_per_app(
        self,
        scf_env: dict[str, str],
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"{scf_env['SMS_STATS_SINKS']},{receiver.url}")
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", SECRET)
        summary = main_handler(load_event("timer.json"), context)
        assert all(m.verified for m in receiver.received)
        apps = [m.json["records"][0]["sms_sdk_app_id"] for m in receiver.received]
        assert apps == [APP_A, APP_B]
        assert len(summary["deliveries"]) == 4

    def test_given_rerun_when_handled_then_same_webhook_ids(
        self,
        scf_env: dict[str, str],
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", receiver.url)
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", SECRET)
        main_handler(load_event("timer.json"), context)
        main_handler(load_event("timer.json"), context)
        ids = [m.headers["webhook-id"] for m in receiver.received]
        assert ids[:2] == ids[2:]

    def test_given_failing_webhook_when_timer_then_file_still_written_and_run_raises(
        self,
        scf_env: dict[str, str],
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        mocker: MockerFixture,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        mocker.patch("sms_stats.deliver.transport.time.sleep")
        monkeypatch.setenv("SMS_STATS_SINKS", f"{scf_env['SMS_STATS_SINKS']},{receiver.url}")
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", SECRET)
        receiver.fault = Fault(status=500)
        with pytest.raises(DeliveryError) as caught:
            main_handler(load_event("timer.json"), context)
        assert "HTTP 500" in caught.value.message
        assert caught.value.code == "FailedOperation.DeliveryFailed"
        assert len(list(store.glob("app=*/dt=*/*.json"))) == 2
        # Both records are owed to the webhook in the store's outbox, for the next run.
        (entry,) = store.glob("_outbox/*.json")
        owed = json.loads(entry.read_text(encoding="utf-8"))["owed"]
        assert list(owed) == [receiver_sink_name(receiver)]
        assert len(owed[receiver_sink_name(receiver)]) == 2

    def test_given_failing_webhook_when_http_get_then_200_with_records_and_failed_delivery(
        self,
        scf_env: dict[str, str],
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", receiver.url)
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", SECRET)
        receiver.fault = Fault(status=410)
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 200
        body = json.loads(answer["body"])
        assert len(body["records"]) == 1
        assert body["deliveries"][0]["ok"] is False
        assert "HTTP 410" in body["deliveries"][0]["error"]
        assert body["error"]["code"] == "FailedOperation.DeliveryFailed"


class TestWebhookEdges:
    def test_given_16_byte_secret_when_decoded_then_accepted(self) -> None:
        key = b"sixteen-byte-key"
        assert decode_whsec("whsec_" + base64.b64encode(key).decode()) == key

    def test_given_urlsafe_base64_secret_when_loaded_then_config_error_not_a_wrong_key(
        self,
    ) -> None:
        """Decoding leniently would drop '-' and '_' and sign with a key the receiver lacks."""
        secret = "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode()
        assert "-" in secret or "_" in secret
        with pytest.raises(ConfigError, match="not valid base64"):
            load_settings({"SMS_STATS_WEBHOOK_SECRET": secret})

    def test_given_url_without_host_when_built_then_config_error(self) -> None:
        with pytest.raises(ConfigError, match="http\\(s\\)://host"):
            build_sinks(Settings(sinks=("https:///hook",)))

    def test_given_hour_and_day_starting_together_when_identified_then_ids_differ(self) -> None:
        """A receiver de-duplicating by webhook-id must not drop the day as a repeat."""
        hour = seed_record(begin="2021050100", end="2021050100")
        day = seed_record(begin="2021050100", end="2021050123")
        assert message_id(hour) != message_id(day)
