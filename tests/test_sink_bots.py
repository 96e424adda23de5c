"""Chat-bot sinks (WeCom, DingTalk, Feishu, Slack) against a local receiver that verifies them.

The receiver recomputes signatures and checks shapes and sizes as the platforms do, so a test
that passes here means the platform would have posted the message; the assertions then read the
posted text like a person would: app, local window, counts, rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats import handler
from sms_stats.core.errors import ConfigError, DeliveryError
from sms_stats.core.records import BalanceRecord, CallbackRecord, Counts, Package, Receipts, Record
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.chat import slack, wecom
from sms_stats.deliver.chat.markup import escape_lark, escape_markdown, escape_slack
from sms_stats.deliver.chat.messages import Part, Row, by_window, percent, summarize, window_text
from sms_stats.deliver.chat.packing import pack
from sms_stats.deliver.chat.repeats import Posted
from sms_stats.deliver.sinks import Sink, SinkError, build_sinks, deliver_all, sink_kind
from sms_stats.deliver.transport import Transport

from .conftest import APP_A, APP_B, load_event, seed_record
from .standins.bots import (
    DINGTALK_MAX_BODY,
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    FEISHU_MAX_BODY,
    FEISHU_SECRET,
    FEISHU_TOKEN,
    PLATFORMS,
    SLACK_MAX_BLOCKS,
    SLACK_MAX_SECTION,
    SLACK_PATH,
    WECOM_KEY,
    WECOM_MAX_CONTENT,
    BotFault,
    BotReceiver,
)

SHANGHAI = zone("Asia/Shanghai")
HOUR = Window.from_api("2021050112", "2021050112", SHANGHAI)
LOCAL_HOUR = "2021-05-01 12:00\u201313:00 Asia/Shanghai (+08:00)"
SECRETS = (
    WECOM_KEY,
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    FEISHU_TOKEN,
    FEISHU_SECRET,
    SLACK_PATH.rsplit("/", 1)[1],
)
RATE_LIMIT_CODES = [("wecom", 45009), ("dingtalk", 130101), ("feishu", 11232), ("feishu", 9499)]


def record(
    app_id: str = APP_A,
    requests: int = 1880,
    ok: int = 1875,
    fee: int = 1902,
    window: Window = HOUR,
) -> Record:
    counts = Counts(requests, ok, fee, "rid-1")
    return Record(
        app_id, window, "Asia/Shanghai", counts, datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)
    )


def many(count: int) -> list[Record]:
    return [record(str(1400100000 + i), 1000 + i, 990 + i, 1200 + i) for i in range(count)]


def text_of(platform: str, payload: dict[str, Any]) -> str:
    """Everything a reader sees in one posted message."""
    if platform == "wecom":
        return str(payload["markdown"]["content"])
    if platform == "dingtalk":
        return f"{payload['markdown']['title']}\n{payload['markdown']['text']}"
    if platform == "feishu":
        card = payload["card"]
        texts = [e["text"]["content"] for e in card["elements"] if "text" in e]
        return "\n".join([card["header"]["title"]["content"], *texts])
    blocks = [b["text"]["text"] for b in payload["blocks"] if "text" in b]
    return "\n".join([payload["text"], *blocks])


def within_limit(platform: str, message_body: bytes, payload: dict[str, Any]) -> bool:
    if platform == "wecom":
        return len(payload["markdown"]["content"].encode("utf-8")) <= WECOM_MAX_CONTENT
    if platform == "dingtalk":
        return len(message_body) <= DINGTALK_MAX_BODY
    if platform == "feishu":
        return len(message_body) <= FEISHU_MAX_BODY
    blocks = payload["blocks"]
    return len(blocks) <= SLACK_MAX_BLOCKS and all(
        len(b["text"]["text"]) <= SLACK_MAX_SECTION for b in blocks if b["type"] == "section"
    )


@pytest.fixture
def bots() -> Iterator[BotReceiver]:
    with BotReceiver() as running:
        yield running


@pytest.fixture
def sleep(mocker: MockerFixture) -> Any:
    return mocker.Mock()


def make(url: str, sleep: Any, timeout: float = 2.0, attempts: int = 3) -> Sink:
    """Through the real factory, as SMS_STATS_SINKS would build it."""
    transport = Transport(timeout=timeout, max_attempts=attempts, sleep=sleep)
    (sink,) = build_sinks(Settings(sinks=(url,)), transport)
    return sink


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class TestBuild:
    @pytest.mark.parametrize(
        ("url", "kind", "host"),
        [
            (
                f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}",
                "wecom",
                "qyapi.weixin.qq.com",
            ),
            (
                "https://oapi.dingtalk.com/robot/send"
                f"?access_token={DINGTALK_TOKEN}&secret={DINGTALK_SECRET}",
                "dingtalk",
                "oapi.dingtalk.com",
            ),
            (
                f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}?secret={FEISHU_SECRET}",
                "feishu",
                "open.feishu.cn",
            ),
            (
                f"https://open.larksuite.com/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
                "feishu",
                "open.larksuite.com",
            ),
            (f"https://hooks.slack.com/services/{SLACK_PATH}", "slack", "hooks.slack.com"),
        ],
    )
    def test_given_real_bot_url_when_built_then_kind_by_host_and_name_without_secret(
        self, url: str, kind: str, host: str
    ) -> None:
        assert sink_kind(url) == (kind, url)
        (sink,) = build_sinks(Settings(sinks=(url,)))
        assert sink.name.startswith(f"{kind}:{host}#")
        assert_no_secret(sink.name)

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_kind_prefixed_local_url_when_built_then_that_kind_on_loopback(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        assert sink.name.startswith(f"{platform}:127.0.0.1:{bots.port}#")
        assert_no_secret(sink.name)

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?debug=1", "needs its ?key=KEY"),
            (
                f"https://oapi.dingtalk.com/robot/send?secret={DINGTALK_SECRET}",
                "needs its ?access_token=TOKEN",
            ),
            (
                f"https://open.feishu.cn/open-apis/bot/v2/hook/?secret={FEISHU_SECRET}",
                "/open-apis/bot/v2/hook/TOKEN",
            ),
            ("https://hooks.slack.com/services/T000/B000", "/services/T.../B.../SECRET"),
        ],
    )
    def test_given_bot_url_without_credential_when_built_then_config_error_names_item(
        self, url: str, rule: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            build_sinks(Settings(sinks=("file:out", url)))
        assert caught.value.message.startswith("SMS_STATS_SINKS item 2: ")
        assert rule in caught.value.message
        assert_no_secret(caught.value.message)

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/sendx?key={WECOM_KEY}", "the path"),
            (f"http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}", "must use https"),
            (
                f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}&key={WECOM_KEY}",
                "gives key more than once",
            ),
            (
                f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}"
                "&timestamp=1&sign=x",
                "must not carry timestamp or sign",
            ),
            (f"https://hooks.slack.com/services/{SLACK_PATH}/extra", "/services/T.../B.../"),
            (f"wecom+http://u:p@127.0.0.1:1/cgi-bin/webhook/send?key={WECOM_KEY}", "user:pass"),
        ],
    )
    def test_given_malformed_bot_url_when_built_then_rule_is_named_without_secret(
        self, url: str, rule: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            build_sinks(Settings(sinks=(url,)))
        assert rule in caught.value.message
        assert_no_secret(caught.value.message)


class TestDelivery:
    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_window_of_two_apps_when_delivered_then_receiver_verifies_one_readable_message(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        batch = [record(APP_A), record(APP_B, 10, 7, 12)]
        assert sink.batches(batch) == [batch]

        sink.deliver(batch)

        (message,) = bots.messages(platform)
        text = text_of(platform, message.payload)
        assert "SMS delivery stats" in text
        assert LOCAL_HOUR in text
        for figure in (APP_A, "requests 1,880", "successes 1,875", "99.73%", "billed parts 1,902"):
            assert figure in text
        for figure in (APP_B, "requests 10", "successes 7", "70.00%", "billed parts 12"):
            assert figure in text
        assert "All 2 apps" in text
        assert text.index(APP_A) < text.index(APP_B)
        for attempt in bots.attempts:  # the secret signs; it never travels
            assert "secret=" not in attempt.target
            for secret in (DINGTALK_SECRET, FEISHU_SECRET):
                assert secret not in attempt.target
                assert secret not in attempt.body.decode()
        sleep.assert_not_called()

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_no_traffic_when_delivered_then_rate_is_a_dash(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).deliver([record(APP_A, 0, 0, 0)])
        (payload,) = bots.payloads(platform)
        text = text_of(platform, payload)
        assert "rate \u2013" in text
        assert "requests 0" in text
        assert "All " not in text  # one app: no total line repeating it

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_600_apps_when_delivered_then_split_into_numbered_parts_within_limit(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        batch = many(600)
        sink = make(bots.url(platform), sleep)
        assert len(sink.batches(batch)) == 1

        sink.deliver(batch)

        messages = bots.messages(platform)
        count = len(messages)
        assert count > 1
        seen: list[str] = []
        for index, message in enumerate(messages, 1):
            assert within_limit(platform, message.body, message.payload)
            text = text_of(platform, message.payload)
            assert f"SMS delivery stats ({index}/{count})" in text
            assert LOCAL_HOUR in text
            assert "All 600 apps" in text
            seen += [r.sms_sdk_app_id for r in batch if f"{r.sms_sdk_app_id}*" in text]
        assert sorted(seen) == sorted(r.sms_sdk_app_id for r in batch)

    def test_given_200_apps_for_wecom_when_delivered_then_every_part_fits_4096_bytes(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        make(bots.url("wecom"), sleep).deliver(many(200))
        contents = [p["markdown"]["content"] for p in bots.payloads("wecom")]
        assert len(contents) >= 4
        assert all(len(c.encode("utf-8")) <= WECOM_MAX_CONTENT for c in contents)
        assert sum(c.count("\n**14001") for c in contents) == 200

    @pytest.mark.parametrize(("platform", "code"), RATE_LIMIT_CODES)
    def test_given_rate_limit_code_in_200_when_delivered_then_retried_then_ok(
        self, bots: BotReceiver, sleep: Any, platform: str, code: int
    ) -> None:
        message = "too many request" if code == 9499 else "too fast"
        bots.set_fault(platform, BotFault(error_code=code, error_message=message, times=1))
        make(bots.url(platform), sleep).deliver([record()])
        assert len(bots.payloads(platform)) == 1
        assert len(bots.attempts) == 2
        sleep.assert_called_once()

    @pytest.mark.parametrize("message", ["Bad Request", "param invalid: msg_type"])
    def test_given_feishu_9499_bad_request_when_delivered_then_final_without_retry(
        self, bots: BotReceiver, sleep: Any, message: str
    ) -> None:
        """9499 is Feishu's catch-all: only its "too many request" form is worth a retry."""
        bots.set_fault("feishu", BotFault(error_code=9499, error_message=message, times=1))
        with pytest.raises(SinkError, match=f"errcode 9499 {message}"):
            make(bots.url("feishu"), sleep).deliver([record()])
        assert len(bots.attempts) == 1
        sleep.assert_not_called()

    @pytest.mark.parametrize(
        ("platform", "code", "words"),
        [
            ("wecom", 93000, "errcode 93000 invalid webhook url"),
            ("dingtalk", 300001, "errcode 300001 token is not exist"),
            ("feishu", 19001, "errcode 19001 param invalid"),
            ("slack", 404, "HTTP 404: no_service"),
        ],
    )
    def test_given_unknown_credential_when_delivered_then_final_sink_error_without_secret(
        self, bots: BotReceiver, sleep: Any, platform: str, code: int, words: str
    ) -> None:
        wrong = "T000/B000/WrongToken999" if platform == "slack" else "wrong-credential-77"
        sink = make(bots.url(platform, key=wrong), sleep)
        with pytest.raises(SinkError) as caught:
            sink.deliver([record()])
        message = str(caught.value)
        assert message.startswith(f"{sink.name}: {words}")
        assert "after 1 attempt" in message
        assert wrong.rsplit("/", 1)[-1] not in message
        assert_no_secret(message)
        sleep.assert_not_called()

    @pytest.mark.parametrize("platform", ["wecom", "dingtalk", "feishu"])
    def test_given_final_code_in_200_when_delivered_then_sink_error_quotes_it(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        bots.set_fault(platform, BotFault(error_code=40035, error_message="bad param"))
        with pytest.raises(SinkError, match=r"errcode 40035 bad param \(after 1 attempt\)"):
            make(bots.url(platform), sleep).deliver([record()])
        sleep.assert_not_called()

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_500_once_when_delivered_then_retried_and_posted_once(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        bots.set_fault(platform, BotFault(http_status=500, times=1))
        make(bots.url(platform), sleep).deliver([record()])
        assert [a.status for a in bots.attempts] == [500, 200]
        assert len(bots.payloads(platform)) == 1

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_429_with_retry_after_when_delivered_then_waits_exactly_that(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        bots.set_fault(
            platform,
            BotFault(http_status=429, retry_after="7", error_message="rate_limited", times=1),
        )
        make(bots.url(platform), sleep).deliver([record()])
        sleep.assert_called_once_with(7.0)
        assert len(bots.payloads(platform)) == 1

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_receiver_hangs_when_delivered_with_small_timeout_then_sink_error(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        bots.set_fault(platform, BotFault(hang=True, times=1))
        sink = make(bots.url(platform), sleep, timeout=0.2, attempts=1)
        started = time.monotonic()
        with pytest.raises(SinkError, match=r"no answer within 0\.2 s"):
            sink.deliver([record()])
        assert time.monotonic() - started < 2
        assert bots.payloads(platform) == []

    @pytest.mark.parametrize(
        ("platform", "words"),
        [("dingtalk", "errcode 310000 sign not match"), ("feishu", "errcode 19021 sign match")],
    )
    def test_given_wrong_secret_when_delivered_then_refused_with_a_hint(
        self, bots: BotReceiver, sleep: Any, platform: str, words: str
    ) -> None:
        wrong = "SECwrongSecretForTheTest0000"
        sink = make(bots.url(platform, secret=wrong), sleep)
        with pytest.raises(SinkError) as caught:
            sink.deliver([record()])
        message = str(caught.value)
        assert words in message
        assert "secret" in message
        assert "clock" in message
        assert wrong not in message
        assert_no_secret(message)
        sleep.assert_not_called()

    @pytest.mark.parametrize(
        ("platform", "code"), [("dingtalk", "errcode 310000"), ("feishu", "errcode 19021")]
    )
    def test_given_clock_two_hours_behind_when_delivered_then_refused_as_stale(
        self, bots: BotReceiver, sleep: Any, platform: str, code: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        sink.clock = lambda: time.time() - 7200  # type: ignore[attr-defined]
        with pytest.raises(SinkError, match=code):
            sink.deliver([record()])

    @pytest.mark.parametrize("platform", ["dingtalk", "feishu"])
    def test_given_retry_when_signed_then_each_attempt_carries_its_own_timestamp(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        now = time.time()
        ticks = iter([now - 30, now])
        sink = make(bots.url(platform), sleep)
        sink.clock = lambda: next(ticks)  # type: ignore[attr-defined]
        bots.set_fault(platform, BotFault(http_status=503, times=1))
        sink.deliver([record()])
        first, second = bots.attempts
        assert (first.status, second.status) == (503, 200)
        if platform == "dingtalk":
            assert first.target != second.target
            assert f"timestamp={int(now * 1000)}" in second.target
        else:
            assert json.loads(first.body)["timestamp"] != json.loads(second.body)["timestamp"]
            assert json.loads(second.body)["timestamp"] == str(int(now))

    @pytest.mark.parametrize("platform", ["dingtalk", "feishu"])
    def test_given_bot_without_signing_when_delivered_then_no_signature_is_sent(
        self, sleep: Any, platform: str
    ) -> None:
        with BotReceiver(dingtalk_secret=None, feishu_secret=None) as bots:
            make(bots.url(platform), sleep).deliver([record()])
            (message,) = bots.messages(platform)
        assert "sign" not in message.target
        assert "sign" not in message.payload

    def test_given_second_part_fails_when_delivered_then_error_says_how_many_arrived(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        bots.set_fault("wecom", BotFault(error_code=40058, error_message="too long", after=1))
        with pytest.raises(SinkError, match=r"errcode 40058 .*\[part 2 of \d+; 1 delivered\]"):
            make(bots.url("wecom"), sleep).deliver(many(200))
        assert len(bots.payloads("wecom")) == 1


def hours(count: int) -> list[Window]:
    first = HOUR.start
    return [
        Window.through(first + timedelta(hours=i), first + timedelta(hours=i)) for i in range(count)
    ]


class TestPacing:
    """Each bot paces itself to its platform's documented rate; the receiver enforces it."""

    @pytest.mark.parametrize("platform", ["wecom", "dingtalk"])
    def test_given_21_windows_in_a_minute_when_deadline_near_then_20_posted_none_refused(
        self, sleep: Any, platform: str
    ) -> None:
        records = [record(window=w) for w in hours(21)]
        with BotReceiver(enforce_rate_limits=True) as bots:
            sink = make(bots.url(platform), sleep)
            started = time.monotonic()
            outcomes = deliver_all(records, [sink], deadline=started + 8.0)

            assert time.monotonic() - started < 8.0  # no waiting for a slot that cannot come
            assert len(bots.messages(platform)) == 20
            assert bots.rate_limited == 0  # never refused (DingTalk would mute for 10 min)
        assert [o.ok for o in outcomes] == [True] * 20 + [False]
        last = outcomes[-1]
        assert last.window == str(records[-1].window)
        assert "takes at most 20 messages a minute" in (last.error or "")
        assert "no slot is free before this invocation's time runs out" in (last.error or "")
        assert_no_secret(last.error or "")

    @pytest.mark.parametrize(("platform", "windows"), [("feishu", 7), ("slack", 2)])
    def test_given_more_windows_than_a_second_allows_when_delivered_then_paced_none_refused(
        self, sleep: Any, platform: str, windows: int
    ) -> None:
        """Feishu takes 5 a second, Slack 1: the last message waits for the next second."""
        records = [record(window=w) for w in hours(windows)]
        with BotReceiver(enforce_rate_limits=True) as bots:
            sink = make(bots.url(platform), sleep)
            started = time.monotonic()
            outcomes = deliver_all(records, [sink], deadline=started + 30.0)

            assert all(o.ok for o in outcomes)
            assert len(bots.messages(platform)) == windows
            assert bots.rate_limited == 0
            assert time.monotonic() - started >= 1.0

    def test_given_two_sink_objects_for_one_robot_when_delivering_then_they_share_the_pace(
        self, sleep: Any
    ) -> None:
        """Settings rebuilt (or a backfill beside the timer's sinks): still one robot's rate."""
        with BotReceiver(enforce_rate_limits=True) as bots:
            first = make(bots.url("wecom"), sleep)
            second = make(bots.url("wecom"), sleep)
            assert first is not second
            deadline = time.monotonic() + 8.0
            deliver_all([record(window=w) for w in hours(15)], [first], deadline=deadline)
            outcomes = deliver_all(
                [record(window=w) for w in hours(21)[15:]], [second], deadline=deadline
            )

            assert [o.ok for o in outcomes] == [True] * 5 + [False]
            assert bots.rate_limited == 0

    def test_given_receiver_enforcing_when_pacing_bypassed_then_it_refuses_the_21st(
        self, sleep: Any
    ) -> None:
        """The stand-in's limit is real: without our pacing the platform answer is what stops us."""
        with BotReceiver(enforce_rate_limits=True) as bots:
            sink = make(bots.url("wecom"), sleep, attempts=1)
            for index, window in enumerate(hours(21)):
                payload = sink.messages(summarize([record(window=window)]))[0]  # type: ignore[attr-defined]
                url = sink.url  # type: ignore[attr-defined]
                try:
                    sink.transport.post(  # type: ignore[attr-defined]
                        url, json.dumps(payload).encode(), {}, name="raw", check=wecom.check
                    )
                except SinkError as exc:
                    assert index == 20
                    assert "errcode 45009" in str(exc)
            assert bots.rate_limited == 1


class TestSummary:
    @pytest.mark.parametrize("platform", PLATFORMS)
    @pytest.mark.parametrize(
        ("begin", "end", "tz", "shown"),
        [
            (
                "2021032713",
                "2021032818",
                "Europe/London",  # the clocks go forward inside this range
                "2021-03-27 13:00 \u2013 2021-03-28 19:00 Europe/London (+00:00/+01:00)",
            ),
            (
                "2021050113",
                "2021050218",
                "America/Argentina/Buenos_Aires",
                "2021-05-01 13:00 \u2013 2021-05-02 19:00 America/Argentina/Buenos_Aires (-03:00)",
            ),
        ],
    )
    def test_given_long_window_text_when_posted_then_never_clipped(
        self,
        bots: BotReceiver,
        sleep: Any,
        platform: str,
        begin: str,
        end: str,
        tz: str,
        shown: str,
    ) -> None:
        """The window is ours and bounded: only user values (app ids) are clipped to 64."""
        window = Window.from_api(begin, end, zone(tz))
        counts = Counts(10, 9, 10, "rid")
        batch = [Record(APP_A, window, tz, counts, datetime(2021, 5, 1, tzinfo=timezone.utc))]
        make(bots.url(platform), sleep).deliver(batch)
        (payload,) = bots.payloads(platform)
        everything = json.dumps(payload, ensure_ascii=False)  # titles and fallbacks included
        assert "\u2026" not in everything
        seen = everything.replace("\\_", "_").replace("&#95;", "_")  # markdown / lark escapes
        assert seen.count(shown) == (1 if platform in ("wecom", "feishu") else 2)

    def test_given_records_of_two_windows_when_batched_then_one_batch_per_window(self) -> None:
        later = Window.from_api("2021050113", "2021050113", SHANGHAI)
        records = [record(APP_A), record(APP_A, window=later), record(APP_B)]
        assert by_window(records) == [[records[0], records[2]], [records[1]]]

    @pytest.mark.parametrize(
        ("begin", "end", "tz", "expected"),
        [
            ("2021050112", "2021050112", "Asia/Shanghai", LOCAL_HOUR),
            (
                "2021050100",
                "2021050123",
                "Asia/Shanghai",
                "2021-05-01, whole day Asia/Shanghai (+08:00)",
            ),
            (
                "2021050100",
                "2021050323",
                "Asia/Shanghai",
                "2021-05-01 \u2013 2021-05-03, 3 days Asia/Shanghai (+08:00)",
            ),
            (
                "2021050122",
                "2021050201",
                "Asia/Shanghai",
                "2021-05-01 22:00 \u2013 2021-05-02 02:00 Asia/Shanghai (+08:00)",
            ),
            (
                "2021050123",
                "2021050123",
                "Asia/Shanghai",
                "2021-05-01 23:00\u201324:00 Asia/Shanghai (+08:00)",
            ),
            (
                "2021031400",
                "2021031423",
                "America/Los_Angeles",
                "2021-03-14, whole day America/Los_Angeles (-08:00/-07:00)",
            ),
        ],
    )
    def test_given_window_when_written_then_local_span_zone_and_offset(
        self, begin: str, end: str, tz: str, expected: str
    ) -> None:
        assert window_text(Window.from_api(begin, end, zone(tz)), tz) == expected

    @pytest.mark.parametrize(
        ("rate", "text"),
        [
            (None, "\u2013"),
            (1.0, "100.00%"),
            (0.99999, "99.99%"),
            (0.9973, "99.73%"),
            (0.00001, "0.01%"),
            (0.0, "0.00%"),
        ],
    )
    def test_given_rate_when_written_then_never_rounded_into_all_or_nothing(
        self, rate: float | None, text: str
    ) -> None:
        assert percent(rate) == text

    def test_given_hostile_value_when_escaped_then_markup_is_neutralised(self) -> None:
        value = "<at id=all>*bold*_x_ [l](u)\n# h"
        assert escape_markdown(value) == "\\<at id=all\\>\\*bold\\*\\_x\\_ \\[l\\](u) \\# h"
        assert escape_markdown("America/Los_Angeles") == "America/Los_Angeles"
        assert "<" not in escape_lark(value)
        assert "*" not in escape_lark(value)
        assert escape_slack("<!channel> & co") == "&lt;!channel&gt; &amp; co"
        assert escape_markdown("9" * 100).endswith("\u2026")
        assert len(escape_markdown("9" * 100)) == 64

    @pytest.mark.parametrize("limit", [1, 2, 3, 7, 50, 1000])
    def test_given_size_limit_when_packed_then_fewest_parts_in_order(self, limit: int) -> None:
        rows = tuple(Row(str(i), (f"requests {i}",)) for i in range(53))
        parts = pack(rows, lambda chunk, part: len(chunk) <= limit)
        assert [r for part in parts for r in part] == list(rows)
        assert all(len(part) == min(limit, 53) for part in parts[:-1])
        assert len(parts) == -(-53 // limit)

    def test_given_summary_of_mixed_apps_when_totalled_then_rate_from_sums(self) -> None:
        summary = summarize([record(APP_A, 100, 90, 100), record(APP_B, 0, 0, 0)])
        assert summary.total == Row(
            "", ("requests 100", "successes 90", "rate 90.00%", "billed parts 100")
        )


class TestThroughHandler:
    def test_given_timer_with_wecom_and_slack_when_handled_then_one_message_each_with_both_apps(
        self,
        scf_env: dict[str, str],
        bots: BotReceiver,
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        every = "records,alerts,digest"  # bots take no hourly records unless asked
        sinks = f"{bots.url('wecom', notify=every)},{bots.url('slack', notify=every)}"
        assert sinks.startswith("wecom+http://127.0.0.1:")
        monkeypatch.setenv("SMS_STATS_SINKS", sinks)

        summary = main_handler(load_event("timer.json"), context)

        assert summary["ok"] is True
        assert len(summary["deliveries"]) == 4
        for platform in ("wecom", "slack"):
            (payload,) = bots.payloads(platform)
            text = text_of(platform, payload)
            assert APP_A in text
            assert APP_B in text
            assert LOCAL_HOUR in text
            for figure in summary["records"]:
                assert f"requests {figure['request_count']:,}" in text

    def test_given_failing_bots_when_handled_then_no_secret_in_errors_names_or_logs(
        self,
        scf_env: dict[str, str],
        bots: BotReceiver,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        context: dict[str, Any],
    ) -> None:
        wrong = {
            "wecom": "wk-wrong-0f3e2d1c",
            "dingtalk": "SECwrongDing7f6e5d",
            "feishu": "fsWrongSecret4c3b2a",
            "slack": "T000/B000/WrongSlackToken5e4d",
        }
        urls = [
            bots.url("wecom", key=wrong["wecom"], notify="records"),
            bots.url("dingtalk", secret=wrong["dingtalk"], notify="records"),
            bots.url("feishu", secret=wrong["feishu"], notify="records"),
            bots.url("slack", key=wrong["slack"], notify="records"),
            bots.url("slack", notify="records"),
        ]
        monkeypatch.setenv("SMS_STATS_SINKS", ",".join(urls))
        leaks = [*SECRETS, *wrong.values(), "WrongSlackToken5e4d"]

        with pytest.raises(DeliveryError) as caught:
            main_handler(load_event("timer.json"), context)

        out = capsys.readouterr().out
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        failed = [line for line in lines if line.get("event") == "delivery" and not line["ok"]]
        assert len(failed) == 8  # 4 failing bots x 2 apps
        errors = " ".join(line["error"] for line in failed)
        for words in ("errcode 93000", "errcode 310000", "errcode 19021", "HTTP 404: no_service"):
            assert words in errors
        names = [s.name for s in handler.sinks_for(handler.current_settings())]
        for leak in leaks:
            assert leak not in caught.value.message
            assert leak not in out
            assert all(leak not in name for name in names)
        assert len(bots.payloads("slack")) == 1


class TestRepeats:
    """SCF retries a failed run whole: a summary already in the chat is not posted again."""

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_summary_posted_when_delivered_again_by_a_new_sink_object_then_not_reposted(
        self, bots: BotReceiver, sleep: Any, platform: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        batch = [record(APP_A), record(APP_B)]
        make(bots.url(platform), sleep).deliver(batch)
        make(bots.url(platform), sleep).deliver(batch)  # settings rebuilt: a new sink object

        assert len(bots.messages(platform)) == 1
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
        (skipped,) = [x for x in lines if x["event"] == "delivery.repeat_skipped"]
        assert skipped["window"] == str(HOUR)
        assert skipped["messages"] == 1

    def test_given_figures_changed_when_delivered_again_then_posted_again(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        sink = make(bots.url("wecom"), sleep)
        sink.deliver([record(requests=1880)])
        sink.deliver([record(requests=1881)])  # late delivery reports moved the count

        assert len(bots.messages("wecom")) == 2

    def test_given_split_failed_at_part_2_when_run_again_then_each_part_posted_once(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        batch = many(200)
        sink = make(bots.url("wecom"), sleep, attempts=1)
        bots.set_fault("wecom", BotFault(http_status=502, after=1, times=1))
        with pytest.raises(SinkError, match=r"\[part 2 of (\d+); 1 delivered\]"):
            sink.deliver(batch)

        sink.deliver(batch)

        contents = [p["markdown"]["content"] for p in bots.payloads("wecom")]
        assert len(contents) == len(set(contents))  # part 1 is not in the chat twice
        count = len(contents)
        assert count > 2
        assert [f"({i}/{count})" in c for i, c in enumerate(contents, 1)] == [True] * count

    def test_given_webhook_down_when_scf_retries_the_timer_then_bot_posted_once(
        self,
        scf_env: dict[str, str],
        bots: BotReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        mocker: MockerFixture,
    ) -> None:
        mocker.patch("sms_stats.deliver.transport.time.sleep")
        down = "webhook+http://127.0.0.1:9/hooks"  # the discard port: connection refused
        bot = bots.url("dingtalk", notify="records")
        monkeypatch.setenv("SMS_STATS_SINKS", f"{bot},{down}")
        event = load_event("timer.json")

        for _ in range(3):  # the invocation and SCF's two retries
            with pytest.raises(DeliveryError, match="could not connect"):
                main_handler(event, context)

        assert len(bots.messages("dingtalk")) == 1


class TestPosted:
    def test_given_ttl_passed_when_asked_then_forgotten(self) -> None:
        now = [0.0]
        memory = Posted(ttl_s=60.0, clock=lambda: now[0])
        memory.add("k")
        now[0] = 59.0
        assert memory.seen("k")
        now[0] = 61.0
        assert not memory.seen("k")

    def test_given_more_than_size_when_added_then_oldest_forgotten(self) -> None:
        memory = Posted(size=2)
        for key in ("a", "b", "c"):
            memory.add(key)
        assert [memory.seen(k) for k in ("a", "b", "c")] == [False, True, True]

    def test_given_two_robots_when_same_payload_then_different_keys(self) -> None:
        payload = {"msgtype": "markdown", "markdown": {"content": "x"}}
        assert Posted.key("wecom:a#1", payload) != Posted.key("wecom:b#2", payload)


class TestPack:
    def test_given_fit_depends_on_part_label_when_packed_then_every_part_fits_its_real_label(
        self,
    ) -> None:
        """`(10/15)` is wider than `(1/30)`: packing must measure the widest label it may use."""
        rows = tuple(Row(str(i), (f"requests {i}",)) for i in range(30))

        def fits(chunk: Any, part: Part) -> bool:
            return len(chunk) * 10 + len(part.suffix) <= 27

        parts = pack(rows, fits)
        assert [r for part in parts for r in part] == list(rows)
        assert all(fits(p, Part(i, len(parts))) for i, p in enumerate(parts, 1))

    def test_given_row_too_long_alone_when_packed_then_sink_error_names_the_app(self) -> None:
        rows = (Row("1400006874", ("requests 1",)), Row("1400006875", ("requests 1",)))
        with pytest.raises(SinkError, match="1400006874 alone exceeds"):
            pack(rows, lambda chunk, part: False)


class TestBotAnswers:
    @pytest.mark.parametrize("answer", [b"{}", b'{"errcode": null}', b'{"errmsg": "ok"}'])
    def test_given_200_without_an_error_code_when_checked_then_not_delivered(
        self, answer: bytes
    ) -> None:
        verdict = wecom.check(200, answer)
        assert verdict.error is not None
        assert "without an error code" in verdict.error


class TestBotEdges:
    @pytest.fixture
    def bots(self) -> Iterator[BotReceiver]:
        with BotReceiver() as running:
            yield running

    def test_given_feishu_url_with_extra_path_when_built_then_config_error_names_the_path(
        self,
    ) -> None:
        url = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}/extra"
        with pytest.raises(ConfigError, match="path"):
            build_sinks(Settings(sinks=(url,)))

    @pytest.mark.parametrize(
        ("platform", "code", "message"),
        [
            ("dingtalk", 410100, "send too fast"),
            ("feishu", 9499, "request trigger frequency limit"),
        ],
    )
    def test_given_other_rate_limit_answer_when_delivered_then_retried_then_ok(
        self, bots: BotReceiver, mocker: Any, platform: str, code: int, message: str
    ) -> None:
        sleep = mocker.Mock()
        bots.set_fault(platform, BotFault(error_code=code, error_message=message, times=1))
        transport = Transport(timeout=2.0, max_attempts=3, sleep=sleep)
        (sink,) = build_sinks(Settings(sinks=(bots.url(platform),)), transport)
        sink.deliver([seed_record()])
        assert len(bots.payloads(platform)) == 1
        assert len(bots.attempts) == 2

    def test_given_slack_200_with_other_body_when_checked_then_not_delivered(self) -> None:
        """A proxy or login page answering 200 must not count as posted."""
        assert slack.check(200, b"<html>sign in</html>").error is not None


class TestOtherKinds:
    """Receipts and balances read as what they are, on every platform."""

    @staticmethod
    def receipts(app_id: str, total: int, delivered: int, blocked: int) -> CallbackRecord:
        window = Window.from_api("2021050112", "2021050112", zone("Asia/Shanghai"))
        counts = Receipts(
            request_success_count=total + 5,
            callback_count=total,
            callback_success_count=delivered,
            callback_fail_count=total - delivered,
            internal_error_count=total - delivered - blocked,
            invalid_number_count=0,
            shutdown_error_count=0,
            black_list_count=blocked,
            frequency_limit_count=0,
            request_id="r",
        )
        return CallbackRecord(app_id, window, "Asia/Shanghai", counts, datetime(2021, 5, 1, 5, 5))

    @pytest.mark.parametrize("platform", ["wecom", "dingtalk", "feishu", "slack"])
    def test_given_receipts_when_posted_then_delivered_failed_why_and_pending(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        batch = [self.receipts(APP_A, 1850, 1821, 4), self.receipts(APP_B, 10, 10, 0)]
        sink.deliver(batch)
        (message,) = bots.messages(platform)
        text = text_of(platform, message.payload)
        assert "SMS delivery receipts" in text
        assert LOCAL_HOUR in text
        for figure in ("receipts 1,850", "delivered 1,821", "98.43%", "failed 29", "pending 5"):
            assert figure in text
        assert "blocklisted 4" in text
        assert "carrier error 25" in text
        assert "All 2 apps" in text

    @pytest.mark.parametrize("platform", ["wecom", "dingtalk", "feishu", "slack"])
    def test_given_a_balance_when_posted_then_left_and_next_expiry(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        shanghai = zone("Asia/Shanghai")
        as_of = datetime(2021, 5, 1, 13, 5, tzinfo=shanghai)
        utc = timezone.utc
        packages = (
            Package(
                1,
                True,
                1000,
                400,
                datetime(2020, 6, 1, tzinfo=utc),
                datetime(2020, 6, 1, tzinfo=utc),
                datetime(2021, 6, 1, tzinfo=utc),
            ),
            Package(
                2,
                False,
                500,
                0,
                datetime(2019, 6, 1, tzinfo=utc),
                datetime(2019, 6, 1, tzinfo=utc),
                datetime(2021, 4, 1, tzinfo=utc),
            ),
        )
        record = BalanceRecord(APP_A, as_of, packages, "r", as_of)
        make(bots.url(platform), sleep).deliver([record])
        (message,) = bots.messages(platform)
        text = text_of(platform, message.payload)
        assert "SMS balance" in text
        assert "as of 2021-05-01 13:05 Asia/Shanghai (+08:00)" in text
        assert "left 600" in text  # the expired gift's 500 are lost, not counted
        assert "next expiry 2021-06-01 (600 messages)" in text
