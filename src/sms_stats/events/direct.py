"""What a direct invocation, a timer's `Message` or an HTTP body asks for: the seed's request
(one app, `BeginTime`..`EndTime`) or a job (apps, hour or day windows, how many back).

Apart from `events` so that a timer run with an empty `Message`, the usual one, never creates
these classes; `events.parse_direct` validates a payload into one of them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator


class StatsRequest(BaseModel):
    """The seed API's request shape: one app, `BeginTime`..`EndTime` inclusive, Limit=Offset=0."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    SmsSdkAppId: StrictStr
    BeginTime: StrictStr
    EndTime: StrictStr
    Limit: StrictInt = 0
    Offset: StrictInt = 0

    @field_validator("Limit", "Offset")
    @classmethod
    def _zero(cls, value: int) -> int:
        if value != 0:
            raise ValueError("is fixed at 0 by the API")
        return value


class JobRequest(BaseModel):
    """A job: which apps (default: SMS_STATS_APP_IDS), hour or day windows, how many back."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    app_ids: tuple[StrictStr, ...] | None = None
    window: Literal["hour", "day"] = "hour"
    lookback: StrictInt = Field(default=1, ge=1, le=24 * 366)
    # Which statistics APIs (default SMS_STATS_COLLECT); a comma-separated string works too.
    kinds: tuple[Literal["send", "callback", "packages"], ...] | None = Field(
        default=None, min_length=1
    )

    @field_validator("app_ids", "kinds", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
