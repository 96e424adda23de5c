"""CallbackStatusStatistics: the delivery receipts, and why the failed ones failed.

Receipts come back after the send, so an hour's counts keep settling for a while: what is still
missing is `pending_count` (accepted submissions without a receipt). The API allows at most 32
days per call.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from sms_stats.collect.answers import ANSWERS, Answer, Count, Strict
from sms_stats.collect.client import window_params
from sms_stats.core.log import logger
from sms_stats.core.records import CallbackRecord, Receipts
from sms_stats.core.windows import Window

if TYPE_CHECKING:
    from sms_stats.collect.client import StatsClient


class CallbackStatusCounts(Strict):
    """Receipts: how many came back, how many said delivered, and why the rest failed."""

    CallbackCount: Count
    RequestSuccessCount: Count
    CallbackFailCount: Count
    CallbackSuccessCount: Count
    InternalErrorCount: Count
    InvalidNumberCount: Count
    ShutdownErrorCount: Count
    BlackListCount: Count
    FrequencyLimitCount: Count

    @model_validator(mode="after")
    def _parts_within_the_whole(self) -> CallbackStatusCounts:
        # Receipts above submissions can happen (a receipt counted in another hour than its
        # send): kept, and said in the log by the record. A receipt that is neither a success
        # nor a failure cannot.
        if self.CallbackSuccessCount + self.CallbackFailCount > self.CallbackCount:
            raise PydanticCustomError(
                "receipts_above_total",
                "CallbackSuccessCount + CallbackFailCount must not exceed CallbackCount",
            )
        # The reasons break the failures down, so together they cannot be more. They may be
        # less: a failure for a reason the API does not break out is counted in
        # CallbackFailCount alone, so equality is not asked.
        reasons = (
            self.InternalErrorCount
            + self.InvalidNumberCount
            + self.ShutdownErrorCount
            + self.BlackListCount
            + self.FrequencyLimitCount
        )
        if reasons > self.CallbackFailCount:
            raise PydanticCustomError(
                "reasons_above_failures",
                "the failure reasons (InternalErrorCount + InvalidNumberCount + "
                "ShutdownErrorCount + BlackListCount + FrequencyLimitCount = {reasons}) must "
                "not exceed CallbackFailCount ({failures}): they break the failures down",
                {"reasons": reasons, "failures": self.CallbackFailCount},
            )
        return self


class CallbackStatusStatisticsAnswer(Answer):
    CallbackStatusStatistics: CallbackStatusCounts


class CallbackApi:
    kind: Literal["callback"] = "callback"
    action = "CallbackStatusStatistics"
    max_hours: int | None = 32 * 24

    def fetch(
        self,
        client: StatsClient,
        app_id: str,
        window: Window,
        zone_name: str,
        now: datetime,
        deadline: float | None = None,
    ) -> CallbackRecord:
        params = window_params(app_id, window)
        answer = client.call(self.action, params, app_id, str(window), deadline)
        assert isinstance(answer, CallbackStatusStatisticsAnswer)
        stats = answer.CallbackStatusStatistics
        receipts = Receipts(
            request_success_count=stats.RequestSuccessCount,
            callback_count=stats.CallbackCount,
            callback_success_count=stats.CallbackSuccessCount,
            callback_fail_count=stats.CallbackFailCount,
            internal_error_count=stats.InternalErrorCount,
            invalid_number_count=stats.InvalidNumberCount,
            shutdown_error_count=stats.ShutdownErrorCount,
            black_list_count=stats.BlackListCount,
            frequency_limit_count=stats.FrequencyLimitCount,
            request_id=answer.RequestId,
        )
        if stats.CallbackCount > stats.RequestSuccessCount:
            # Possible when a receipt is counted in another hour than its send: kept as
            # answered (pending 0), and said, since it skews this hour's delivery rate.
            logger.warning(
                "upstream.odd_answer",
                action=self.action,
                app_id=app_id,
                window=str(window),
                rule="CallbackCount is above RequestSuccessCount; pending_count is 0",
                callback_count=stats.CallbackCount,
                request_success_count=stats.RequestSuccessCount,
                upstream_request_id=answer.RequestId,
            )
        return CallbackRecord(app_id, window, zone_name, receipts, now)


API = CallbackApi()

ANSWERS[API.action] = CallbackStatusStatisticsAnswer
