"""One local receiver for the four chat-bot webhooks, verifying requests the way each platform does.

Mocking the HTTP client would only prove that the sinks send what they were written to send. This
speaks HTTP on 127.0.0.1 and checks what arrives independently: WeCom's key, DingTalk's token and
URL signature (recomputed here from the configured secret), Feishu's body signature, Slack's path,
the payload shapes and each platform's size limits, and answers with the platform's own codes and
messages. Faults (an HTTP status with Retry-After, a 200 carrying an error code, latency, a hang)
are injected per platform, for a number of requests, optionally after letting some through.

With `enforce_rate_limits`, each platform's documented rate per robot is enforced on every
request that passes verification, answered as the platform does: WeCom 20 a minute (errcode
45009), DingTalk 20 a minute and then 10 minutes muted (130101), Feishu 5 a second and 100 a
minute (11232), Slack 1 a second (HTTP 429 with Retry-After; Slack tolerates short bursts,
the stand-in does not).

Two rules are the stand-in's own, stricter than the platforms: a `secret` query parameter is
refused (this project's convention keeps it out of every request), and Feishu's body limit is
checked at 20,000 bytes, the figure the sink packs to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sms_stats.emulator.loopback import LoopbackHandler, LoopbackService

PLATFORMS = ("wecom", "dingtalk", "feishu", "slack")
WECOM_KEY = "wk-3b0c7e52-51f4-4c1e-9a55-d1c7e0f0a001"
DINGTALK_TOKEN = "dt-token-8f41c2a6d9e0b7c3"
DINGTALK_SECRET = "SECdingtalk5a7e9c1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f"
FEISHU_TOKEN = "fs-hook-2c9d0e4f-77aa-4b1e-8f3c-5d6e7f8a9b0c"
FEISHU_SECRET = "fsSecret9Qx2Lm4Np6Rt8Vw"
SLACK_PATH = "T000/B000/XXXXslack7secret3token"

MAX_SKEW_S = 3600  # DingTalk and Feishu both refuse a timestamp more than an hour off
WECOM_MAX_CONTENT = 4096
DINGTALK_MAX_BODY = 20_000
FEISHU_MAX_BODY = 20_000
SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION = 3000
SLACK_MAX_HEADER = 150
HANG_CAP_S = 30.0

# Written from the platforms' documents, independently of the sinks' own pacing constants.
RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "wecom": ((20, 60.0),),
    "dingtalk": ((20, 60.0),),
    "feishu": ((5, 1.0), (100, 60.0)),
    "slack": ((1, 1.0),),
}
DINGTALK_MUTE_S = 600.0

_FEISHU_PATH = re.compile(r"/open-apis/bot/v2/hook/([^/]+)")


@dataclass
class BotFault:
    """Misbehaviour for one platform. `after` requests pass first; then `times` are faulted
    (None: until cleared). Latency always applies; then hang, http_status, error_code."""

    http_status: int | None = None
    retry_after: str | None = None
    error_code: int | None = None
    error_message: str = "injected by the stand-in"
    times: int | None = None
    after: int = 0
    latency_s: float = 0.0
    hang: bool = False


@dataclass(frozen=True)
class Message:
    """A request the receiver accepted, as the platform would have posted it."""

    platform: str
    payload: dict[str, Any]
    body: bytes
    target: str


@dataclass(frozen=True)
class Attempt:
    """Every request, accepted or not: what came in and what the receiver answered."""

    platform: str | None
    target: str
    body: bytes
    status: int | None
    answer: str


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class _Refused(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _json(payload: dict[str, Any], status: int = 200) -> _Reply:
    return _Reply(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def _text(text: str, status: int) -> _Reply:
    return _Reply(status, text.encode("utf-8"), "text/html")


def _wecom_error(code: int, message: str) -> _Refused:
    more = f"https://open.work.weixin.qq.com/devtool/query?e={code}"
    hint = f"{message}, hint: [1620000000_00_standin], more info at {more}"
    return _Refused(_json({"errcode": code, "errmsg": hint}))


def _dingtalk_error(code: int, message: str) -> _Refused:
    return _Refused(_json({"errcode": code, "errmsg": message}))


def _feishu_error(code: int, message: str, status: int = 200) -> _Refused:
    return _Refused(_json({"code": code, "data": {}, "msg": message}, status))


def _slack_error(text: str, status: int) -> _Refused:
    return _Refused(_text(text, status))


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class BotReceiver(LoopbackService):
    """All four platforms on one free loopback port; `start`, `stop`, `port` and the context
    manager come from `LoopbackService`."""

    def __init__(
        self,
        *,
        wecom_key: str = WECOM_KEY,
        dingtalk_token: str = DINGTALK_TOKEN,
        dingtalk_secret: str | None = DINGTALK_SECRET,
        feishu_token: str = FEISHU_TOKEN,
        feishu_secret: str | None = FEISHU_SECRET,
        slack_path: str = SLACK_PATH,
        clock: Callable[[], float] = time.time,
        enforce_rate_limits: bool = False,
    ) -> None:
        super().__init__(_Handler, label="receiver", poll_interval_s=0.01)
        self.enforce_rate_limits = enforce_rate_limits
        self._arrivals: dict[str, list[float]] = {p: [] for p in PLATFORMS}
        self._muted_until: dict[str, float] = {}
        self.wecom_key = wecom_key
        self.dingtalk_token = dingtalk_token
        self.dingtalk_secret = dingtalk_secret
        self.feishu_token = feishu_token
        self.feishu_secret = feishu_secret
        self.slack_path = slack_path
        self.clock = clock
        self._lock = threading.Lock()
        self._faults: dict[str, BotFault] = {}
        self._messages: list[Message] = []
        self._attempts: list[Attempt] = []

    def url(
        self,
        platform: str,
        *,
        key: str | None = None,
        secret: str | None = None,
        signed: bool = True,
        notify: str | None = None,
    ) -> str:
        """The `kind+http://127.0.0.1:PORT/...` sink URL; `key`/`secret` override the right ones,
        `notify` adds our `?notify=` (bots take alerts and the digest, not records, without)."""
        url = self._url(platform, key=key, secret=secret, signed=signed)
        if notify is None:
            return url
        return f"{url}{'&' if '?' in url else '?'}notify={notify}"

    def _url(self, platform: str, *, key: str | None, secret: str | None, signed: bool) -> str:
        base = f"{platform}+{self.endpoint}"
        if platform == "wecom":
            return f"{base}/cgi-bin/webhook/send?key={key or self.wecom_key}"
        if platform == "dingtalk":
            url = f"{base}/robot/send?access_token={key or self.dingtalk_token}"
            secret = secret or self.dingtalk_secret
            return f"{url}&secret={secret}" if signed and secret else url
        if platform == "feishu":
            url = f"{base}/open-apis/bot/v2/hook/{key or self.feishu_token}"
            secret = secret or self.feishu_secret
            return f"{url}?secret={secret}" if signed and secret else url
        if platform == "slack":
            return f"{base}/services/{key or self.slack_path}"
        raise ValueError(f"unknown platform {platform!r}")

    # -- control and inspection ------------------------------------------------------------

    def set_fault(self, platform: str, fault: BotFault) -> None:
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        with self._lock:
            self._faults[platform] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def messages(self, platform: str | None = None) -> list[Message]:
        with self._lock:
            return [m for m in self._messages if platform is None or m.platform == platform]

    def payloads(self, platform: str) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages(platform)]

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    # -- request handling (handler threads) ------------------------------------------------

    def _handle(self, target: str, body: bytes) -> _Reply:
        split = urlsplit(target)
        platform = self._platform(split.path)
        try:
            if platform is None:
                raise _Refused(_text("not found", 404))
            if "secret" in parse_qs(split.query, keep_blank_values=True):
                raise _Refused(_text("stand-in: a secret must never be sent", 400))
            if "notify" in parse_qs(split.query, keep_blank_values=True):
                raise _Refused(_text("stand-in: sms-stats' own ?notify= must never be sent", 400))
            verify = getattr(self, f"_verify_{platform}")
            payload: dict[str, Any] = verify(split.path, split.query, body)
            if self.enforce_rate_limits:
                self._count_against_limit(platform)
            faulted = self._fault(platform)
            if faulted is not None:
                reply = faulted
            else:
                with self._lock:
                    self._messages.append(Message(platform, payload, body, target))
                reply = _text("ok", 200) if platform == "slack" else self._ok(platform)
        except _Refused as refused:
            reply = refused.reply
        with self._lock:
            self._attempts.append(
                Attempt(
                    platform,
                    target,
                    body,
                    None if reply.hang else reply.status,
                    reply.body.decode("utf-8", "replace"),
                )
            )
        return reply

    def _count_against_limit(self, platform: str) -> None:
        """Every verified request counts, refused or not, as on the platforms."""
        now = time.monotonic()
        with self._lock:
            arrivals = self._arrivals[platform]
            arrivals.append(now)
            muted = self._muted_until.get(platform, 0.0) > now
            over = muted or any(
                sum(1 for t in arrivals if now - t < span) > count
                for count, span in RATE_LIMITS[platform]
            )
            if over and platform == "dingtalk" and not muted:
                self._muted_until[platform] = now + DINGTALK_MUTE_S
        if not over:
            return
        if platform == "wecom":
            raise _wecom_error(45009, "api freq out of limit")
        if platform == "dingtalk":
            raise _dingtalk_error(130101, "send too fast, exceed 20 times per minute")
        if platform == "feishu":
            raise _feishu_error(11232, "frequency limited")
        refused = _slack_error("rate_limited", 429)
        refused.reply.headers["Retry-After"] = "1"
        raise refused

    @property
    def rate_limited(self) -> int:
        """How many requests were refused for the platform's rate limit."""
        marks = ("45009", "130101", "11232", "rate_limited")
        with self._lock:
            return sum(1 for a in self._attempts if any(m in a.answer for m in marks))

    def _platform(self, path: str) -> str | None:
        if path == "/cgi-bin/webhook/send":
            return "wecom"
        if path == "/robot/send":
            return "dingtalk"
        if path.startswith("/open-apis/bot/v2/hook/"):
            return "feishu"
        if path.startswith("/services/"):
            return "slack"
        return None

    @staticmethod
    def _ok(platform: str) -> _Reply:
        if platform == "feishu":
            return _json({"code": 0, "data": {}, "msg": "success"})
        return _json({"errcode": 0, "errmsg": "ok"})

    def _fault(self, platform: str) -> _Reply | None:
        with self._lock:
            fault = self._faults.get(platform)
            if fault is None:
                return None
            if fault.after > 0:
                fault.after -= 1
                return None
            if fault.times is not None:
                if fault.times <= 0:
                    del self._faults[platform]
                    return None
                fault.times -= 1
        self._pause(fault.latency_s)
        if fault.hang:
            self._pause(HANG_CAP_S)
            return _Reply(0, b"", hang=True)
        if fault.http_status is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            text = fault.error_message if platform == "slack" else f"{fault.http_status} error"
            return _Reply(fault.http_status, text.encode(), "text/html", extra)
        if fault.error_code is not None:
            if platform == "feishu":
                return _json({"code": fault.error_code, "data": {}, "msg": fault.error_message})
            if platform == "slack":
                return _text(fault.error_message, 400)
            return _json({"errcode": fault.error_code, "errmsg": fault.error_message})
        return None

    @staticmethod
    def _parse(body: bytes, refuse: Callable[[], _Refused]) -> dict[str, Any]:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise refuse() from None
        if not isinstance(payload, dict):
            raise refuse()
        return payload

    # WeCom: https://developer.work.weixin.qq.com/document/path/91770
    def _verify_wecom(self, path: str, query: str, body: bytes) -> dict[str, Any]:
        if parse_qs(query).get("key") != [self.wecom_key]:
            raise _wecom_error(93000, "invalid webhook url")
        payload = self._parse(body, lambda: _wecom_error(40035, "invalid json parameter"))
        if payload.get("msgtype") != "markdown":
            raise _wecom_error(40008, "invalid message type")
        markdown = payload.get("markdown")
        content = markdown.get("content") if isinstance(markdown, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _wecom_error(44004, "empty content")
        if len(content.encode("utf-8")) > WECOM_MAX_CONTENT:
            raise _wecom_error(40058, "markdown.content exceed max length 4096")
        return payload

    # DingTalk: https://open.dingtalk.com/document/robots/customize-robot-security-settings
    def _verify_dingtalk(self, path: str, query: str, body: bytes) -> dict[str, Any]:
        params = parse_qs(query)  # decodes %2B and + like DingTalk's own server
        if params.get("access_token") != [self.dingtalk_token]:
            raise _dingtalk_error(300001, "token is not exist")
        if self.dingtalk_secret is not None:
            stamps, signs = params.get("timestamp", []), params.get("sign", [])
            if len(stamps) != 1 or len(signs) != 1:
                raise _dingtalk_error(310000, "sign not match, more: [missing timestamp or sign]")
            stamp = stamps[0]
            if not stamp.isdigit() or abs(self.clock() * 1000 - int(stamp)) > MAX_SKEW_S * 1000:
                raise _dingtalk_error(310000, "invalid timestamp, more: [timestamp expired]")
            expected = dingtalk_sign(self.dingtalk_secret, stamp)
            if not hmac.compare_digest(expected, signs[0]):
                raise _dingtalk_error(310000, "sign not match, more: [sign not match]")
        if len(body) > DINGTALK_MAX_BODY:
            raise _dingtalk_error(460101, "message too long, exceed 20000 bytes")
        payload = self._parse(body, lambda: _dingtalk_error(40035, "缺少参数 json"))
        if payload.get("msgtype") != "markdown":
            raise _dingtalk_error(40035, "stand-in verifies markdown messages only")
        markdown = payload.get("markdown")
        if not isinstance(markdown, dict):
            raise _dingtalk_error(40035, "缺少参数 markdown")
        for name in ("title", "text"):
            value = markdown.get(name)
            if not isinstance(value, str) or not value.strip():
                raise _dingtalk_error(40035, f"缺少参数 markdown.{name}")
        return payload

    # Feishu: https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
    def _verify_feishu(self, path: str, query: str, body: bytes) -> dict[str, Any]:
        match = _FEISHU_PATH.fullmatch(path)
        if match is None or match.group(1) != self.feishu_token:
            raise _feishu_error(19001, "param invalid: incoming webhook access token invalid")
        if len(body) > FEISHU_MAX_BODY:
            raise _feishu_error(9499, "Bad Request: request body too large", status=400)
        payload = self._parse(body, lambda: _feishu_error(9499, "Bad Request", status=400))
        if self.feishu_secret is not None:
            stamp, signature = payload.get("timestamp"), payload.get("sign")
            stamp = str(stamp) if isinstance(stamp, (str, int)) else ""
            fresh = stamp.isdigit() and abs(self.clock() - int(stamp)) <= MAX_SKEW_S
            if (
                not fresh
                or not isinstance(signature, str)
                or not hmac.compare_digest(feishu_sign(self.feishu_secret, stamp), signature)
            ):
                raise _feishu_error(
                    19021, "sign match fail or timestamp is not within one hour from current time"
                )
        kind = payload.get("msg_type")
        if not kind:
            raise _feishu_error(19002, "params error, msg_type need")
        if kind != "interactive":
            raise _feishu_error(19002, "stand-in verifies interactive cards only")
        self._check_card(payload.get("card"))
        return payload

    @staticmethod
    def _check_card(card: Any) -> None:
        def bad(why: str) -> _Refused:
            return _feishu_error(11246, f"card invalid: {why}")

        if not isinstance(card, dict):
            raise bad("card must be an object")
        title = card.get("header", {}).get("title", {})
        if not isinstance(title, dict) or not isinstance(title.get("content"), str):
            raise bad("header.title.content must be text")
        elements = card.get("elements")
        if not isinstance(elements, list) or not elements:
            raise bad("elements must be a non-empty list")
        for element in elements:
            tag = element.get("tag") if isinstance(element, dict) else None
            if tag == "hr":
                continue
            if tag != "div":
                raise bad(f"unexpected element {tag!r}")
            text = element.get("text")
            if (
                not isinstance(text, dict)
                or text.get("tag") not in ("lark_md", "plain_text")
                or not isinstance(text.get("content"), str)
                or not text["content"]
            ):
                raise bad("div.text must be lark_md or plain_text with content")

    # Slack: https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit
    def _verify_slack(self, path: str, query: str, body: bytes) -> dict[str, Any]:
        if path != f"/services/{self.slack_path}":
            raise _slack_error("no_service", 404)
        payload = self._parse(body, lambda: _slack_error("invalid_payload", 400))
        text, blocks = payload.get("text"), payload.get("blocks")
        if not text and not blocks:
            raise _slack_error("no_text", 400)
        if blocks is not None:
            if not isinstance(blocks, list) or not 0 < len(blocks) <= SLACK_MAX_BLOCKS:
                raise _slack_error("invalid_blocks", 400)
            for block in blocks:
                if not self._valid_block(block):
                    raise _slack_error("invalid_blocks", 400)
        return payload

    @staticmethod
    def _valid_block(block: Any) -> bool:
        if not isinstance(block, dict):
            return False
        kind, text = block.get("type"), block.get("text")
        if kind == "divider":
            return True
        if not isinstance(text, dict) or not isinstance(text.get("text"), str):
            return False
        if kind == "header":
            return text.get("type") == "plain_text" and 0 < len(text["text"]) <= SLACK_MAX_HEADER
        if kind == "section":
            return (
                text.get("type") in ("mrkdwn", "plain_text")
                and 0 < len(text["text"]) <= SLACK_MAX_SECTION
            )
        return False


class _Handler(LoopbackHandler[BotReceiver]):
    methods = ("POST",)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        reply = self.owner._handle(self.path, body)
        self.close_connection = True  # one request per connection: nothing lingers
        if reply.hang:
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", f"{reply.content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)
