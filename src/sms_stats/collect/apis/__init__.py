"""The statistics APIs, one module each; the pipeline knows only this registry.

Each API turns (app, window) into a record through the shared client (signing, retry,
deadline, its own 10-per-second budget). A fourth statistics API is one more module here and
one more line in `_MODULES`, and the pipeline, the stores and the sinks take its records as they
are.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sms_stats.core.records import AnyRecord, Kind
from sms_stats.core.windows import Window

if TYPE_CHECKING:
    from sms_stats.collect.client import StatsClient


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


_MODULES: dict[Kind, str] = {"send": "send", "callback": "callback", "packages": "packages"}
_loaded: dict[Kind, StatisticsApi] = {}


def api(kind: Kind) -> StatisticsApi:
    """The API of `kind`, its module imported on first use: a run that collects one kind
    does not pay for the others' (cold starts are billed)."""
    found = _loaded.get(kind)
    if found is None:
        module = importlib.import_module(f"{__name__}.{_MODULES[kind]}")
        found = _loaded[kind] = module.API
    return found
