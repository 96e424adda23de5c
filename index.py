"""SCF entry point (handler `index.main_handler`); everything lives in the `sms_stats` package."""

from sms_stats.handler import main_handler

__all__ = ["main_handler"]
