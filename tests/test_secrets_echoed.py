"""Issue 12, items 7, 8 and 10: a secret echoed back by whoever was sent it never comes out.

Real loopback servers echo what they were sent, as real ones do: a webhook's 404 page quotes
its path (with the token), chat bots quote their key in an error message, a COS front end lists
the request's headers (session token, SecretId in the signature) in its error body, and the SMS
API (or a proxy before it) answers 502 with the request's headers. Root logging is at DEBUG,
where the SDKs and urllib3 log requests. Then every answer, log line (stdout, stderr, captured
records), raised error and stored file is searched for every run of the first 8 or more
characters of every secret: a quote cut through a secret leaves only its start.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import SmsStatsError

from .conftest import API_TOKEN, SECRET_ID, SECRET_KEY, SESSION_TOKEN, load_event
from .standins.bots import BotFault, BotReceiver
from .standins.cos import CosFault, CosStandIn
from .standins.echo import EchoServer
from .standins.webhook import Fault as HookFault
from .standins.webhook import WebhookReceiver

HOOK_TOKEN = "9f3a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"  # 64 characters
# "Cannot POST " + this + "/" puts the token's first 60 characters before a 200-character cut.
HOOK_PATH = "/api/v1/integrations/inbound/" + "sms-stats/" * 9 + "production-notifications"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"echoed-webhook-secret-0000000000").decode()
BUCKET = "stats-1250000000"
BOTS = {
    "wecom_key": "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
    "dingtalk_token": "8c2e4a6b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c",
    "dingtalk_secret": "SEC7d9f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d",
    "feishu_token": "2b4d6f8a-0c1e-4a3c-9e7b-5d7f9a2c4e6b",
    "feishu_secret": "fsSecret4Np6Rt8Vw9Qx2Lm",
    "slack_path": "T0AB12CD3/B0EF45GH6/Zx8Wv6Ut4Sr2Qp0On9Ml7Kj5",
}
SECRETS = {
    "SecretId": SECRET_ID,
    "SecretKey": SECRET_KEY,
    "session token": SESSION_TOKEN,
    "API bearer token": API_TOKEN,
    "webhook signing secret": WEBHOOK_SECRET,
    "webhook signing key": WEBHOOK_SECRET.removeprefix("whsec_"),
    "webhook URL token": HOOK_TOKEN,
    **BOTS,
    "slack secret": BOTS["slack_path"].rsplit("/", 1)[1],
}


def errmsg(platform: str, secret: str) -> str:
    """A platform's error text that quotes the secret about 170 characters in."""
    said = f"invalid webhook url, hint: [1712345678_{platform}], from ip: 127.0.0.1, see docs"
    return f"{said} {'.' * (165 - len(said))} key={secret}"


def leaks(text: str) -> list[str]:
    found = []
    for name, secret in SECRETS.items():
        for length in range(8, len(secret) + 1):
            if secret[:length] in text:
                found.append(f"{name}: {secret[:length]!r}")
                break
    return found


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Root logging at DEBUG to stderr, as `logging.basicConfig(level=DEBUG)` would set it."""
    handler = logging.StreamHandler(sys.stderr)  # capsys's stderr, resolved now
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    yield
    root.removeHandler(handler)


@pytest.fixture
def world(
    scf_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    mocker: MockerFixture,
    debug_logging: None,
) -> Iterator[dict[str, Any]]:
    mocker.patch("sms_stats.collect.client.time.sleep")
    with (
        WebhookReceiver(secret=WEBHOOK_SECRET) as hook,
        BotReceiver(**BOTS) as bots,  # type: ignore[arg-type]
        CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as cos,
    ):
        sinks = [
            scf_env["SMS_STATS_SINKS"],
            f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}",
            f"{hook.endpoint}{HOOK_PATH}/{HOOK_TOKEN}",
            # records too: the hourly summaries are what is searched for leaks
            *(bots.url(p, notify="records") for p in ("wecom", "dingtalk", "feishu", "slack")),
        ]
        monkeypatch.setenv("SMS_STATS_SINKS", ",".join(sinks))
        monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", WEBHOOK_SECRET)
        yield {"hook": hook, "bots": bots, "cos": cos}


def run(event: dict[str, Any], context: dict[str, Any]) -> str:
    try:
        return json.dumps(main_handler(event, context), ensure_ascii=False)
    except SmsStatsError as exc:
        return f"{exc!s} {exc!r} {exc.to_dict()}"


def written(
    store: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    outputs: list[str],
) -> str:
    captured = capsys.readouterr()
    parts = [captured.out, captured.err, caplog.text, *outputs]
    parts += [record.getMessage() for record in caplog.records]
    parts += [p.read_text("utf-8", "replace") for p in store.rglob("*") if p.is_file()]
    return "\n".join(parts)


def invoke_both(context: dict[str, Any]) -> list[str]:
    return [
        run(load_event("timer.json"), context),
        run(load_event("function_url_get.json"), context),
    ]


def test_given_every_receiver_echoing_its_secret_when_invoked_then_no_prefix_anywhere(
    world: dict[str, Any],
    store: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: dict[str, Any],
) -> None:
    """Items 7 and 8: cut-then-scrub left most of a token; COS's SecretId and its SDK's ERROR
    log of the raw body (with the session token) went out unscrubbed."""
    world["hook"].fault = HookFault(status=404, echo_path=True)
    bots = world["bots"]
    bots.set_fault(
        "wecom", BotFault(error_code=93000, error_message=errmsg("w", BOTS["wecom_key"]))
    )
    bots.set_fault(
        "dingtalk", BotFault(error_code=300001, error_message=errmsg("d", BOTS["dingtalk_token"]))
    )
    bots.set_fault(
        "feishu", BotFault(error_code=19001, error_message=errmsg("f", BOTS["feishu_token"]))
    )
    bots.set_fault(
        "slack", BotFault(http_status=404, error_message=errmsg("s", BOTS["slack_path"]))
    )
    world["cos"].set_fault(CosFault(status=403, code="AccessDenied", echo_headers=True))

    outputs = invoke_both(context)

    assert "DeliveryFailed" in outputs[0]
    assert world["hook"].received
    assert all(r.status == 404 for r in world["hook"].received)
    assert {a.platform for a in bots.attempts} == {"wecom", "dingtalk", "feishu", "slack"}
    assert any(r.token_sent for r in world["cos"].requests)
    text = written(store, capsys, caplog, outputs)
    assert "errcode 93000" in text
    assert "HTTP 404: Cannot POST ***" in text
    assert "AccessDenied" in text
    assert not leaks(text)


@pytest.mark.parametrize("style", ["text", "json"])
def test_given_the_api_answering_502_with_the_request_headers_when_invoked_then_no_prefix(
    world: dict[str, Any],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: dict[str, Any],
    style: str,
) -> None:
    """Item 10: map_sdk_error quoted 300 characters of the body, with the credential scope
    (the SecretId) and the whole X-TC-Token, into the answer, the logs and the raised error."""
    with EchoServer(status=502, style=style) as api:
        monkeypatch.setenv("SMS_STATS_ENDPOINT", api.endpoint)
        outputs = invoke_both(context)
        seen = api.seen
    assert seen
    assert all(s.headers.get("X-TC-Token") == SESSION_TOKEN for s in seen)
    assert all(SECRET_ID in s.headers.get("Authorization", "") for s in seen)
    assert "ServerNetworkError" in outputs[0]
    assert "502" in outputs[1]
    text = written(store, capsys, caplog, outputs)
    assert "the API answered a non-200 HTTP status: 502 Bad Gateway" in text or style == "json"
    assert not leaks(text)


def test_given_root_logging_at_debug_when_every_sink_delivers_then_no_library_logs_a_secret(
    world: dict[str, Any],
    store: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: dict[str, Any],
) -> None:
    """Item 8: at DEBUG the Tencent SDK logged X-TC-Token, urllib3 each bot URL with its key."""
    outputs = invoke_both(context)
    assert world["hook"].accepted
    assert world["bots"].messages()
    assert world["cos"].objects
    text = written(store, capsys, caplog, outputs)
    assert not leaks(text)


def test_given_a_user_logging_setup_between_invocations_then_libraries_are_held_again(
    world: dict[str, Any],
    store: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: dict[str, Any],
) -> None:
    run(load_event("timer.json"), context)
    for name in ("tencentcloud_sdk_common", "urllib3", "urllib3.connectionpool", "qcloud_cos"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # a user's logging config, say
    outputs = invoke_both(context)
    assert logging.getLogger("urllib3").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == logging.WARNING
    assert not leaks(written(store, capsys, caplog, outputs))


@pytest.mark.parametrize(
    "url",
    [
        f"file:///tmp/sms-stats?token={HOOK_TOKEN}",
        f"file://operator:{HOOK_TOKEN}@localhost/tmp/sms-stats",
    ],
    ids=["query", "userinfo"],
)
def test_given_a_file_sink_url_with_a_secret_when_refused_then_the_error_does_not_echo_it(
    scf_env: dict[str, str],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    context: dict[str, Any],
    url: str,
) -> None:
    monkeypatch.setenv("SMS_STATS_SINKS", url)
    outputs = invoke_both(context)
    assert "InternalError.Configuration" in outputs[0]
    text = written(store, capsys, caplog, outputs)
    assert "a file URL" in text
    assert not leaks(text)
