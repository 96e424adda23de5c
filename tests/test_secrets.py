"""No secret ever leaves: not in a log line, an answer, a raised message or a stored record.

Every path runs with recognisable secret values (credentials, session token, API token, webhook
secret, bot keys and secrets inside sink URLs): success, each kind of failure, each sink. All that
the function wrote (stdout and stderr logs, HTTP answers, exception texts, files, COS objects,
webhook and bot bodies) is then searched for each secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import SmsStatsError
from sms_stats.emulator import Emulator, Fault

from .conftest import API_TOKEN, APP_A, SECRET_ID, SECRET_KEY, SESSION_TOKEN, load_event
from .standins.bots import BotFault, BotReceiver
from .standins.cos import CosFault, CosStandIn
from .standins.webhook import Fault as HookFault
from .standins.webhook import WebhookReceiver

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-secret-SENTINEL-0000000").decode()
BUCKET = "stats-1250000000"
BOT_SECRETS = {
    "wecom_key": "wecomkey-SENTINEL-6d1f",
    "dingtalk_token": "dtoken-SENTINEL-77aa",
    "dingtalk_secret": "SECdsecret-SENTINEL-19bc",
    "feishu_token": "fstoken-SENTINEL-0c3e",
    "feishu_secret": "fsecret-SENTINEL-5a5a",
    "slack_path": "T0SENTINEL/B0SENTINEL/slacksecretSENTINEL",
}
SECRETS = [
    SECRET_KEY,
    SESSION_TOKEN,
    API_TOKEN,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET.removeprefix("whsec_"),
    *BOT_SECRETS.values(),
    "slacksecretSENTINEL",
]


@pytest.fixture
def world(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, mocker: MockerFixture
) -> Iterator[dict[str, Any]]:
    mocker.patch("sms_stats.collect.client.time.sleep")
    mocker.patch("sms_stats.deliver.transport.time.sleep")
    with (
        WebhookReceiver(secret=WEBHOOK_SECRET) as hook,
        BotReceiver(**BOT_SECRETS) as bots,  # type: ignore[arg-type]
        CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as cos,
    ):
        sinks = [
            scf_env["SMS_STATS_SINKS"],
            f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}",
            hook.url,
            # records too: the hourly summaries are what is searched for leaks
            *(bots.url(p, notify="records") for p in ("wecom", "dingtalk", "feishu", "slack")),
        ]
        monkeypatch.setenv("SMS_STATS_SINKS", ",".join(sinks))
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", WEBHOOK_SECRET)
        yield {"hook": hook, "bots": bots, "cos": cos}


def everything_written(
    world: dict[str, Any], store: Path, capsys: pytest.CaptureFixture[str], outputs: list[str]
) -> str:
    captured = capsys.readouterr()
    parts = [captured.out, captured.err, *outputs]
    parts += [p.read_text(encoding="utf-8") for p in store.rglob("*") if p.is_file()]
    parts += [o.body.decode("utf-8", "replace") for o in world["cos"].objects.values()]
    parts += [r.body.decode("utf-8", "replace") for r in world["hook"].received]
    parts += [json.dumps(m.payload, ensure_ascii=False) for m in world["bots"].messages()]
    return "\n".join(parts)


def run(event: dict[str, Any], context: dict[str, Any]) -> str:
    try:
        return json.dumps(main_handler(event, context), ensure_ascii=False)
    except SmsStatsError as exc:
        return f"{exc!s} {exc!r} {exc.to_dict()}"


def assert_clean(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets leaked: {leaked}"
    assert len(text) > 200  # something was written and searched


def test_given_all_sinks_when_timer_and_http_succeed_then_no_secret_anywhere(
    world: dict[str, Any], store: Path, capsys: pytest.CaptureFixture[str], context: dict[str, Any]
) -> None:
    outputs = [
        run(load_event("timer.json"), context),
        run(load_event("function_url_get.json"), context),
    ]
    assert world["hook"].received
    assert world["bots"].messages()
    assert world["cos"].objects
    assert_clean(everything_written(world, store, capsys, outputs))


def test_given_every_sink_failing_when_timer_then_errors_and_logs_hold_no_secret(
    world: dict[str, Any],
    store: Path,
    capsys: pytest.CaptureFixture[str],
    context: dict[str, Any],
) -> None:
    world["hook"].fault = HookFault(status=500)
    for platform in ("wecom", "dingtalk", "feishu", "slack"):
        world["bots"].set_fault(platform, BotFault(http_status=403))
    world["cos"].set_fault(CosFault(status=403, code="AccessDenied"))
    outputs = [
        run(load_event("timer.json"), context),
        run(load_event("function_url_get.json"), context),
    ]
    assert "DeliveryFailed" in outputs[0]
    assert_clean(everything_written(world, store, capsys, outputs))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(error_code="AuthFailure.SignatureFailure"),
        Fault(error_code="RequestLimitExceeded"),
        Fault(http_status=502),
        Fault(html=True),
    ],
)
def test_given_upstream_failure_when_invoked_then_no_secret_anywhere(
    world: dict[str, Any],
    emulator: Emulator,
    store: Path,
    capsys: pytest.CaptureFixture[str],
    context: dict[str, Any],
    fault: Fault,
) -> None:
    emulator.set_fault(fault, APP_A)
    outputs = [
        run(load_event("timer.json"), context),
        run(load_event("function_url_get.json"), context),
    ]
    assert_clean(everything_written(world, store, capsys, outputs))


def test_given_wrong_and_missing_tokens_when_http_then_no_secret_echoed(
    world: dict[str, Any], store: Path, capsys: pytest.CaptureFixture[str], context: dict[str, Any]
) -> None:
    event = load_event("function_url_get.json")
    outputs = []
    for header in (f"Bearer {API_TOKEN}x", f"Basic {API_TOKEN}", API_TOKEN, ""):
        event["headers"]["authorization"] = header
        outputs.append(run(event, context))
    assert all('"statusCode": 401' in o for o in outputs)
    assert_clean(everything_written(world, store, capsys, outputs))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMS_STATS_WEBHOOK_SECRET", "whsec_not-base64-SENTINEL!!"),
        (
            "SMS_STATS_SINKS",
            "wecom+http://127.0.0.1:9/cgi-bin/webhook/sned?key=wecomkey-SENTINEL-6d1f",
        ),
        (
            "SMS_STATS_SINKS",
            "dingtalk+http://127.0.0.1:9/robot/sned?access_token=dtoken-SENTINEL-77aa",
        ),
        ("SMS_STATS_SINKS", "ftp://user:SECdsecret-SENTINEL-19bc@host/x"),
        ("SMS_STATS_SINKS", f"cos://BAD_BUCKET/x?region=ap-guangzhou&token={SESSION_TOKEN}"),
        ("SMS_STATS_TIMEOUT", "not-a-number"),
    ],
)
def test_given_bad_setting_holding_a_secret_when_invoked_then_error_does_not_echo_it(
    world: dict[str, Any],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    context: dict[str, Any],
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    outputs = [
        run(load_event("timer.json"), context),
        run(load_event("function_url_get.json"), context),
    ]
    assert "InternalError.Configuration" in outputs[0]
    assert_clean(everything_written(world, store, capsys, outputs) + "x" * 200)
