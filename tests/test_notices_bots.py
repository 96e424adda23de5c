"""Alerts and the digest posted by the four chat bots to the local receiver that verifies them
as each platform does (keys, signatures, shapes, size limits), then read as a person sees them:
each platform's markup undone the way the platform renders it (`shown`)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_mock import MockerFixture

from sms_stats.core.notices import CHAT_TOPICS
from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.notices import summary
from sms_stats.deliver.chat.sink import ChatSink
from sms_stats.deliver.sinks import SinkError, build_sinks
from sms_stats.deliver.transport import Transport

from .conftest import APP_A, APP_B
from .notice_samples import APP_C, RULE, SINCE, app_day, digest, firing, resolved
from .standins.bots import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    FEISHU_SECRET,
    FEISHU_TOKEN,
    PLATFORMS,
    SLACK_PATH,
    WECOM_KEY,
    BotFault,
    BotReceiver,
)

SECRETS = (
    WECOM_KEY,
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    FEISHU_TOKEN,
    FEISHU_SECRET,
    SLACK_PATH.rsplit("/", 1)[1],
)
OWN_SECRETS = {
    "wecom": WECOM_KEY,
    "dingtalk": f"{DINGTALK_TOKEN} {DINGTALK_SECRET}",
    "feishu": f"{FEISHU_TOKEN} {FEISHU_SECRET}",
    "slack": SLACK_PATH,
}
LOCAL_HOUR = "2021-05-01 13:00\u201314:00 Asia/Shanghai (+08:00)"
# Every character common Markdown, lark_md or Slack mrkdwn would read as markup, and a mention.
HOSTILE = "P1 *hot* <!channel> [a](http://x) #ops _x_ ~y~ `c` a|b & co"
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: backslash + ASCII punctuation
_MD_SPECIAL = re.compile(r"(?<!\\)[*\[\]<>#|~`]")


@pytest.fixture
def bots() -> Iterator[BotReceiver]:
    with BotReceiver() as running:
        yield running


@pytest.fixture
def sleep(mocker: MockerFixture) -> Any:
    return mocker.Mock()


def make(url: str, sleep: Any, attempts: int = 3) -> ChatSink:
    """Through the real factory, as SMS_STATS_SINKS would build it."""
    transport = Transport(timeout=2.0, max_attempts=attempts, sleep=sleep)
    (sink,) = build_sinks(Settings(sinks=(url,)), transport)
    assert isinstance(sink, ChatSink)
    return sink


def markdown_shown(text: str) -> str:
    """Common Markdown as WeCom and DingTalk show it: bold markers, heading and list marks
    gone, backslash escapes shown as the character."""
    text = re.sub(r"^(#### |- )", "", text, flags=re.MULTILINE)
    text = re.sub(r"(?<!\\)\*\*", "", text)
    return _MD_ESCAPE.sub(r"\1", text)


def lark_shown(text: str) -> str:
    return html.unescape(re.sub(r"\*\*", "", text))


def slack_shown(text: str) -> str:
    """mrkdwn: `*bold*` around our labels; &amp; &lt; &gt; are its only escapes."""
    text = re.sub(r"(?<![\w*])\*([^*\n]+?)\*(?![\w*])", r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def shown(platform: str, payload: dict[str, Any]) -> str:
    """Everything a reader sees in one posted message, as the platform renders it."""
    if platform == "wecom":
        return markdown_shown(payload["markdown"]["content"])
    if platform == "dingtalk":
        markdown = payload["markdown"]
        return f"{markdown['title']}\n{markdown_shown(markdown['text'])}"  # title: plain text
    if platform == "feishu":
        card = payload["card"]
        texts = [lark_shown(e["text"]["content"]) for e in card["elements"] if "text" in e]
        return "\n".join([card["header"]["title"]["content"], *texts])  # header: plain text
    blocks = payload["blocks"]
    texts = [
        b["text"]["text"] if b["type"] == "header" else slack_shown(b["text"]["text"])
        for b in blocks
        if "text" in b
    ]
    # The fallback (notifications) is mrkdwn unless the payload turns that off.
    fallback = payload["text"]
    if payload.get("mrkdwn", True) is not False:
        fallback = slack_shown(fallback)
    else:
        fallback = html.unescape(fallback)
    return "\n".join([fallback, *texts])


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class TestAlerts:
    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_firing_alert_when_notified_then_one_message_says_what_which_app_and_since(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        assert sink.topics == CHAT_TOPICS

        sink.notify(firing())

        (payload,) = bots.payloads(platform)
        text = shown(platform, payload)
        assert f"SMS alert: {RULE}" in text
        assert LOCAL_HOUR in text
        assert APP_A in text
        assert (
            "delivery rate 72.10% \u00b7 threshold below 90.00% \u00b7 since 2021-05-01 13:00"
            in (text)
        )
        assert "still firing" not in text
        sleep.assert_not_called()

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_repeat_of_firing_alert_when_notified_then_it_says_still_firing_since(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).notify(
            firing("alert_fire_1_2021050111_repeat_2021050113", since=SINCE)
        )
        text = shown(platform, bots.payloads(platform)[0])
        assert "still firing since 2021-05-01 11:00" in text

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_resolved_alert_when_notified_then_value_now_and_how_long_it_lasted(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).notify(resolved())

        (payload,) = bots.payloads(platform)
        text = shown(platform, payload)
        assert f"SMS alert resolved: {RULE}" in text
        assert APP_A in text
        assert "delivery rate now 95.20% \u00b7 threshold below 90.00% \u00b7 lasted 2 h" in text

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_rule_name_with_markup_when_notified_then_shown_as_written_never_as_markup(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).notify(firing(alert=HOSTILE))

        (payload,) = bots.payloads(platform)
        text = shown(platform, payload)
        # Wherever the title shows (a heading, a notification's text), it shows as written.
        assert text.count(f"SMS alert: {HOSTILE}") == text.count("SMS alert: ") > 0
        if platform in ("wecom", "dingtalk"):
            raw = payload["markdown"]["content" if platform == "wecom" else "text"]
            title = raw.splitlines()[0].strip("*# ")
            assert _MD_SPECIAL.findall(title) == []  # every special is backslash-escaped
        if platform == "slack":  # a mention in a rule name must not ping the channel
            assert "<!channel>" not in payload["text"]
            assert all(
                "<!channel>" not in b["text"]["text"] for b in payload["blocks"][1:] if "text" in b
            )

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_huge_rule_name_when_notified_then_clipped_and_still_posted(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).notify(firing(alert="y" * 5000))
        text = shown(platform, bots.payloads(platform)[0])
        assert "y" * 63 + "\u2026" in text
        assert "y" * 65 not in text

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_same_notice_twice_when_notified_then_posted_once(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        sink = make(bots.url(platform), sleep)
        sink.notify(firing())
        sink.notify(firing())  # SCF retried the run
        assert len(bots.messages(platform)) == 1

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_bot_refuses_when_notified_then_sink_error_names_sink_without_secret(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        echo = f"refused for {OWN_SECRETS[platform]}"  # a receiver echoing the credential
        bots.set_fault(platform, BotFault(error_code=40035, error_message=echo))
        sink = make(bots.url(platform), sleep)

        with pytest.raises(SinkError) as caught:
            sink.notify(firing())

        assert str(caught.value).startswith(f"{sink.name}: ")
        assert_no_secret(str(caught.value))

    def test_given_notice_data_not_the_contracts_when_notified_then_sink_error_and_nothing_posted(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        sink = make(bots.url("wecom"), sleep)
        with pytest.raises(SinkError, match=r"cannot be worded: .*since"):
            sink.notify(firing(since="an hour ago"))
        assert bots.attempts == []


class TestDigest:
    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_three_apps_when_notified_then_a_line_per_app_and_the_total(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        make(bots.url(platform), sleep).notify(digest())

        (payload,) = bots.payloads(platform)
        text = shown(platform, payload)
        assert "SMS daily digest" in text
        assert "2021-05-01, whole day Asia/Shanghai (+08:00)" in text
        lines = text.splitlines()
        (line_a,) = [line for line in lines if line.startswith(APP_A)]
        for figure in (
            "requests 18,800",
            "success rate 99.73%",
            "billed parts 19,020",
            "receipts 18,700",
            "delivery rate 98.00%",
            "balance left 120,000",
            "alerts fired 2",
        ):
            assert figure in line_a
        (line_b,) = [line for line in lines if line.startswith(APP_B)]
        assert "success rate 99.00%" in line_b
        assert "delivery rate 98.98%" in line_b
        (line_c,) = [line for line in lines if line.startswith(APP_C)]
        assert "success rate \u2013" in line_c
        assert "balance left \u2013" in line_c
        (total,) = [line for line in lines if line.startswith("All 3 apps:")]
        for figure in ("requests 19,800", "success rate 99.70%", "delivery rate 98.05%"):
            assert figure in total

    @pytest.mark.parametrize("platform", PLATFORMS)
    def test_given_more_apps_than_one_message_holds_when_notified_then_numbered_parts_all_apps(
        self, bots: BotReceiver, sleep: Any, platform: str
    ) -> None:
        apps = [
            app_day(str(1400100000 + i), 1000 + i, 990, 1000, 980, 970, 5000, 0) for i in range(400)
        ]
        notice = digest(apps=apps)
        sink = make(bots.url(platform), sleep)
        expected = len(sink.messages(summary(notice)))
        assert expected > 1

        sink.notify(notice)

        texts = [shown(platform, p) for p in bots.payloads(platform)]
        assert len(texts) == expected
        assert all(f"SMS daily digest ({i}/{expected})" in t for i, t in enumerate(texts, 1))
        everything = "\n".join(texts)
        assert all(app["app_id"] in everything for app in apps)

    def test_given_failure_at_part_2_when_notified_again_then_each_part_posted_once(
        self, bots: BotReceiver, sleep: Any
    ) -> None:
        apps = [app_day(str(1400100000 + i), 1000, 990, 1000, 980, 970, 5000, 0) for i in range(60)]
        notice = digest(apps=apps)
        sink = make(bots.url("wecom"), sleep, attempts=1)
        bots.set_fault("wecom", BotFault(http_status=502, after=1, times=1))
        with pytest.raises(SinkError, match=r"\[part 2 of (\d+); 1 delivered\]"):
            sink.notify(notice)

        sink.notify(notice)

        contents = [p["markdown"]["content"] for p in bots.payloads("wecom")]
        assert len(contents) == len(set(contents)) > 2
