"""answers.read: every answer decoded, parsed and validated; nothing but our errors escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.collect.answers import (
    MAX_COUNT,
    BadAnswer,
    ErrorAnswer,
    SendStatusStatisticsAnswer,
    read,
)
from sms_stats.collect.apis.callback import CallbackStatusStatisticsAnswer
from sms_stats.collect.apis.packages import SmsPackagesStatisticsAnswer
from sms_stats.core.errors import BAD_RESPONSE, UpstreamError

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


# -- answers that contradict themselves (issue 23, item 7) ---------------------------------

CALLBACK = "CallbackStatusStatistics"
PACKAGES = "SmsPackagesStatistics"
REASONS = (
    "InternalErrorCount",
    "InvalidNumberCount",
    "ShutdownErrorCount",
    "BlackListCount",
    "FrequencyLimitCount",
)


def callback_bytes(**counts: int) -> bytes:
    """A receipts answer: 10 receipts, 7 delivered, 3 failed (one per first three reasons)."""
    values = {
        "CallbackCount": 10,
        "RequestSuccessCount": 12,
        "CallbackFailCount": 3,
        "CallbackSuccessCount": 7,
        **dict.fromkeys(REASONS, 0),
        "InternalErrorCount": 1,
        "InvalidNumberCount": 1,
        "ShutdownErrorCount": 1,
        **counts,
    }
    response = {CALLBACK: values, "RequestId": "rid-cb"}
    return json.dumps({"Response": response}).encode()


def packages_bytes(*changes: dict[str, int]) -> bytes:
    """A page of packages, each the healthy one below changed as given."""
    healthy = {
        "PackageCreateTime": 1_600_000_000,
        "PackageEffectiveTime": 1_600_000_000,
        "PackageExpiredTime": 1_700_000_000,
        "PackageAmount": 1000,
        "PackageType": 1,
        "PackageId": 7,
        "CurrentUsage": 10,
    }
    packages = [{**healthy, "PackageId": 7 + i, **change} for i, change in enumerate(changes)]
    response = {"SmsPackagesStatisticsSet": packages, "RequestId": "rid-p"}
    return json.dumps({"Response": response}).encode()


class TestReasonsWithinFailures:
    @pytest.mark.parametrize(
        "counts",
        [
            {},  # the reasons add up to the failures
            {"CallbackFailCount": 5, "CallbackSuccessCount": 5},  # two failed for other reasons
            {"CallbackFailCount": 0, **dict.fromkeys(REASONS, 0)},
        ],
        ids=["equal", "other reasons", "no failure"],
    )
    def test_given_reasons_within_the_failures_when_read_then_accepted(
        self, counts: dict[str, int]
    ) -> None:
        answer = read(CALLBACK, callback_bytes(**counts))

        assert isinstance(answer, CallbackStatusStatisticsAnswer)
        assert answer.CallbackStatusStatistics.CallbackFailCount == counts.get(
            "CallbackFailCount", 3
        )

    def test_given_no_failures_but_five_reasons_when_read_then_refused_naming_both_sums(
        self,
    ) -> None:
        body = callback_bytes(CallbackFailCount=0, **dict.fromkeys(REASONS, 1))

        with pytest.raises(BadAnswer) as caught:
            read(CALLBACK, body)

        error = caught.value
        assert error.field == "Response.CallbackStatusStatistics"
        assert "FrequencyLimitCount = 5) must not exceed CallbackFailCount (0)" in error.rule
        assert '"CallbackFailCount": 0' in error.value
        assert error.request_id == "rid-cb"
        assert error.retryable

    @given(st.lists(st.integers(0, 1000), min_size=6, max_size=6))
    def test_given_any_failures_and_reasons_when_read_then_refused_exactly_when_reasons_exceed(
        self, numbers: list[int]
    ) -> None:
        failures, *reasons = numbers
        counts = {"CallbackFailCount": failures, **dict(zip(REASONS, reasons, strict=True))}
        counts |= {"CallbackCount": failures, "CallbackSuccessCount": 0}

        result = outcome_of(CALLBACK, callback_bytes(**counts))

        assert isinstance(result, BadAnswer) == (sum(reasons) > failures)


class TestPackageTimes:
    @pytest.mark.parametrize(
        "name", ["PackageCreateTime", "PackageEffectiveTime", "PackageExpiredTime"]
    )
    def test_given_a_time_of_zero_when_read_then_refused_naming_the_package_field(
        self, name: str
    ) -> None:
        body = packages_bytes({}, {name: 0})

        with pytest.raises(BadAnswer) as caught:
            read(PACKAGES, body)

        error = caught.value
        assert error.field == f"Response.SmsPackagesStatisticsSet.1.{name}"
        assert error.rule.startswith("must be above 0")
        assert error.value == "0"
        assert error.request_id == "rid-p"

    @pytest.mark.parametrize("expired", [1_600_000_000, 1_599_999_999, 1])
    def test_given_expiry_not_after_effect_when_read_then_refused_with_both_times(
        self, expired: int
    ) -> None:
        body = packages_bytes({}, {}, {"PackageExpiredTime": expired})

        with pytest.raises(BadAnswer) as caught:
            read(PACKAGES, body)

        error = caught.value
        assert error.field == "Response.SmsPackagesStatisticsSet.2.PackageExpiredTime"
        assert error.rule.startswith("must be after PackageEffectiveTime")
        assert error.value == f"{expired}, PackageEffectiveTime 1600000000, PackageId 9"
        assert error.request_id == "rid-p"
        assert f"(got {expired}, PackageEffectiveTime 1600000000" in error.message

    def test_given_expiry_a_second_after_effect_when_read_then_accepted(self) -> None:
        answer = read(PACKAGES, packages_bytes({"PackageExpiredTime": 1_600_000_001}))

        assert isinstance(answer, SmsPackagesStatisticsAnswer)
        assert answer.SmsPackagesStatisticsSet[0].PackageExpiredTime == 1_600_000_001

    def test_given_a_time_past_the_year_9999_when_read_then_refused_with_its_own_limit(
        self,
    ) -> None:
        error = refused_as(PACKAGES, packages_bytes({"PackageExpiredTime": 253402214401}))

        assert error.rule == "must be at most 253402214400"


class TestRepeatedKeys:
    @pytest.mark.parametrize(
        ("body", "field", "value", "request_id"),
        [
            (
                b'{"Response":{"SendStatusStatistics":{"FeeCount":1,"RequestCount":5,'
                b'"RequestSuccessCount":1,"RequestCount":7},"RequestId":"rid-1"}}',
                "Response.SendStatusStatistics.RequestCount",
                "5, then 7",
                "rid-1",
            ),
            (
                b'{"Response":{"SendStatusStatistics":{"FeeCount":1,"RequestCount":5,'
                b'"RequestSuccessCount":1},"RequestId":"rid-1","RequestId":"rid-2"}}',
                "Response.RequestId",
                '"rid-1", then "rid-2"',
                None,  # which of the two it was is the question
            ),
            (
                b'{"Response":{"RequestId":"rid-1"},"Response":{"RequestId":"rid-1"}}',
                "Response",
                '{"RequestId": "rid-1"}, then {"RequestId": "rid-1"}',
                None,
            ),
            (
                b'{"Response":{"Error":{"Code":"InternalError","Message":"a","Message":"b"},'
                b'"RequestId":"rid-3"}}',
                "Response.Error.Message",
                '"a", then "b"',
                "rid-3",
            ),
            (
                b'{"Response":{"X":[{},[{"k.1":1,"k.1":2.5}]],"RequestId":"rid-4"}}',
                'Response.X.1.0."k.1"',
                "1, then 2.5",
                "rid-4",
            ),
        ],
        ids=["count", "request id", "top level", "error envelope", "nested, odd key"],
    )
    def test_given_a_key_named_twice_when_read_then_refused_naming_where_and_both_values(
        self, body: bytes, field: str, value: str, request_id: str | None
    ) -> None:
        error = refused(body)

        assert error.field == field
        assert error.rule.startswith("must appear once in its object")
        assert error.value == value
        assert error.request_id == request_id
        assert error.retryable

    def test_given_a_repeated_key_in_the_third_package_when_read_then_that_package_named(
        self,
    ) -> None:
        text = packages_bytes({}, {}, {}).decode()
        head, tail = text.rsplit('"CurrentUsage": 10}', 1)
        body = (head + '"CurrentUsage": 10, "CurrentUsage": 0}' + tail).encode()

        error = refused_as(PACKAGES, body)

        assert error.field == "Response.SmsPackagesStatisticsSet.2.CurrentUsage"
        assert (error.value, error.request_id) == ("10, then 0", "rid-p")

    def test_given_a_repeated_key_then_a_body_that_is_not_json_when_read_then_refused_as_json(
        self,
    ) -> None:
        error = refused(b'{"Response":[{"a":1,"a":2}, nope]}')

        assert (error.field, error.rule) == ("", "the body must be JSON")
        assert "Expecting value" in error.value

    def test_given_a_key_repeated_with_surrogates_when_read_then_everything_writable(
        self,
    ) -> None:
        error = refused(b'{"Response":{"\\ud800":"\\udfff","\\ud800":1}}')

        assert error.field == 'Response."\\ud800"'
        (error.field + error.value + str(error)).encode("utf-8")


# A JSON value as the pairs it is written with, so that a key may come twice.
Tree = Any
pair_trees: st.SearchStrategy[Tree] = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda items: ("array", items))
        | st.lists(
            st.tuples(st.sampled_from(["a", "b", "RequestId", "é.x"]), inner), max_size=4
        ).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=12,
)


def written(tree: Tree) -> str:
    if isinstance(tree, tuple) and tree[0] == "array":
        return "[" + ",".join(written(item) for item in tree[1]) + "]"
    if isinstance(tree, tuple):
        return "{" + ",".join(f"{json.dumps(k)}:{written(v)}" for k, v in tree[1]) + "}"
    return json.dumps(tree)


def first_repeat(tree: Tree, path: tuple[str | int, ...] = ()) -> tuple[Any, ...] | None:
    """The path to the first key named twice, objects taken in the order a parser finishes
    them (inner ones first, left to right), the key first named twice within one."""
    if not isinstance(tree, tuple):
        return None
    kind, items = tree
    for index, item in enumerate(items):
        step = index if kind == "array" else item[0]
        found = first_repeat(item if kind == "array" else item[1], (*path, step))
        if found is not None:
            return found
    if kind == "object":
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                return (*path, key)
            seen.add(key)
    return None


def shown(path: tuple[Any, ...]) -> str:
    parts = [p if isinstance(p, int) or p.isidentifier() else json.dumps(p) for p in path]
    return ".".join(str(p) for p in parts)


@given(pair_trees)
def test_given_any_json_when_read_then_refused_for_a_repeated_key_exactly_when_one_is_there(
    tree: Tree,
) -> None:
    """The property behind the check: no object with a key twice gets through, wherever it
    is; the first one (as a parser meets it) is the one named; and nothing else is called
    a repeated key."""
    for body in (written(tree), '{"Response":' + written(tree) + "}"):
        result = outcome(body.encode())
        path = first_repeat(tree)
        if body.startswith('{"Response":'):
            path = None if path is None else ("Response", *path)
        if path is None:
            repeated = isinstance(result, BadAnswer) and "appear once" in result.rule
            assert not repeated
        else:
            assert isinstance(result, BadAnswer)
            assert result.rule.startswith("must appear once in its object")
            assert result.field == shown(path)


@given(
    st.sampled_from([*COUNT_NAMES, "RequestId"]),
    st.integers(0, MAX_COUNT) | st.text(min_size=1, max_size=5),
    st.booleans(),
)
def test_given_a_valid_answer_with_one_key_written_again_when_read_then_always_refused(
    name: str, again: Any, before: bool
) -> None:
    """Whatever the second value, and whether it comes before or after the first: a valid
    answer made ambiguous is never read as either of its values."""
    counts = {"FeeCount": 1, "RequestCount": 2, "RequestSuccessCount": 1}
    stats = ",".join(f'"{k}":{v}' for k, v in counts.items())
    extra = f"{json.dumps(name)}:{json.dumps(again)}"
    if name == "RequestId":
        inner = f'"SendStatusStatistics":{{{stats}}},"RequestId":"r"'
        inner = f"{extra},{inner}" if before else f"{inner},{extra}"
        field = "Response.RequestId"
    else:
        stats = f"{extra},{stats}" if before else f"{stats},{extra}"
        inner = f'"SendStatusStatistics":{{{stats}}},"RequestId":"r"'
        field = f"Response.SendStatusStatistics.{name}"
    body = ('{"Response":{' + inner + "}}").encode()

    assert refused(body).field == field


def outcome_of(action: str, body: bytes) -> Any:
    try:
        return read(action, body)
    except BadAnswer as exc:
        return exc


def refused_as(action: str, body: bytes) -> BadAnswer:
    with pytest.raises(BadAnswer) as caught:
        read(action, body)
    return caught.value
