"""What a notice says in a chat (`chat.notices`): the rows a person reads, before any platform
lays them out. The bots' own tests (test_notices_bots.py) read them as posted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sms_stats.core.notices import Notice
from sms_stats.deliver.chat.messages import Row
from sms_stats.deliver.chat.notices import duration, figure, summary

from .conftest import APP_A, APP_B
from .notice_samples import APP_C, RULE, SINCE, alert_data, digest, firing, resolved

REPEAT = "alert_fire_1_2021050111_repeat_2021050113"  # a firing alert told again
LOCAL_HOUR = "2021-05-01 13:00\u201314:00 Asia/Shanghai (+08:00)"


class TestAlert:
    def test_given_first_firing_when_worded_then_value_threshold_and_since_in_one_row(
        self,
    ) -> None:
        worded = summary(firing())

        assert worded.title == f"SMS alert: {RULE}"
        assert worded.window == LOCAL_HOUR
        assert worded.rows == (
            Row(
                APP_A,
                (
                    "delivery rate 72.10%",
                    "threshold below 90.00%",
                    "since 2021-05-01 13:00",
                ),
            ),
        )

    def test_given_repeat_of_firing_alert_when_worded_then_it_says_still_firing(self) -> None:
        worded = summary(firing(REPEAT, since=SINCE))
        assert worded.rows[0].cells[-1] == "still firing since 2021-05-01 11:00"

    def test_given_for_hours_when_first_fired_then_not_still_firing(self) -> None:
        worded = summary(firing(since=SINCE))  # fired at 13:00 after bad hours since 11:00
        assert worded.rows[0].cells[-1] == "since 2021-05-01 11:00"

    def test_given_resolved_alert_when_worded_then_value_now_and_how_long_it_lasted(
        self,
    ) -> None:
        worded = summary(resolved())

        assert worded.title == f"SMS alert resolved: {RULE}"
        assert worded.rows[0] == Row(
            APP_A, ("delivery rate now 95.20%", "threshold below 90.00%", "lasted 2 h")
        )

    def test_given_times_in_utc_when_worded_then_shown_in_the_notices_zone(self) -> None:
        notice = firing(
            REPEAT,
            window_start="2021-05-01T05:00:00Z",
            window_end="2021-05-01T06:00:00+00:00",
            since="2021-05-01T03:00:00Z",
        )
        worded = summary(notice)
        assert worded.window == LOCAL_HOUR
        assert worded.rows[0].cells[-1] == "still firing since 2021-05-01 11:00"

    def test_given_another_zone_when_worded_then_local_times_of_that_zone(self) -> None:
        base = firing(REPEAT, since=SINCE)
        notice = Notice(base.id, base.type, base.timestamp, base.data, "Europe/Berlin")
        worded = summary(notice)
        assert worded.window == "2021-05-01 07:00\u201308:00 Europe/Berlin (+02:00)"
        assert worded.rows[0].cells[-1] == "still firing since 2021-05-01 05:00"

    @pytest.mark.parametrize(
        ("metric", "value", "threshold", "condition", "cells"),
        [
            ("success_rate", 0.5, 0.95, "below", ("success rate 50.00%", "threshold below 95.00%")),
            (
                "delivery_rate",
                None,
                0.9,
                "below",
                ("delivery rate \u2013", "threshold below 90.00%"),
            ),
            (
                "black_list_share",
                0.123,
                0.05,
                "above",
                ("blocklisted share 12.30%", "threshold above 5.00%"),
            ),
            (
                "request_count",
                12345,
                10000.0,
                "above",
                ("requests 12,345", "threshold above 10,000"),
            ),
            ("fee_count", 3, 10.5, "below", ("billed parts 3", "threshold below 10.50")),
            (
                "package_remaining",
                900,
                1000.0,
                "below",
                ("balance left 900", "threshold below 1,000"),
            ),
            (
                "package_runway_days",
                3.26,
                7.0,
                "below",
                ("balance runway 3.3 days", "threshold below 7.0 days"),
            ),
            (
                "package_expiry_days",
                2,
                14.0,
                "below",
                ("next expiry in 2.0 days", "threshold below 14.0 days"),
            ),
            ("some_new_metric", 2.5, 1.0, None, ("some new metric 2.50", "threshold 1")),
        ],
    )
    def test_given_each_metric_when_worded_then_value_and_threshold_in_its_unit(
        self,
        metric: str,
        value: Any,
        threshold: float,
        condition: str | None,
        cells: tuple[str, str],
    ) -> None:
        worded = summary(
            firing(metric=metric, value=value, threshold=threshold, condition=condition)
        )
        assert worded.rows[0].cells[:2] == cells

    def test_given_long_rule_name_with_newlines_when_worded_then_one_clipped_line(
        self,
    ) -> None:
        worded = summary(firing(alert="line one\nline two " + "x" * 500))
        assert "\n" not in worded.title
        assert worded.title.startswith("SMS alert: line one line two x")
        assert worded.title.endswith("\u2026")
        assert len(worded.title) == len("SMS alert: ") + 64

    @pytest.mark.parametrize(
        ("changes", "named"),
        [
            ({"since": "yesterday"}, "since"),
            ({"window_start": "2021-05-01T13:00:00"}, "window_start"),
            ({"window_end": None}, "window_end"),
        ],
    )
    def test_given_unreadable_times_when_worded_then_value_error_names_the_field(
        self, changes: dict[str, Any], named: str
    ) -> None:
        with pytest.raises(ValueError, match=named):
            summary(firing(**changes))

    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(hours=2), "2 h"),
            (timedelta(minutes=40), "40 min"),
            (timedelta(hours=1, minutes=30), "1 h 30 min"),
            (timedelta(days=3, hours=4), "3 d 4 h"),
            (timedelta(days=2), "2 d"),
            (timedelta(hours=-1), "0 min"),
        ],
    )
    def test_given_span_when_worded_then_short_duration(self, delta: timedelta, text: str) -> None:
        assert duration(delta) == text

    def test_given_boolean_value_when_worded_then_dash_not_a_number(self) -> None:
        assert figure("request_count", True) == "\u2013"


class TestDigest:
    def test_given_three_apps_when_worded_then_whole_local_day_a_row_each_and_total(
        self,
    ) -> None:
        worded = summary(digest())

        assert worded.title == "SMS daily digest"
        assert worded.window == "2021-05-01, whole day Asia/Shanghai (+08:00)"
        assert [row.app_id for row in worded.rows] == [APP_A, APP_B, APP_C]
        assert worded.rows[0].cells == (
            "requests 18,800",
            "success rate 99.73%",
            "billed parts 19,020",
            "receipts 18,700",
            "delivery rate 98.00%",
            "balance left 120,000",
            "alerts fired 2",
        )
        assert worded.rows[2].cells == (
            "requests 0",
            "success rate \u2013",
            "billed parts 0",
            "receipts 0",
            "delivery rate \u2013",
            "balance left \u2013",
            "alerts fired 0",
        )
        assert worded.total.cells == (
            "requests 19,800",
            "success rate 99.70%",  # of the sums, not a mean of the rates
            "billed parts 20,020",
            "receipts 19,680",
            "delivery rate 98.05%",
            "balance left 125,000 (2 of 3 apps known)",
            "alerts fired 2",
        )

    def test_given_a_late_digest_when_worded_then_the_title_says_so(self) -> None:
        notice = digest()
        late = Notice(notice.id, notice.type, notice.timestamp, {**notice.data, "late": True})
        assert summary(late).title == "SMS daily digest (sent late)"
        on_time = {**notice.data, "late": False}
        assert summary(notice._replace(data=on_time)).title == "SMS daily digest"

    def test_given_every_balance_known_when_worded_then_total_balance_plain(self) -> None:
        worded = summary(digest(apps=digest().data["apps"][:2]))
        assert worded.total.cells[5] == "balance left 125,000"

    def test_given_no_apps_when_worded_then_still_one_row_to_lay_out(self) -> None:
        worded = summary(digest(apps=[]))
        assert len(worded.rows) == 1
        assert worded.rows[0].cells == ("no apps to report",)

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            ({"date": "2021-13-01", "apps": []}, "date"),
            ({"date": "2021-05-01", "apps": "all"}, "apps"),
        ],
    )
    def test_given_malformed_digest_when_worded_then_value_error_says_what(
        self, data: dict[str, Any], named: str
    ) -> None:
        notice = digest()
        with pytest.raises(ValueError, match=named):
            summary(Notice(notice.id, notice.type, notice.timestamp, data))


def test_given_alert_data_helper_when_built_then_the_contracts_fields() -> None:
    """The samples carry exactly the contract's alert fields plus `condition`."""
    assert set(alert_data()) == {
        "alert",
        "metric",
        "app_id",
        "value",
        "threshold",
        "window_start",
        "window_end",
        "since",
        "condition",
    }
