"""SendStatusStatistics: submissions, accepted submissions and billed parts (the seed's API)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sms_stats.core.records import Record
from sms_stats.core.windows import Window

if TYPE_CHECKING:
    from sms_stats.collect.client import StatsClient


class SendApi:
    kind: Literal["send"] = "send"
    action = "SendStatusStatistics"
    max_hours: int | None = None  # the API sets no span limit of its own

    def fetch(
        self,
        client: StatsClient,
        app_id: str,
        window: Window,
        zone_name: str,
        now: datetime,
        deadline: float | None = None,
    ) -> Record:
        counts = client.fetch(app_id, window, deadline)
        return Record(app_id, window, zone_name, counts, now)


API = SendApi()
