"""Jobs: which apps and windows a request or a timer asks for, and the limits on them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sms_stats.core.errors import InputError
from sms_stats.core.settings import load_settings
from sms_stats.core.windows import zone
from sms_stats.events.direct import JobRequest
from sms_stats.events.jobs import check_app_ids, from_job_request, window_between
from sms_stats.run import backfill

from .conftest import APP_A, APP_B

SHANGHAI = zone("Asia/Shanghai")
NOW = datetime(2021, 5, 10, tzinfo=timezone.utc)


class TestJobLimits:
    def test_given_exactly_max_app_ids_when_checked_then_accepted(self) -> None:
        settings = load_settings({"SMS_STATS_MAX_APP_IDS": "3"})
        apps = ["1400000001", "1400000002", "1400000003"]
        assert check_app_ids(apps, "app_id", settings) == tuple(apps)
        with pytest.raises(InputError, match="at most 3"):
            check_app_ids([*apps, "1400000004"], "app_id", settings)

    def test_given_repeated_app_id_when_checked_then_kept_once(self) -> None:
        assert check_app_ids([APP_A, APP_B, APP_A], "app_id", load_settings({})) == (APP_A, APP_B)

    def test_given_app_id_with_an_extra_digit_when_checked_then_refused(self) -> None:
        with pytest.raises(InputError, match="SmsSdkAppId"):
            check_app_ids([APP_A + "0"], "app_id", load_settings({}))

    def test_given_span_of_exactly_max_hours_when_checked_then_accepted(self) -> None:
        settings = load_settings({"SMS_STATS_MAX_SPAN_HOURS": "24"})
        window = window_between("2021050100", "2021050123", settings, NOW)
        assert window.hours == 24
        with pytest.raises(InputError) as caught:
            window_between("2021050100", "2021050200", settings, NOW)
        assert caught.value.code == "InvalidParameterValue.EndTimeVerifyFail"

    def test_given_range_ending_in_the_current_hour_when_checked_then_accepted(self) -> None:
        """Only a window wholly in the future is refused: today so far is a fair question."""
        now = datetime(2021, 5, 1, 5, 30, tzinfo=timezone.utc)  # 13:30 in Beijing
        window = window_between("2021050100", "2021050113", load_settings({}), now)
        assert (window.begin_time, window.end_time) == ("2021050100", "2021050113")

    def test_given_day_lookback_over_max_span_when_job_built_then_refused(self) -> None:
        settings = load_settings({"SMS_STATS_MAX_SPAN_HOURS": "48", "SMS_STATS_APP_IDS": APP_A})
        with pytest.raises(InputError, match="lookback"):
            from_job_request(JobRequest(window="day", lookback=3), settings, NOW)

    def test_given_lookback_of_exactly_max_span_when_job_built_then_accepted(self) -> None:
        settings = load_settings({"SMS_STATS_MAX_SPAN_HOURS": "48", "SMS_STATS_APP_IDS": APP_A})
        day_job = from_job_request(JobRequest(window="day", lookback=2), settings, NOW)
        assert len(day_job.windows) == 2
        hour_job = from_job_request(JobRequest(window="hour", lookback=48), settings, NOW)
        assert len(hour_job.windows) == 48

    def test_given_backfill_of_more_apps_than_a_request_may_name_when_planned_then_accepted(
        self, scf_env: dict[str, str]
    ) -> None:
        """SMS_STATS_MAX_APP_IDS bounds one request; a backfill has its own bound (1000)."""
        settings = load_settings()
        apps = [str(1400100000 + i) for i in range(settings.max_app_ids + 5)]
        plan = backfill.plan(apps, "2021050100", "2021050100", "hour", settings, [], NOW)
        assert len(plan.job.app_ids) == settings.max_app_ids + 5
