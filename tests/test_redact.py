"""`redact`: the registry of secrets, `scrub`, and `quote` (scrub first, then cut)."""

from __future__ import annotations

import html
import json
import logging
import re
from urllib.parse import quote as percent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.core import redact
from sms_stats.core.log import Logger, hold_third_party_loggers

TOKEN = "9f3a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"  # 64 characters


def percent_lower(text: str) -> str:
    """Percent-encoded with lower-case hex digits, as some servers echo it."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), percent(text, safe=""))


def prefixes(secret: str, shortest: int = 8) -> list[str]:
    return [secret[:n] for n in range(shortest, len(secret) + 1)]


def leaked(text: str, secret: str) -> list[str]:
    return [p for p in prefixes(secret) if p in text]


class TestRegistry:
    def test_given_short_values_when_registered_then_ignored(self) -> None:
        redact.register("abc", "12345", "", None, 42)
        assert redact.registered() == 0
        assert redact.scrub("abc 12345 ok") == "abc 12345 ok"

    def test_given_the_same_values_registered_again_and_again_then_the_registry_stays_small(
        self,
    ) -> None:
        for _ in range(100):
            redact.register(TOKEN, "another-secret-1234")
        assert redact.registered() == 2

    def test_given_more_values_than_the_bound_then_the_oldest_go(self) -> None:
        count = redact.MAX_SECRETS + 50
        redact.register(*(f"{n:06d}-secret-value" for n in range(count)))
        assert redact.registered() == redact.MAX_SECRETS
        assert redact.scrub("000000-secret-value") == "000000-secret-value"
        assert redact.scrub(f"{count - 1:06d}-secret-value x") == "*** x"

    def test_given_clear_then_nothing_is_masked(self) -> None:
        redact.register(TOKEN)
        redact.clear()
        assert redact.scrub(f"t={TOKEN[:20]}") == f"t={TOKEN[:20]}"


class TestScrub:
    @pytest.mark.parametrize(
        "encode",
        [
            lambda s: s,
            lambda s: percent(s, safe=""),
            percent_lower,
            lambda s: json.dumps(s)[1:-1],
            html.escape,
        ],
        ids=["raw", "percent", "percent-lower", "json", "html"],
    )
    def test_given_a_registered_secret_in_an_encoded_form_then_masked(self, encode: object) -> None:
        secret = 'tok/en+"<&>-5f8a1c3e9b'
        redact.register(secret)
        text = f"before {encode(secret)} after"  # type: ignore[operator]
        assert redact.scrub(text) == "before *** after"

    def test_given_only_the_start_of_a_secret_then_masked_as_far_as_it_goes(self) -> None:
        redact.register(TOKEN)
        assert redact.scrub(f"cut: {TOKEN[:9]}... end") == "cut: ***... end"

    def test_given_words_from_a_webhook_url_then_only_key_like_pieces_registered(self) -> None:
        url = f"https://hooks.example/hooks/sms-stats/{TOKEN}?region=ap-guangzhou&sig=a1b2c3d4e5"
        assert sorted(redact.likely_url_secrets(url)) == sorted([TOKEN, "a1b2c3d4e5"])

    def test_given_userinfo_then_it_is_a_url_secret(self) -> None:
        url = "file://user:pa55word-SENTINEL@host/dir"
        assert "pa55word-SENTINEL" in redact.url_secrets(url)
        assert "pa55word-SENTINEL" in redact.likely_url_secrets(url)

    @pytest.mark.parametrize(
        "advice",
        [
            "send Authorization: Bearer <token>",
            "a WeCom robot URL needs its ?key=KEY, like https://x/send?key=KEY",
            "like https://oapi.dingtalk.com/robot/send?access_token=TOKEN&secret=SEC...",
        ],
    )
    def test_given_a_placeholder_in_our_own_advice_then_left_readable(self, advice: str) -> None:
        assert redact.scrub(advice) == advice

    @pytest.mark.parametrize(
        ("text", "kept"),
        [
            (
                "Authorization: TC3-HMAC-SHA256 Credential=AKIDxyz/2021-05-01/sms/tc3_request, "
                "SignedHeaders=content-type;host, Signature=00ff",
                "Authorization: ***",
            ),
            ("X-TC-Token: tok-123\nHost: sms.tencentcloudapi.com", "X-TC-Token: ***\nHost: sms"),
            ('{"x-cos-security-token": "tok-123", "host": "a"}', '"x-cos-security-token": ***,'),
            ("scope Credential=AKIDabc/2021-05-01/sms", "Credential=***"),
            ("q-sign-algorithm=sha1&q-ak=AKIDabc&q-sign-time=1;2", "q-ak=***&q-sign-time"),
            ("id AKID" + "a1" * 16 + " end", "id *** end"),
            ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw end", "secret *** end"),
            ("sent Bearer abc.def-ghi end", "sent Bearer *** end"),
            ("POST /robot/send?access_token=dt123456&x=1", "?access_token=***&x=1"),
        ],
    )
    def test_given_credential_shapes_never_registered_then_masked(
        self, text: str, kept: str
    ) -> None:
        scrubbed = redact.scrub(text)
        assert kept in scrubbed
        for value in ("AKIDxyz", "AKIDabc", "tok-123", "abc.def", "dt123456", "MfKQ9r8G", "a1a1"):
            assert value not in scrubbed


class TestQuote:
    def test_given_a_secret_across_the_cut_then_no_piece_of_it_survives(self) -> None:
        """Issue 12, item 7: cutting at 200 first left 60 of the token's 64 characters."""
        redact.register(TOKEN)
        body = "Cannot POST /" + "p" * 127 + "/" + TOKEN
        assert 200 - body.index(TOKEN) == 59  # the cut would go through the token
        quoted = redact.quote(body, 200)
        assert len(quoted) <= 200
        assert not leaked(quoted, TOKEN)

    def test_given_extra_url_pieces_then_masked_in_that_quote_only(self) -> None:
        assert redact.quote("echo hooks-SENTINEL-77", 100, ["hooks-SENTINEL-77"]) == "echo ***"
        assert redact.scrub("echo hooks-SENTINEL-77") == "echo hooks-SENTINEL-77"

    def test_given_bytes_and_newlines_then_one_line(self) -> None:
        assert redact.quote(b"a\n  b\r\n", 10) == "a b"
        assert redact.quote("x" * 20, 10, mark="~") == "x" * 9 + "~"
        assert redact.quote(None, 10) == ""


_SECRET_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), exclude_characters="*"
)
_ENCODINGS = {
    "raw": lambda s: s,
    "percent": lambda s: percent(s, safe=""),
    "percent-lower": percent_lower,
    "json": lambda s: json.dumps(s)[1:-1],
    "json-ascii": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "html": html.escape,
}


@given(
    secret=st.text(_SECRET_CHARS, min_size=8, max_size=80),
    before=st.text(max_size=120),
    after=st.text(max_size=120),
    encoding=st.sampled_from(sorted(_ENCODINGS)),
)
def test_given_any_secret_in_any_encoded_form_then_no_8_char_prefix_survives_any_cut(
    secret: str, before: str, after: str, encoding: str
) -> None:
    redact.clear()
    redact.register(secret)
    form = _ENCODINGS[encoding](secret)
    text = before + form + after
    for limit in range(len(text) + 1):
        quoted = redact.quote(text, limit)
        assert len(quoted) <= limit
        for shown in {secret, form}:
            assert not leaked(quoted, shown), (limit, quoted)


class TestLogs:
    def test_given_a_secret_in_a_field_then_the_json_line_masks_it_and_stays_json(self) -> None:
        import io

        redact.register(TOKEN)
        stream = io.StringIO()
        Logger(stream).warning(
            "x", message=f'said "{TOKEN}"', nested={"k": [TOKEN[:12]]}, when=object()
        )
        line = json.loads(stream.getvalue())
        assert line["message"] == 'said "***"'
        assert line["nested"] == {"k": ["***"]}
        assert not leaked(stream.getvalue(), TOKEN)

    @pytest.mark.parametrize("name", ["qcloud_cos.cos_client", "urllib3.connectionpool"])
    def test_given_root_at_debug_and_a_library_reconfigured_then_held_and_scrubbed(
        self, name: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        redact.register(TOKEN)
        caplog.set_level(logging.DEBUG)
        library = logging.getLogger(name.partition(".")[0])
        library.setLevel(logging.DEBUG)  # what a user's logging setup may do
        library.propagate = True
        hold_third_party_loggers()
        child = logging.getLogger(name)
        child.debug("GET /cgi-bin/webhook/send?key=%s", TOKEN)
        child.error("<Error><Message>token %s</Message></Error>", TOKEN)
        messages = [r.getMessage() for r in caplog.records if r.name == name]
        assert messages == ["<Error><Message>token ***</Message></Error>"]
        assert not leaked(caplog.text, TOKEN)

    def test_given_a_library_traceback_holding_a_secret_then_scrubbed(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        redact.register(TOKEN)
        hold_third_party_loggers()
        try:
            raise ValueError(f"bad {TOKEN}")
        except ValueError:
            logging.getLogger("qcloud_cos.cos_client").exception("retry failed")
        assert "retry failed" in caplog.text
        assert "ValueError: bad ***" in caplog.text
        assert not leaked(caplog.text, TOKEN)


class TestWhereBodiesAreQuoted:
    """Each place that quotes what a server said scrubs before it cuts (issue 12, items 7, 10)."""

    def test_given_a_bot_error_quoting_its_key_at_the_cut_then_no_piece_in_the_verdict(
        self,
    ) -> None:
        from sms_stats.deliver.chat.answers import code_check, one_line

        redact.register(TOKEN)
        message = "." * 170 + f" key={TOKEN}"
        verdict = code_check(
            json.dumps({"errcode": 93000, "errmsg": message}).encode(),
            ("errcode",),
            ("errmsg",),
            frozenset(),
            {},
        )
        assert verdict.error is not None
        assert verdict.error.startswith("errcode 93000 ...")
        assert not leaked(verdict.error, TOKEN)
        assert not leaked(one_line(message), TOKEN)

    def test_given_a_502_echoing_the_request_headers_then_map_sdk_error_quotes_no_credential(
        self,
    ) -> None:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )

        from sms_stats.collect.client import map_sdk_error

        secret_id, token = "AKID" + "Zq7" * 10 + "xy", "session-" + TOKEN
        redact.register(secret_id, token)
        body = (
            "502 Bad Gateway\nAuthorization: TC3-HMAC-SHA256 "
            f"Credential={secret_id}/2021-05-01/sms/tc3_request, SignedHeaders=content-type;host, "
            f"Signature={'ab' * 32}\nX-TC-Token: {token}\nHost: sms.tencentcloudapi.com\n"
        )
        error = map_sdk_error(TencentCloudSDKException("ServerNetworkError", body.encode()))
        assert error.code == "ServerNetworkError"
        assert "502 Bad Gateway Authorization: ***" in error.message
        assert not leaked(error.message, secret_id)
        assert not leaked(error.message, token)
        unregistered = map_sdk_error(
            TencentCloudSDKException("ServerNetworkError", body.replace(token, "x" * 40).encode())
        )
        assert "Credential=" not in unregistered.message
        assert "x" * 8 not in unregistered.message

    def test_given_a_cos_error_echoing_headers_then_the_failure_names_no_secret_id_or_token(
        self,
    ) -> None:
        from qcloud_cos.cos_exception import CosServiceError

        from sms_stats.store.cos import CosSink, CosTarget

        # a SecretId not shaped like AKID...: only the sink's list can mask it
        secret_id, key, token = "subaccount-id-7f3e9a1c2b", "cos-secret-key-value", "cos-" + TOKEN
        sink = CosSink(
            CosTarget("stats-1250000000", "p", "ap-guangzhou"),
            None,
            timeout=1.0,
            max_attempts=1,
            secrets=(secret_id, key, token),
        )
        redact.clear()  # only what the sink was given
        said = f"Access Denied for {secret_id}: "
        message = said + "." * (185 - len(said)) + f" token {token}"
        digest = {"code": "AccessDenied", "message": message, "requestid": "r-1"}
        failure = sink._service_failure(CosServiceError("PUT", digest, 403))
        assert failure.text.startswith("AccessDenied: Access Denied for ***: ...")
        assert not leaked(failure.text, secret_id)
        assert not leaked(failure.text, token)


def test_given_warm_invocations_when_settings_change_then_the_registry_is_replaced_not_grown(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, object]
) -> None:
    from index import main_handler

    from .conftest import load_event

    event = load_event("function_url_get.json")
    main_handler(event, context)
    first = redact.registered()
    assert first > 0
    for _ in range(5):
        main_handler(event, context)
    assert redact.registered() == first
    monkeypatch.setenv("TENCENTCLOUD_SESSIONTOKEN", "rotated-session-token-0001")
    main_handler(event, context)
    assert redact.registered() == first
    assert redact.scrub("rotated-session-token-0001") == "***"
    assert (
        redact.scrub(scf_env["TENCENTCLOUD_SESSIONTOKEN"]) == scf_env["TENCENTCLOUD_SESSIONTOKEN"]
    )


def test_given_a_receiver_echoing_the_path_lower_cased_when_quoted_then_masked() -> None:
    """Found by a review: `Cannot POST /hooks/<token lower-cased>` showed all 48 characters."""
    token = "Zk3QmR8vT2xLw9PjN4bYc6HsD1fGa7EuVo5XiK0nMqRtSy2B"
    redact.register(token)
    page = f"Cannot POST /hooks/{token.lower()} and /hooks/{token.upper()}"
    shown = redact.quote(page, 500)
    assert token.lower()[:8] not in shown
    assert token.upper()[:8] not in shown
    assert shown.startswith("Cannot POST /hooks/***")


def test_given_a_letter_whose_lower_case_is_longer_then_secrets_still_masked_whole() -> None:
    secret = "AbCdEfGhIjKlMnOp"
    redact.register(secret)
    shown = redact.scrub(f"İstanbul {secret} {secret.lower()}")
    assert shown == "İstanbul *** ***"


_PIECES = st.sampled_from(
    [
        *"AKIDakidwhsec_Bearer bearer:=&?-xtcq0123456789abcdefABCDEF\"'\n",
        "AKID",
        "whsec_",
        "Bearer ",
        "Credential=",
        "q-ak=",
        "?token=",
        "Authorization: ",
        "Proxy-Authorization:",
        "X-TC-Token: ",
        "x-cos-security-token:",
        "Cookie: ",
        "cookie ",
        "file:out",
    ]
)


@given(st.lists(_PIECES, max_size=40).map("".join))
def test_given_any_text_when_the_hint_skips_the_passes_then_nothing_was_missed(text: str) -> None:
    assert redact.mask_shapes(text) == redact._mask_all(text)


@given(st.text(), st.booleans())
def test_given_any_text_when_html_escaped_then_it_equals_the_stdlib_escape(
    text: str, quote: bool
) -> None:
    assert redact.html_escape(text, quote=quote) == html.escape(text, quote=quote)


def test_given_text_without_any_hint_when_scrubbed_then_the_shapes_are_not_compiled() -> None:
    redact._shapes.cache_clear()
    assert redact.scrub("sink file:out window 2021050112-2021050112 app 1400006874") == (
        "sink file:out window 2021050112-2021050112 app 1400006874"
    )
    assert redact._shapes.cache_info().currsize == 0
    assert redact.scrub("GET /?token=abcdef123456") == "GET /?token=***"
    assert redact._shapes.cache_info().currsize == 1
