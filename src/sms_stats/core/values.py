"""The shapes of values that both the settings and the alert rules read: an app id, and a list
given as comma-separated text (the environment's form) or a TOML list. Kept below both, so the
rules' parser does not import the settings that call it."""

from __future__ import annotations

import re
from typing import Any

APP_ID_RE = re.compile(r"1400[0-9]{6}")


def split_list(value: Any) -> Any:
    """Comma-separated text or a TOML list -> a tuple of stripped items; anything else as is,
    for the model's own check to name."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(value)
    return value
