"""Deterministic SMS packages (套餐包) for the emulator's SmsPackagesStatistics.

Each package is a dict with exactly the seven fields of the 2021-01-11 SDK model
``SmsPackagesStatistics``, in its order; times are Unix seconds. The default set is a function of
``(app_id, today)`` so a test that pins the clock can predict it, and it holds every case a
balance must get right: bought and gift packages, one expired with messages left (they are
lost), one used up, one bought but not yet in effect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sms_stats.emulator.counts import API_ZONE, aware, hour_start

FIELDS = (
    "PackageCreateTime",
    "PackageEffectiveTime",
    "PackageExpiredTime",
    "PackageAmount",
    "PackageType",
    "PackageId",
    "CurrentUsage",
)
GIFT, BOUGHT = 0, 1

MAX_LIMIT = 500
"""``Limit`` is 1..500 ("Limit默认最大值为500"); more packages need Offset paging."""

_DAY = 86_400
_TWO_YEARS = 730 * _DAY

# (days before today it was created, days from creation to effect, days valid, type, amount,
#  used in per mille of the amount or None for "all of it")
_DEFAULT_SHAPE: tuple[tuple[int, int, int, int, int, int | None], ...] = (
    (700, 0, 730, BOUGHT, 100_000, 612),  # in effect, expires in 30 days: the next expiry
    (400, 0, 365, GIFT, 1_000, 400),  # expired 35 days ago with 600 left: lost
    (200, 0, 730, BOUGHT, 50_000, None),  # used up
    (60, 0, 365, GIFT, 500, 240),  # in effect
    (30, 0, 730, BOUGHT, 200_000, 7),  # in effect, barely used
    (2, 12, 730, BOUGHT, 10_000, 0),  # bought 2 days ago, in effect only in 10 days
)


def anchor(now: datetime) -> int:
    """Today's start in Beijing time (Unix seconds): the default packages move once a day,
    not with every tick of the clock, so paging through them never sees them shift."""
    local = aware(now).astimezone(API_ZONE)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def _seed(app_id: str, salt: str) -> bytes:
    return hashlib.sha256(f"packages:{salt}:{app_id}".encode()).digest()


def default_packages(app_id: str, now: datetime) -> list[dict[str, int]]:
    """The handful of packages an app has unless told otherwise, in the API's order."""
    today = anchor(now)
    digest = _seed(app_id, "default")
    first_id = 1_000_000_000 + int.from_bytes(digest[0:3], "big") * 10
    packages = []
    for index, (before, delay, valid, kind, amount, per_mille) in enumerate(_DEFAULT_SHAPE):
        created = today - before * _DAY + 3600 * (9 + index)  # during office hours
        effective = created + delay * _DAY
        jitter = digest[4 + index] % 50  # per mille, so apps differ
        used = amount if per_mille is None else amount * min(per_mille + jitter, 1000) // 1000
        if per_mille == 0:
            used = 0
        packages.append(
            _package(created, effective, effective + valid * _DAY, amount, kind, first_id + index)
            | {"CurrentUsage": used}
        )
    return ordered(packages)


def generated_packages(app_id: str, count: int, now: datetime) -> list[dict[str, int]]:
    """``count`` packages created over the two years before today, for paging tests.

    Packages come in pairs created in the same second, with ids not in creation order, so a
    client that pages on anything but the API's own order (creation time, then id) shows it.
    """
    if count < 0:
        raise ValueError("a package count must be >= 0")
    today = anchor(now)
    step = max(_TWO_YEARS // max(count, 1), 2) * 2
    packages = []
    for index in range(count):
        digest = _seed(app_id, str(index))
        created = today - _TWO_YEARS + (index // 2) * step
        kind = BOUGHT if digest[0] % 3 else GIFT
        amount = (1 + digest[1] % 100) * (1000 if kind == BOUGHT else 100)
        valid = (365 if kind == GIFT else 730) * _DAY
        used = amount * (digest[2] % 101) // 100
        package_id = 1_000_000_000 + (index * 7919) % 1_000_003  # unique below 1,000,003
        packages.append(
            _package(created, created, created + valid, amount, kind, package_id)
            | {"CurrentUsage": used}
        )
    return ordered(packages)


def checked(packages: Sequence[Mapping[str, int]]) -> list[dict[str, int]]:
    """An explicit list, validated: exactly the seven fields, each an int (not a bool)."""
    result = []
    for index, package in enumerate(packages):
        if set(package) != set(FIELDS):
            missing = sorted(set(FIELDS) - set(package))
            extra = sorted(set(package) - set(FIELDS))
            raise ValueError(f"package {index}: missing {missing}, unknown {extra}")
        for name in FIELDS:
            if type(package[name]) is not int:
                raise ValueError(f"package {index}: {name} must be an int")
        result.append({name: package[name] for name in FIELDS})
    return ordered(result)


def ordered(packages: Sequence[Mapping[str, int]]) -> list[dict[str, int]]:
    """The API's stable order: creation time, then id."""
    return sorted(
        ({name: package[name] for name in FIELDS} for package in packages),
        key=lambda package: (package["PackageCreateTime"], package["PackageId"]),
    )


def created_between(
    packages: Sequence[Mapping[str, int]], begin: str, end: str
) -> list[dict[str, int]]:
    """Packages created from the start of hour ``begin`` to the end of hour ``end``.

    Both hours are included, as in the other two statistics actions: a package bought in the
    current hour is in a query that ends with the current hour.
    """
    first = int(hour_start(begin).timestamp())
    after_last = int((hour_start(end) + timedelta(hours=1)).timestamp())
    return [dict(p) for p in packages if first <= p["PackageCreateTime"] < after_last]


def remaining(packages: Sequence[Mapping[str, int]], now: datetime) -> int:
    """What is left to send: packages in effect and not expired, amount less usage."""
    moment = int(aware(now).timestamp())
    return sum(
        max(p["PackageAmount"] - p["CurrentUsage"], 0)
        for p in packages
        if p["PackageEffectiveTime"] <= moment < p["PackageExpiredTime"]
    )


def _package(
    created: int, effective: int, expired: int, amount: int, kind: int, package_id: int
) -> dict[str, int]:
    return {
        "PackageCreateTime": created,
        "PackageEffectiveTime": effective,
        "PackageExpiredTime": expired,
        "PackageAmount": amount,
        "PackageType": kind,
        "PackageId": package_id,
    }
