"""Local stand-in for Tencent Cloud's SMS statistics endpoint, API 2021-01-11: SendStatusStatistics,
CallbackStatusStatistics and SmsPackagesStatistics (standard library only).

Start it in-process (``Emulator().start()``) or as ``python -m sms_stats.emulator``; point the
official SDK at ``HttpProfile(protocol="http", endpoint="127.0.0.1:PORT")``.
"""

from sms_stats.emulator.cli import main
from sms_stats.emulator.server import (
    ACTION,
    ACTIONS,
    CALLBACK_ACTION,
    DEFAULT_CREDENTIALS,
    KINDS,
    PACKAGES_ACTION,
    SERVICE,
    UNAUTHORIZED_APP_ID,
    VERSION,
    Emulator,
    Fault,
)

__all__ = [
    "ACTION",
    "ACTIONS",
    "CALLBACK_ACTION",
    "DEFAULT_CREDENTIALS",
    "KINDS",
    "PACKAGES_ACTION",
    "SERVICE",
    "UNAUTHORIZED_APP_ID",
    "VERSION",
    "Emulator",
    "Fault",
    "main",
]
