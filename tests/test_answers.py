"""answers.read: every answer decoded, parsed and validated; nothing but our errors escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.answers import (
    MAX_COUNT,
    BadAnswer,
    ErrorAnswer,
    SendStatusStatisticsAnswer,
    read,
)
from sms_stats.errors import BAD_RESPONSE, UpstreamError

ACTION = "SendStatusStatistics"


def answer_bytes(counts: str | None = None, request_id: str = '"rid-1"', **fields: str) -> bytes:
    """An answer with each count field's JSON text as given (default: a healthy answer)."""
    texts = {"FeeCount": "1900", "RequestCount": "1880", "RequestSuccessCount": "1870", **fields}
    inner = counts or "{" + ",".join(f'"{k}":{v}' for k, v in texts.items()) + "}"
    return f'{{"Response":{{"SendStatusStatistics":{inner},"RequestId":{request_id}}}}}'.encode()


def refused(body: bytes) -> BadAnswer:
    with pytest.raises(BadAnswer) as caught:
        read(ACTION, body)
    return caught.value


class TestValidAnswers:
    def test_given_healthy_answer_when_read_then_counts_and_request_id(self) -> None:
        answer = read(ACTION, answer_bytes())

        assert isinstance(answer, SendStatusStatisticsAnswer)
        assert answer.RequestId == "rid-1"
        assert answer.SendStatusStatistics.RequestCount == 1880
        assert answer.SendStatusStatistics.RequestSuccessCount == 1870
        assert answer.SendStatusStatistics.FeeCount == 1900

    def test_given_fields_the_api_may_add_later_when_read_then_ignored(self) -> None:
        body = b'{"Response":{"SendStatusStatistics":{"FeeCount":0,"RequestCount":0,'
        body += b'"RequestSuccessCount":0,"New":1.5},"RequestId":"r","Later":[[{}]]},"X":null}'

        assert read(ACTION, body).SendStatusStatistics.RequestCount == 0

    def test_given_largest_count_and_all_successes_when_read_then_accepted(self) -> None:
        top = str(MAX_COUNT)
        answer = read(ACTION, answer_bytes(RequestCount=top, RequestSuccessCount=top))

        assert answer.SendStatusStatistics.RequestSuccessCount == MAX_COUNT

    def test_given_error_envelope_when_read_then_error_answer_with_code_message_and_id(
        self,
    ) -> None:
        body = b'{"Response":{"Error":{"Code":"UnsupportedOperation.","Message":"no"},'
        body += b'"RequestId":"rid-9"}}'

        with pytest.raises(ErrorAnswer) as caught:
            read(ACTION, body)

        assert (caught.value.code, caught.value.message) == ("UnsupportedOperation.", "no")
        assert caught.value.request_id == "rid-9"


class TestImpossibleAnswers:
    @pytest.mark.parametrize(
        ("fields", "field", "rule", "value"),
        [
            ({"RequestCount": "Infinity"}, "RequestCount", "JSON integer", "Infinity"),
            ({"RequestCount": "-Infinity"}, "RequestCount", "JSON integer", "-Infinity"),
            ({"FeeCount": "NaN"}, "FeeCount", "JSON integer", "NaN"),
            ({"RequestCount": "1e400"}, "RequestCount", "JSON integer", "1e400"),
            ({"RequestCount": "1880.0"}, "RequestCount", "JSON integer", "1880.0"),
            ({"RequestCount": "1880.5"}, "RequestCount", "JSON integer", "1880.5"),
            ({"RequestCount": "true"}, "RequestCount", "JSON integer", "true"),
            ({"RequestCount": '"1880"'}, "RequestCount", "JSON integer", '"1880"'),
            ({"RequestCount": "null"}, "RequestCount", "JSON integer", "null"),
            ({"FeeCount": "-1"}, "FeeCount", "negative", "-1"),
            ({"RequestCount": str(MAX_COUNT + 1)}, "RequestCount", "at most", str(MAX_COUNT + 1)),
            ({"RequestCount": "9" * 5000}, "RequestCount", "JSON integer", "9" * 40),
            ({"RequestCount": "[1]"}, "RequestCount", "JSON integer", "[1]"),
        ],
    )
    def test_given_impossible_count_when_read_then_refused_naming_field_rule_and_raw_value(
        self, fields: dict[str, str], field: str, rule: str, value: str
    ) -> None:
        error = refused(answer_bytes(**fields))

        assert error.field == f"Response.SendStatusStatistics.{field}"
        assert rule in error.rule
        assert value in error.value
        assert value[:40] in error.message
        assert error.request_id == "rid-1"

    def test_given_successes_above_requests_when_read_then_refused(self) -> None:
        error = refused(answer_bytes(RequestCount="5", RequestSuccessCount="6"))

        assert error.field == "Response.SendStatusStatistics"
        assert error.rule == "RequestSuccessCount must not exceed RequestCount"
        assert '"RequestSuccessCount": 6' in error.value

    def test_given_missing_count_when_read_then_refused(self) -> None:
        error = refused(answer_bytes(counts='{"FeeCount":1,"RequestCount":1}'))

        assert error.field == "Response.SendStatusStatistics.RequestSuccessCount"
        assert error.rule == "is missing"

    @pytest.mark.parametrize(
        ("request_id", "rule"),
        [
            ("{}", "must be a string"),
            ("12", "must be a string"),
            ('""', "must not be empty"),
            ('"' + "r" * 129 + '"', "at most 128"),
            ('"\\ud800"', "lone surrogate"),
        ],
    )
    def test_given_request_id_not_a_request_id_when_read_then_refused(
        self, request_id: str, rule: str
    ) -> None:
        error = refused(answer_bytes(request_id=request_id))

        assert error.field == "Response.RequestId"
        assert rule in error.rule
        error.value.encode("utf-8")  # a lone surrogate is shown escaped: any log can write it

    def test_given_no_request_id_when_read_then_refused(self) -> None:
        body = b'{"Response":{"SendStatusStatistics":{"FeeCount":1,"RequestCount":1,'
        body += b'"RequestSuccessCount":1}}}'

        assert refused(body).field == "Response.RequestId"

    @pytest.mark.parametrize(
        ("body", "rule", "value"),
        [
            (b'{"Response":{"RequestId":"\xff"}}', "UTF-8", "0xff at 26"),
            (b"\xef\xbb\xbf{}", "JSON", "BOM"),
            (b"[" * 100_000, "JSON", "nested too deep"),
            (b'{"Response":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON", "nested"),
            (b"<html><h1>502 Bad Gateway</h1></html>", "JSON", "Expecting value"),
            (b'{"Response":{"RequestId":"r"', "JSON", "delimiter"),
            (b"", "JSON", "Expecting value"),
        ],
    )
    def test_given_body_that_is_not_utf8_json_when_read_then_refused(
        self, body: bytes, rule: str, value: str
    ) -> None:
        error = refused(body)

        assert error.field == ""
        assert rule in error.rule
        assert value in error.value

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"[]", "Response"),
            (b"{}", "Response"),
            (b'{"Response":[]}', "Response"),
            (b'{"Response":{"RequestId":"r","SendStatusStatistics":[]}}', "SendStatusStatistics"),
            (b'{"Response":{"Error":{"Code":5,"Message":"m"},"RequestId":"r"}}', "Error.Code"),
            (b'{"Response":{"Error":{"Code":"A B","Message":"m"},"RequestId":"r"}}', "Error.Code"),
            (b'{"Response":{"Error":"InternalError","RequestId":"r"}}', "Error"),
        ],
    )
    def test_given_wrong_shape_when_read_then_refused_naming_the_field(
        self, body: bytes, field: str
    ) -> None:
        assert refused(body).field.endswith(field)

    def test_given_bad_answer_then_retryable_bad_upstream_response(self) -> None:
        error = refused(answer_bytes(RequestCount="-1"))

        assert isinstance(error, UpstreamError)
        assert (error.code, error.status, error.retryable) == (BAD_RESPONSE, 502, True)
        assert str(error).startswith(f"{BAD_RESPONSE}: the API's SendStatusStatistics answer")


# -- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # json.dumps writes NaN, Infinity and 1e+300 as Python's JSON does
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
COUNT_NAMES = ("FeeCount", "RequestCount", "RequestSuccessCount")


def outcome(body: bytes) -> Any:
    """read's result, or the error it raised; anything else raised fails the property."""
    try:
        return read(ACTION, body)
    except (BadAnswer, ErrorAnswer) as exc:
        # What a log line, an HTTP answer or a store will have to write.
        str(exc).encode("utf-8")
        if isinstance(exc, BadAnswer):
            (exc.field + exc.rule + exc.value).encode("utf-8")
            assert len(exc.value) <= 80
        else:
            (exc.code + exc.message + exc.request_id).encode("utf-8")
        return exc


@given(st.binary(max_size=300))
def test_given_any_bytes_when_read_then_an_answer_or_our_error(body: bytes) -> None:
    outcome(body)


@given(json_values)
def test_given_any_json_as_the_response_when_read_then_an_answer_or_our_error(value: Any) -> None:
    outcome(json.dumps({"Response": value}).encode())
    outcome(json.dumps(value).encode())


@given(
    st.dictionaries(st.sampled_from([*COUNT_NAMES, "RequestId", "Error", "X"]), json_values),
    st.dictionaries(st.sampled_from([*COUNT_NAMES, "X"]), json_values),
)
def test_given_answer_shaped_json_when_read_then_valid_only_if_every_rule_holds(
    response: dict[str, Any], counts: dict[str, Any]
) -> None:
    response = {**response, "SendStatusStatistics": counts}

    result = outcome(json.dumps({"Response": response}).encode())

    if isinstance(result, SendStatusStatisticsAnswer):
        for name in COUNT_NAMES:
            value = counts[name]
            assert type(value) is int
            assert 0 <= value <= MAX_COUNT
        assert counts["RequestSuccessCount"] <= counts["RequestCount"]
        assert isinstance(response["RequestId"], str)


@given(
    st.integers(0, MAX_COUNT),
    st.integers(0, MAX_COUNT),
    st.integers(0, MAX_COUNT),
    st.text(min_size=1, max_size=128),
    st.booleans(),
)
def test_given_valid_answer_when_serialized_and_read_then_the_same_values(
    requests: int, successes: int, fee: int, request_id: str, ascii_only: bool
) -> None:
    successes = min(successes, requests)
    response = {
        "SendStatusStatistics": {
            "FeeCount": fee,
            "RequestCount": requests,
            "RequestSuccessCount": successes,
        },
        "RequestId": request_id,
    }
    body = json.dumps({"Response": response}, ensure_ascii=ascii_only).encode()

    answer = read(ACTION, body)

    assert answer.model_dump() == response


@given(st.sampled_from(COUNT_NAMES), st.floats() | st.booleans() | st.text() | st.none())
def test_given_any_non_integer_count_when_read_then_refused_naming_it(
    name: str, value: Any
) -> None:
    counts = {"FeeCount": 1, "RequestCount": 1, "RequestSuccessCount": 1, name: value}
    body = json.dumps({"Response": {"SendStatusStatistics": counts, "RequestId": "r"}})

    assert refused(body.encode()).field == f"Response.SendStatusStatistics.{name}"


def test_given_an_error_envelope_without_request_id_when_read_then_still_that_error() -> None:
    """An auth failure without a RequestId is that auth failure: not a bad answer retried
    three times, which hid it (found by a review)."""
    body = b'{"Response": {"Error": {"Code": "AuthFailure.SecretIdNotFound", "Message": "no"}}}'
    with pytest.raises(ErrorAnswer) as caught:
        read("SendStatusStatistics", body)
    assert (caught.value.code, caught.value.request_id) == ("AuthFailure.SecretIdNotFound", "")
