"""The statistics APIs, one module each; the pipeline knows only this registry.

Each API turns (app, window) into a record through the shared client (signing, retry,
deadline, its own 10-per-second budget). A fourth statistics API is one more module here and
one more line in `APIS`, and the pipeline, the stores and the sinks take its records as they
are.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from ..records import AnyRecord, Kind
from ..windows import Window
from . import callback, packages, send

if TYPE_CHECKING:
    from ..client import StatsClient


class StatisticsApi(Protocol):
    @property
    def kind(self) -> Kind: ...

    @property
    def action(self) -> str: ...

    @property
    def max_hours(self) -> int | None:
        """The longest window one call may cover (None: the API sets no limit)."""

    def fetch(
        self,
        client: StatsClient,
        app_id: str,
        window: Window,
        zone_name: str,
        now: datetime,
        deadline: float | None = None,
    ) -> AnyRecord: ...


APIS: dict[Kind, StatisticsApi] = {
    "send": send.API,
    "callback": callback.API,
    "packages": packages.API,
}
