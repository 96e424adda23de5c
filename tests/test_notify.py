"""`notify_all`: each notice to every sink whose topics take it, against real receivers (the
webhook and bot stand-ins, a file store, the COS stand-in), one outcome per (notice, sink)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from sms_stats.core.notices import CHAT_TOPICS, STORE_TOPICS, WEBHOOK_TOPICS, Notice
from sms_stats.core.records import AnyRecord
from sms_stats.core.settings import Settings
from sms_stats.deliver.chat.dingtalk import DingTalkSink
from sms_stats.deliver.chat.feishu import FeishuSink
from sms_stats.deliver.chat.slack import SlackSink
from sms_stats.deliver.chat.wecom import WeComSink
from sms_stats.deliver.notify import notify_all
from sms_stats.deliver.sinks import Delivery, Sink, build_sinks, deliver_all
from sms_stats.deliver.transport import Transport
from sms_stats.deliver.webhook import WebhookSink
from sms_stats.store.cos import CosSink
from sms_stats.store.cos import build as build_cos
from sms_stats.store.file import FileSink

from .conftest import APP_A, SECRET_ID, SECRET_KEY, SESSION_TOKEN, seed_record
from .notice_samples import digest, firing, resolved
from .standins.bots import BotReceiver
from .standins.cos import CosStandIn
from .standins.webhook import Fault, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
BUCKET = "stats-1250000000"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def other() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def bots() -> Iterator[BotReceiver]:
    with BotReceiver() as running:
        yield running


@pytest.fixture
def sleep(mocker: MockerFixture) -> Any:
    return mocker.Mock()


def make(urls: Sequence[str], sleep: Any) -> list[Sink]:
    """Through the real factory, as SMS_STATS_SINKS builds them."""
    transport = Transport(timeout=2.0, max_attempts=2, sleep=sleep)
    return build_sinks(Settings(sinks=tuple(urls), webhook_secret=SECRET), transport)


def told(sink: Sink, *topics: str) -> Sink:
    """What `?notify=` does to a built sink: its own topics, in place of the kind's default."""
    sink.topics = frozenset(topics)  # type: ignore[attr-defined]
    return sink


class Broken:
    """A sink whose notify has a bug: what a library's surprise looks like to notify_all."""

    name = "broken:sink"
    topics = WEBHOOK_TOPICS

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return [records]

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        return None

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        raise RuntimeError("boom")


class RecordsOnly(Broken):
    """A sink that knows nothing of notices (no `notify`, no `topics`)."""

    name = "records:only"
    notify = None  # type: ignore[assignment]


def pairs(outcomes: Sequence[Delivery]) -> list[tuple[str, str, bool]]:
    return [(o.window, o.sink, o.ok) for o in outcomes]


def test_given_each_kind_when_built_then_it_takes_the_contracts_default_topics() -> None:
    assert FileSink.topics == CosSink.topics == STORE_TOPICS == frozenset({"records"})
    assert WebhookSink.topics == WEBHOOK_TOPICS == frozenset({"records", "alerts", "digest"})
    for bot in (WeComSink, DingTalkSink, FeishuSink, SlackSink):
        assert bot.topics == CHAT_TOPICS == frozenset({"alerts", "digest"})


def test_given_default_topics_when_notified_then_webhook_and_bot_told_store_not(
    receiver: WebhookReceiver, bots: BotReceiver, sleep: Any, tmp_path: Path
) -> None:
    sinks = make([f"file://{tmp_path}", receiver.url, bots.url("wecom")], sleep)
    store, hook, wecom = sinks

    outcomes = notify_all([firing(), digest()], sinks, None)

    assert pairs(outcomes) == [
        (firing().id, hook.name, True),
        (digest().id, hook.name, True),
        (firing().id, wecom.name, True),
        (digest().id, wecom.name, True),
    ]
    assert [m.headers["webhook-id"] for m in receiver.received] == [firing().id, digest().id]
    assert len(bots.messages("wecom")) == 2
    assert not (tmp_path / "notices").exists()
    assert store.name not in {o.sink for o in outcomes}


def test_given_store_told_of_alerts_when_notified_then_notices_id_json_readable_back(
    sleep: Any, tmp_path: Path
) -> None:
    (store,) = make([f"file://{tmp_path}"], sleep)
    told(store, "records", "alerts")
    notice = firing()

    (outcome,) = notify_all([notice, digest()], [store], None)  # the digest is not its topic

    assert outcome == Delivery(
        APP_A, notice.id, store.name, True, None, outcome.duration_ms, notice.id
    )
    (path,) = (tmp_path / "notices").iterdir()
    assert path.name == f"{notice.id}.json"
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored == notice.to_dict()
    assert Notice.from_dict(stored) == notice


def test_given_cos_store_told_of_alerts_when_notified_then_object_at_prefix_notices_id(
    sleep: Any,
) -> None:
    settings = Settings.model_validate(
        {
            "secret_id": SECRET_ID,
            "secret_key": SECRET_KEY,
            "session_token": SESSION_TOKEN,
            "region": "ap-guangzhou",
            "timeout": 2,
        }
    )
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as cos:
        url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        store = told(build_cos(url, settings, Transport(), sleep=sleep), "records", "alerts")

        (outcome,) = notify_all([resolved()], [store], None)

        assert outcome.ok, outcome.error
        stored = cos.objects[(BUCKET, f"stats/notices/{resolved().id}.json")]
        assert json.loads(stored.body) == resolved().to_dict()


def test_given_topics_set_per_sink_when_notified_then_each_hears_only_its_topics(
    receiver: WebhookReceiver, bots: BotReceiver, sleep: Any
) -> None:
    hook, slack = make([receiver.url, bots.url("slack")], sleep)
    told(hook, "records", "digest")
    told(slack, "alerts")

    outcomes = notify_all([firing(), digest()], [hook, slack], None)

    assert pairs(outcomes) == [(digest().id, hook.name, True), (firing().id, slack.name, True)]
    assert [m.json["type"] for m in receiver.received] == ["digest.daily"]
    (payload,) = bots.payloads("slack")
    assert payload["text"].startswith("SMS alert: ")


def test_given_one_sink_failing_when_notified_then_others_told_and_an_outcome_per_pair(
    receiver: WebhookReceiver, other: WebhookReceiver, bots: BotReceiver, sleep: Any
) -> None:
    receiver.fault = Fault(status=400)  # refuses every request, for good
    sinks = make([receiver.url, other.url, bots.url("feishu")], sleep)
    broken = sinks[0]
    notices = [firing(), resolved()]

    outcomes = notify_all(notices, sinks, None)

    assert pairs(outcomes) == [
        (notice.id, sink.name, sink is not broken) for sink in sinks for notice in notices
    ]
    for outcome in outcomes[:2]:
        assert outcome.error is not None
        assert outcome.error.startswith(f"{broken.name}: HTTP 400")
        assert outcome.key == outcome.window
    assert [m.headers["webhook-id"] for m in other.received] == [n.id for n in notices]
    assert len(bots.messages("feishu")) == 2


def test_given_sink_with_a_bug_when_notified_then_outcome_names_it_and_others_go_on(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    (hook,) = make([receiver.url], sleep)

    outcomes = notify_all([digest()], [Broken(), hook], None)

    assert pairs(outcomes) == [(digest().id, "broken:sink", False), (digest().id, hook.name, True)]
    assert outcomes[0].error == "broken:sink: unexpected RuntimeError"
    assert outcomes[0].app_id == ""  # the digest is about every app
    assert len(receiver.received) == 1


def test_given_sink_without_notify_when_notified_then_skipped_without_an_outcome(
    receiver: WebhookReceiver, sleep: Any
) -> None:
    (hook,) = make([receiver.url], sleep)
    outcomes = notify_all([firing()], [RecordsOnly(), hook], None)
    assert pairs(outcomes) == [(firing().id, hook.name, True)]


def test_given_webhook_listed_before_store_when_notified_then_store_written_first(
    receiver: WebhookReceiver, sleep: Any, tmp_path: Path
) -> None:
    hook, store = make([receiver.url, f"file://{tmp_path}"], sleep)
    told(store, "alerts")
    path = tmp_path / "notices" / f"{firing().id}.json"
    seen: list[bool] = []
    receiver.on_request = lambda: seen.append(path.exists())

    outcomes = notify_all([firing()], [hook, store], None)

    assert seen == [True]  # the store had it when the webhook was asked
    assert [o.sink for o in outcomes] == [store.name, hook.name]


def test_given_no_time_left_when_notified_then_store_keeps_it_and_webhook_says_why(
    receiver: WebhookReceiver, sleep: Any, tmp_path: Path
) -> None:
    hook, store = make([receiver.url, f"file://{tmp_path}"], sleep)
    told(store, "alerts")

    outcomes = notify_all([firing()], [hook, store], time.monotonic() - 1)

    stored, hooked = outcomes
    assert stored.ok
    assert not hooked.ok
    assert hooked.error is not None
    assert "no time left" in hooked.error
    assert receiver.received == []


@pytest.mark.parametrize("notice_id", ["../escape", "a/b", ".hidden", "", "x" * 201, "tab\there"])
def test_given_notice_id_that_is_no_file_name_when_stored_then_refused_and_nothing_written(
    sleep: Any, tmp_path: Path, notice_id: str
) -> None:
    (store,) = make([f"file://{tmp_path / 'store'}"], sleep)
    told(store, "alerts")

    (outcome,) = notify_all([firing(notice_id)], [store], None)

    assert not outcome.ok
    assert outcome.error is not None
    assert "cannot be a store key" in outcome.error
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_given_records_and_notices_when_both_delivered_then_records_path_unchanged(
    sleep: Any, tmp_path: Path
) -> None:
    """A store told of alerts keeps its records as before, beside `notices/`."""
    (store,) = make([f"file://{tmp_path}"], sleep)
    told(store, "records", "alerts")
    record = seed_record()

    assert all(o.ok for o in deliver_all([record], [store]))
    assert all(o.ok for o in notify_all([firing()], [store], None))

    assert (tmp_path / record.key).is_file()
    assert (tmp_path / "notices" / f"{firing().id}.json").is_file()
