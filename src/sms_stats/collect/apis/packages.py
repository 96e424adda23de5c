"""SmsPackagesStatistics: the packages (套餐包) that hold an account's messages, as a balance.

The API selects packages by their creation time, pages them (`Limit` at most 500, `Offset`),
and wants an `EndTime` after `BeginTime` and not in the future. Packages stay valid for up to
two years, so a balance looks back 25 months. Paging is checked: each page after the first
starts at the last package of the page before, which must come back first, so a page that
repeats, skips or shifts is seen (the API gives no total to check against) and fails the fetch:
a wrong balance is worse than none.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from sms_stats.collect.answers import ANSWERS, Answer, BadAnswer, Count, Strict
from sms_stats.core.log import logger
from sms_stats.core.records import BalanceRecord, Package
from sms_stats.core.windows import Window, format_hour, zone

if TYPE_CHECKING:
    from sms_stats.collect.client import StatsClient

PAGE = 500  # the API's largest Limit
LOOK_BACK = timedelta(days=25 * 31)  # at least 25 months
MAX_PAGES = 200  # 100,000 packages: far beyond any account; a loop that never ends is a bug


PackageTime = Annotated[int, Field(gt=0, le=253402214400)]
"""Unix seconds after 0 and up to 9999-12-31 00:00 UTC: a time `datetime` can still show in
every zone (a second later, +08:00 is past the year 9999 and the record could not be written).
0 is no time but a field the API left unset: a package "expiring" in 1970 counted 0 left."""


class PackageStatistics(Strict):
    PackageId: Count
    PackageType: Literal[0, 1]  # 0 gift, 1 bought
    PackageAmount: Count
    CurrentUsage: Count
    PackageCreateTime: PackageTime
    PackageEffectiveTime: PackageTime
    PackageExpiredTime: PackageTime


class SmsPackagesStatisticsAnswer(Answer):
    SmsPackagesStatisticsSet: list[PackageStatistics]

    @model_validator(mode="after")
    def _each_expires_after_it_takes_effect(self) -> SmsPackagesStatisticsAnswer:
        """A package that expires when (or before) it takes effect never holds a message: no
        such package is sold, so the answer is wrong, and a balance built on it would be.

        One loop per answer rather than a validator per package (a page holds 500, and each
        validator call cost more than the check). `BadAnswer` is no ValueError, so pydantic
        lets it through as raised, naming the package's field and the answer's RequestId.
        """
        for index, item in enumerate(self.SmsPackagesStatisticsSet):
            if item.PackageExpiredTime <= item.PackageEffectiveTime:
                raise BadAnswer(
                    "SmsPackagesStatistics",
                    f"Response.SmsPackagesStatisticsSet.{index}.PackageExpiredTime",
                    "must be after PackageEffectiveTime (a package expiring before it takes "
                    "effect holds no message)",
                    f"{item.PackageExpiredTime}, PackageEffectiveTime "
                    f"{item.PackageEffectiveTime}, PackageId {item.PackageId}",
                    self.RequestId,
                )
        return self


class PackagesApi:
    kind: Literal["packages"] = "packages"
    action = "SmsPackagesStatistics"
    max_hours: int | None = None

    def fetch(
        self,
        client: StatsClient,
        app_id: str,
        window: Window,
        zone_name: str,
        now: datetime,
        deadline: float | None = None,
    ) -> BalanceRecord:
        """A snapshot at `now` (in the store's zone); `window` only names the call in logs."""
        tz = zone(zone_name)
        as_of = now.astimezone(tz)
        end = as_of.replace(minute=0, second=0, microsecond=0)  # not in the future
        begin = (end.astimezone(timezone.utc) - LOOK_BACK).astimezone(tz)
        found: dict[int, Package] = {}
        first_request_id = ""
        offset = 0
        last: int | None = None  # the last package of the page before
        for page in range(1, MAX_PAGES + 1):
            params = {
                "SmsSdkAppId": app_id,
                "BeginTime": format_hour(begin),
                "EndTime": format_hour(end),
                "Limit": PAGE,
                "Offset": offset,
            }
            label = f"{format_hour(begin)}-{format_hour(end)} page {page}"
            answer = client.call(self.action, params, app_id, label, deadline)
            assert isinstance(answer, SmsPackagesStatisticsAnswer)
            first_request_id = first_request_id or answer.RequestId
            items = answer.SmsPackagesStatisticsSet
            if len(items) > PAGE:
                raise _paging(f"must hold at most Limit={PAGE} packages", f"{len(items)}", answer)
            if last is not None:
                # Each page after the first starts at the last package of the page before: a
                # page that repeats, skips or shifts comes back with another one there.
                if not items or items[0].PackageId != last:
                    got = items[0].PackageId if items else "an empty page"
                    raise _paging(
                        f"page {page} (Offset {offset}) must start with PackageId {last}, the "
                        "last of the page before (paging is unreliable: no balance is better "
                        "than a wrong one)",
                        f"PackageId {got}",
                        answer,
                    )
                items = items[1:]
            for item in items:
                if item.PackageId in found:
                    raise _paging(
                        f"page {page} repeats a package of an earlier page",
                        f"PackageId {item.PackageId}",
                        answer,
                    )
                found[item.PackageId] = _package(item, app_id, answer.RequestId)
            if len(answer.SmsPackagesStatisticsSet) < PAGE:
                break
            offset += PAGE - 1
            last = answer.SmsPackagesStatisticsSet[-1].PackageId
        else:
            raise BadAnswer(
                self.action,
                "Response.SmsPackagesStatisticsSet",
                f"paging did not end after {MAX_PAGES} pages",
                f"{len(found)} packages",
                first_request_id,
            )
        packages = tuple(sorted(found.values(), key=lambda p: (p.created_at, p.package_id)))
        return BalanceRecord(app_id, as_of, packages, first_request_id, now)


def _paging(rule: str, value: str, answer: SmsPackagesStatisticsAnswer) -> BadAnswer:
    return BadAnswer(
        "SmsPackagesStatistics", "Response.SmsPackagesStatisticsSet", rule, value, answer.RequestId
    )


def _package(item: object, app_id: str, request_id: str) -> Package:
    assert isinstance(item, PackageStatistics)
    if item.CurrentUsage > item.PackageAmount:
        logger.warning(
            "upstream.odd_answer",
            action="SmsPackagesStatistics",
            app_id=app_id,
            rule="CurrentUsage is above PackageAmount; the package counts 0 left",
            package_id=item.PackageId,
            amount=item.PackageAmount,
            used=item.CurrentUsage,
            upstream_request_id=request_id,
        )
    return Package(
        package_id=item.PackageId,
        bought=item.PackageType == 1,
        amount=item.PackageAmount,
        used=item.CurrentUsage,
        created_at=_utc(item.PackageCreateTime),
        effective_at=_utc(item.PackageEffectiveTime),
        expires_at=_utc(item.PackageExpiredTime),
    )


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


API = PackagesApi()

ANSWERS[API.action] = SmsPackagesStatisticsAnswer
