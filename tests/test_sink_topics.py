"""`?notify=`: what each sink receives, taken off its URL; records only to sinks that take them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import ConfigError, DeliveryError
from sms_stats.core.notices import CHAT_TOPICS, STORE_TOPICS, WEBHOOK_TOPICS
from sms_stats.core.settings import Settings, load_settings
from sms_stats.deliver.outbox import Outbox
from sms_stats.deliver.sinks import Sink, build_each, build_sinks
from sms_stats.deliver.topics import rejoin, split_notify
from sms_stats.run import preflight
from sms_stats.store.file import FileSink

from .conftest import APP_A, APP_B, SECRET_ID, SECRET_KEY, load_event, record_files, seed_record
from .standins.bots import BotReceiver
from .standins.webhook import WebhookReceiver

KEY = "wk-notify-SENTINEL-51c2"
WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=dt-tok-9&secret=SECdt-9"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/fs-tok-9"
SLACK = "https://hooks.slack.com/services/T0/B0/slacktok9"
HOOK = "https://hooks.example.com/sms?token=hook-tok-9"
COS = "cos://sms-stats-1250000000/stats?region=ap-shanghai"
CREDENTIALS = {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY}
DOWN = "webhook+http://127.0.0.1:9/hooks"  # the discard port: connection refused


def built(*urls: str) -> list[Sink]:
    return build_sinks(Settings(sinks=urls, secret_id=SECRET_ID, secret_key=SECRET_KEY))


def problems(*urls: str) -> list[str]:
    return build_each(Settings(sinks=urls, secret_id=SECRET_ID, secret_key=SECRET_KEY))[1]


def with_notify(url: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}notify={value}"


class TestDefaults:
    @pytest.mark.parametrize(
        ("url", "topics"),
        [
            ("file:out", STORE_TOPICS),
            (COS, STORE_TOPICS),
            (HOOK, WEBHOOK_TOPICS),
            (WECOM, CHAT_TOPICS),
            (DINGTALK, CHAT_TOPICS),
            (FEISHU, CHAT_TOPICS),
            (SLACK, CHAT_TOPICS),
        ],
        ids=["file", "cos", "webhook", "wecom", "dingtalk", "feishu", "slack"],
    )
    def test_given_no_notify_when_built_then_the_kinds_default(
        self, url: str, topics: frozenset[str]
    ) -> None:
        (sink,) = built(url)
        assert sink.topics == topics

    def test_given_the_contracts_defaults_then_stores_records_webhooks_all_bots_notices(
        self,
    ) -> None:
        assert {"records"} == STORE_TOPICS
        assert {"records", "alerts", "digest"} == WEBHOOK_TOPICS
        assert {"alerts", "digest"} == CHAT_TOPICS


class TestExplicit:
    @pytest.mark.parametrize(
        ("value", "topics"),
        [
            ("records", {"records"}),
            ("alerts,digest", {"alerts", "digest"}),
            ("Records,ALERTS", {"records", "alerts"}),
            ("records,alerts,digest", {"records", "alerts", "digest"}),
            ("alerts,alerts", {"alerts"}),  # a repeat is no problem
            ("records%2Cdigest", {"records", "digest"}),  # an encoded comma
            ("records,+digest", {"records", "digest"}),  # a space after the comma
        ],
    )
    def test_given_notify_when_built_then_its_topics(self, value: str, topics: set[str]) -> None:
        for url in ("file:out", HOOK, WECOM):
            (sink,) = built(with_notify(url, value))
            assert sink.topics == topics, url

    def test_given_an_unknown_value_when_built_then_a_problem_naming_it_and_not_the_url(
        self,
    ) -> None:
        found = problems("file:out", with_notify(WECOM, "records,alert"))
        assert found == [
            "SMS_STATS_SINKS item 2: notify: unknown 'alert'; use any of records, alerts, digest"
        ]
        with pytest.raises(ConfigError) as caught:
            built(with_notify(WECOM, "alert"))
        assert KEY not in caught.value.message

    @pytest.mark.parametrize("value", ["", ",", "+"])
    def test_given_an_empty_value_when_built_then_a_problem(self, value: str) -> None:
        assert problems(with_notify(HOOK, value)) == [
            "SMS_STATS_SINKS item 1: notify: names nothing; use any of records, alerts, digest"
        ]

    def test_given_notify_twice_when_built_then_a_problem(self) -> None:
        (problem,) = problems(f"{with_notify(WECOM, 'records')}&notify=alerts")
        assert problem.startswith("SMS_STATS_SINKS item 1: notify: given more than once")
        assert KEY not in problem


class TestUrlTheSinkGets:
    def test_given_notify_between_a_bots_params_when_built_then_the_rest_is_kept_as_written(
        self,
    ) -> None:
        (hook,) = built("https://hooks.example.com/sms?token=a%2Fb&notify=alerts&x=1")
        assert hook.url == "https://hooks.example.com/sms?token=a%2Fb&x=1"  # type: ignore[attr-defined]
        (bot,) = built(with_notify(WECOM, "records"))
        assert bot.url == WECOM  # type: ignore[attr-defined]
        (signed,) = built(
            "https://oapi.dingtalk.com/robot/send?notify=records&access_token=dt-tok-9&secret=S"
        )
        assert signed.url == "https://oapi.dingtalk.com/robot/send?access_token=dt-tok-9"  # type: ignore[attr-defined]
        assert signed.secret == "S"  # type: ignore[attr-defined]

    def test_given_notify_on_a_cos_url_when_built_then_region_and_endpoint_still_reach_it(
        self,
    ) -> None:
        url = "cos://sms-stats-1250000000/stats?region=ap-shanghai&notify=records,alerts"
        (sink,) = built(f"{url}&endpoint=http://127.0.0.1:9999")
        assert sink.target.region == "ap-shanghai"  # type: ignore[attr-defined]
        assert sink.target.endpoint.port == 9999  # type: ignore[attr-defined]
        assert sink.topics == {"records", "alerts"}

    def test_given_notify_on_a_file_url_when_built_then_accepted_though_it_takes_no_query(
        self, tmp_path: Path
    ) -> None:
        (sink,) = built(f"file://{tmp_path}?notify=alerts")
        assert isinstance(sink, FileSink)
        assert sink.root == tmp_path
        assert problems(f"file://{tmp_path}?other=1")  # any other query is still refused

    @pytest.mark.parametrize(
        "url", ["file:out", COS, HOOK, WECOM, DINGTALK, FEISHU, SLACK, "wecom+" + WECOM]
    )
    def test_given_notify_added_to_a_deployed_sink_when_built_then_its_name_is_unchanged(
        self, url: str
    ) -> None:
        """The outbox owes records to sinks by name: a new name would forget those debts."""
        (before,) = built(url)
        for value in ("records", "alerts,digest"):
            (after,) = built(with_notify(url, value))
            assert after.name == before.name

    def test_given_the_same_sink_twice_with_other_notify_when_built_then_listed_twice(
        self,
    ) -> None:
        (problem,) = problems(with_notify(HOOK, "records"), with_notify(HOOK, "alerts"))
        assert problem.startswith("SMS_STATS_SINKS: the same sink is listed twice: webhook:")


class TestEnvironmentList:
    def test_given_commas_of_a_notify_value_in_the_variable_when_loaded_then_whole_again(
        self, tmp_path: Path
    ) -> None:
        env = {
            **CREDENTIALS,
            "SMS_STATS_SINKS": f"{HOOK}&notify=records, alerts,file://{tmp_path}?notify=alerts,"
            f"{WECOM}&notify=digest,records",
        }
        hook, store, bot = build_sinks(load_settings(env))
        assert hook.topics == {"records", "alerts"}
        assert store.topics == {"alerts"}
        assert bot.topics == {"digest", "records"}

    def test_given_a_bad_word_after_a_notify_value_then_it_is_that_values_problem(self) -> None:
        env = {**CREDENTIALS, "SMS_STATS_SINKS": f"{HOOK}&notify=records,alert,file:out"}
        with pytest.raises(ConfigError, match=r"item 1: notify: unknown 'alert'") as caught:
            build_sinks(load_settings(env))
        assert "hook-tok-9" not in caught.value.message

    @given(
        st.lists(st.sampled_from(["records", "alerts", "digest", "RECORDS"]), min_size=1),
        st.lists(st.sampled_from(["file:a", "https://h.example/x?k=1", "cos://b-1/p"])),
    )
    def test_given_any_list_when_cut_at_commas_then_rejoined_as_written(
        self, values: list[str], others: list[str]
    ) -> None:
        urls = [f"https://h.example/y?a=1&notify={','.join(values)}", *others]
        cut = [part for url in urls for part in url.split(",")]
        assert rejoin(cut) == urls


# Query items that are not ours: any text without the separators (or an encoded notify).
_ITEM = st.text(
    st.characters(blacklist_characters="&#?%,", blacklist_categories=("Cs",)), max_size=12
)


class TestSplitProperty:
    @given(st.lists(_ITEM), st.integers(min_value=0), st.sampled_from(["", "#frag"]))
    def test_given_notify_anywhere_in_a_query_when_split_then_only_it_is_cut(
        self, items: list[str], at: int, fragment: str
    ) -> None:
        items = [i for i in items if i.partition("=")[0].strip().lower() != "notify"]
        position = at % (len(items) + 1)
        with_it = [*items[:position], "notify=alerts", *items[position:]]
        url = f"https://h.example/p?{'&'.join(with_it)}{fragment}"
        rest, topics = split_notify(url)
        assert topics == {"alerts"}
        kept = "&".join(items)
        assert rest == f"https://h.example/p{'?' + kept if kept else ''}{fragment}"

    @given(st.lists(_ITEM), st.sampled_from(["", "#frag", "#notify=alerts"]))
    def test_given_no_notify_when_split_then_the_url_comes_back_as_it_was(
        self, items: list[str], fragment: str
    ) -> None:
        items = [i for i in items if i.partition("=")[0].strip().lower() != "notify"]
        url = f"https://h.example/p?{'&'.join(items)}{fragment}"
        assert split_notify(url) == (url, None)


class TestPreflight:
    def test_given_notify_on_every_kind_when_checked_then_no_problem(self, tmp_path: Path) -> None:
        settings = load_settings(
            {
                **CREDENTIALS,
                "SMS_STATS_SINKS": f"file://{tmp_path}?notify=records,{COS}&notify=records,"
                f"{HOOK}&notify=alerts,{WECOM}&notify=records,alerts,digest",
            }
        )
        sinks, found = preflight.check(settings, scheduled=True)
        assert found == []
        assert len(sinks) == 4

    def test_given_an_unknown_value_when_loaded_then_the_settings_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="notify: unknown 'everything'"):
            build_sinks(
                load_settings({**CREDENTIALS, "SMS_STATS_SINKS": f"{HOOK}&notify=everything"})
            )


# -- through the real handler -----------------------------------------------------------------


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def bots() -> Iterator[BotReceiver]:
    with BotReceiver() as running:
        yield running


def hourly(receiver: WebhookReceiver) -> list[str]:
    """The apps of the hourly records the webhook took."""
    return [r["sms_sdk_app_id"] for got in receiver.accepted for r in got.json["records"]]


class TestTimer:
    def test_given_a_default_bot_when_the_timer_runs_then_the_webhook_gets_the_hour_and_it_not(
        self,
        scf_env: dict[str, str],
        store: Path,
        hook: WebhookReceiver,
        bots: BotReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        bot = bots.url("wecom")
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{hook.url},{bot}")
        summary = main_handler(load_event("timer.json"), context)
        assert summary["ok"] is True
        assert sorted(hourly(hook)) == [APP_A, APP_B]
        assert bots.attempts == []
        assert not any(d["sink"].startswith("wecom:") for d in summary["deliveries"])
        assert len(record_files(store)) == 2

    def test_given_a_bot_with_notify_records_when_the_timer_runs_then_it_gets_the_hour(
        self,
        scf_env: dict[str, str],
        store: Path,
        hook: WebhookReceiver,
        bots: BotReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        bot = bots.url("dingtalk", notify="records")  # with its &secret= before ours
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{hook.url},{bot}")
        summary = main_handler(load_event("timer.json"), context)
        assert summary["ok"] is True
        (message,) = bots.messages("dingtalk")  # the stand-in refuses a URL with notify
        assert "notify" not in message.target
        assert APP_A in json.dumps(message.payload, ensure_ascii=False)
        assert len(hourly(hook)) == 2
        assert all("notify" not in got.path for got in hook.received)

    def test_given_a_webhook_with_notify_alerts_when_the_timer_runs_then_it_gets_no_records(
        self,
        scf_env: dict[str, str],
        store: Path,
        hook: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{hook.url}?notify=alerts,digest")
        summary = main_handler(load_event("timer.json"), context)
        assert summary["ok"] is True
        assert hook.received == []
        assert len(record_files(store)) == 2


class TestStoreWithoutRecords:
    def test_given_a_store_with_notify_alerts_when_the_timer_runs_then_no_records_nor_debts(
        self,
        scf_env: dict[str, str],
        tmp_path: Path,
        store: Path,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
        mocker: MockerFixture,
    ) -> None:
        """The first store keeps the outbox: with the webhook down, the entry stays, owing the
        webhook; the second store took the records; the alerts-only store is owed nothing."""
        mocker.patch("sms_stats.deliver.transport.time.sleep")
        alerts_only = tmp_path / "alerts-only"
        sinks = f"file://{alerts_only}?notify=alerts,file://{store},{DOWN}"
        monkeypatch.setenv("SMS_STATS_SINKS", sinks)
        with pytest.raises(DeliveryError, match="could not connect"):
            main_handler(load_event("timer.json"), context)
        first, _, down = build_sinks(load_settings())
        assert record_files(alerts_only) == []
        assert len(record_files(store)) == 2
        assert isinstance(first, FileSink)
        owed = Outbox(first).owed(None)
        assert set(owed) == {down.name}
        assert first.name not in owed

    def test_given_only_an_alerts_store_and_a_webhook_when_the_timer_runs_then_the_webhook_only(
        self,
        scf_env: dict[str, str],
        store: Path,
        hook: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store}?notify=alerts,{hook.url}")
        summary = main_handler(load_event("timer.json"), context)
        assert summary["ok"] is True
        assert len(hourly(hook)) == 2
        assert record_files(store) == []
        assert not list(store.glob("_outbox/*.json"))  # delivered: nothing left owed

    def test_given_no_sink_takes_records_when_a_window_is_delivered_then_no_outbox_entry(
        self, scf_env: dict[str, str], store: Path, bots: BotReceiver
    ) -> None:
        from sms_stats.run.pipeline import Courier

        sinks = built(f"file://{store}?notify=alerts", bots.url("slack"))
        assert Courier(sinks, None).deliver([seed_record()]) == []
        assert not list(store.glob("_outbox/*.json"))
        assert bots.attempts == []


class TestOutboxOwes:
    def test_given_sinks_some_without_records_when_an_entry_is_opened_then_it_owes_the_others(
        self, store: Path, bots: BotReceiver
    ) -> None:
        alerts_store, hook, bot = built(f"file://{store}?notify=alerts", HOOK, bots.url("wecom"))
        box = Outbox(alerts_store)  # type: ignore[arg-type]
        entry = box.open([seed_record()], [alerts_store, hook, bot], None)
        assert entry is not None
        assert set(entry.owed) == {hook.name}

    def test_given_no_sink_takes_records_when_an_entry_is_opened_then_none_is_written(
        self, store: Path, bots: BotReceiver
    ) -> None:
        """An entry owing nothing would never be settled, so never deleted."""
        alerts_store, bot = built(f"file://{store}?notify=alerts", bots.url("wecom"))
        box = Outbox(alerts_store)  # type: ignore[arg-type]
        assert box.open([seed_record()], [alerts_store, bot], None) is None
        assert not list(store.glob("_outbox/*.json"))


class TestUpgrade:
    def test_given_a_bot_owed_records_before_the_upgrade_when_drained_then_the_debt_is_dropped(
        self,
        scf_env: dict[str, str],
        store: Path,
        bots: BotReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An outbox entry written when bots took every hour: the bot (now alerts and the digest
        by default) is not sent it, and the entry is settled instead of owing it forever."""
        wecom = bots.url("wecom")
        old_store, old_bot = built(f"file://{store}", with_notify(wecom, "records"))
        box = Outbox(old_store)  # type: ignore[arg-type]
        assert box.open([seed_record()], [old_bot], None) is not None
        sinks = built(f"file://{store}", wecom)
        assert sinks[1].name == old_bot.name
        assert box.drain(sinks, None) == []
        assert bots.attempts == []
        assert box.owed(None) == {}
        assert "outbox.sink_takes_no_records" in capsys.readouterr().out


class TestBackfill:
    ARGS = ("backfill", "--app-id", APP_A, "--from", "2021050100", "--to", "2021050101")

    def test_given_a_default_bot_when_backfilled_with_notify_then_it_posts_nothing(
        self,
        scf_env: dict[str, str],
        store: Path,
        bots: BotReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from sms_stats.cli import main

        sinks = ["--sink", f"file://{store}", "--sink", bots.url("wecom")]
        assert main([*self.ARGS, *sinks, "--notify"]) == 0
        assert bots.attempts == []
        err = capsys.readouterr().err
        assert "notify: wecom" not in err  # it gets no summaries: say nothing of pacing them
        assert "left out" not in err
        assert len(record_files(store)) == 2

    def test_given_a_default_bot_when_backfilled_without_notify_then_not_named_left_out(
        self,
        scf_env: dict[str, str],
        store: Path,
        bots: BotReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """It is not left out of anything: it takes no records, in a backfill or a timer run."""
        from sms_stats.cli import main

        assert main([*self.ARGS, "--sink", f"file://{store}", "--sink", bots.url("wecom")]) == 0
        assert "left out" not in capsys.readouterr().err
        assert bots.attempts == []

    def test_given_only_default_bots_when_backfilled_then_exit_1_saying_none_takes_records(
        self, scf_env: dict[str, str], bots: BotReceiver, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from sms_stats.cli import main

        assert main([*self.ARGS, "--sink", bots.url("slack"), "--notify"]) == 1
        assert "no sink takes records" in capsys.readouterr().err
        assert bots.attempts == []

    def test_given_nothing_stored_when_gaps_checked_with_a_default_bot_then_only_the_store_lacks(
        self, scf_env: dict[str, str], store: Path, bots: BotReceiver
    ) -> None:
        from sms_stats.handler import utcnow
        from sms_stats.run import backfill

        settings = load_settings()
        file_sink, bot = built(f"file://{store}", bots.url("wecom"))
        missing = backfill.gaps(
            [APP_A],
            "2021050100",
            "2021050101",
            settings,
            file_sink,
            utcnow(),
            [file_sink, bot],  # type: ignore[arg-type]
        )
        assert {sink for *_, sink in missing} == {file_sink.name}
        assert len(missing) == 2

    def test_given_a_default_bot_when_gaps_checked_then_it_lacks_nothing(
        self,
        scf_env: dict[str, str],
        store: Path,
        bots: BotReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from sms_stats.cli import main

        assert main([*self.ARGS, "--sink", f"file://{store}"]) == 0
        capsys.readouterr()
        args = ["gaps", *self.ARGS[1:], "--sink", f"file://{store}", "--sink", bots.url("wecom")]
        assert main(args) == 0
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "wecom" not in captured.err
