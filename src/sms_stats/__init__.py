"""sms-stats: Tencent Cloud SMS delivery statistics (SendStatusStatistics) from an SCF function.

Two settings here serve the cold start, which SCF bills and users wait for; `handler` undoes
the second when the import is over (`imported`).
"""

import gc as _gc
import os as _os

__version__ = "0.1.0"

# pydantic scans the metadata of every installed distribution for plugins when it builds its
# first model (1-2 ms, more on a slow disk); the function uses none. An explicit setting wins,
# so `PYDANTIC_DISABLE_PLUGINS=` (empty) brings plugins back.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Importing creates tens of thousands of objects that live as long as the process, and no
# garbage: collections during the import only walk them again and again.
_THRESHOLDS = _gc.get_threshold()
_gc.set_threshold(max(_THRESHOLDS[0], 50_000), *_THRESHOLDS[1:])


def imported() -> None:
    """The import is over: move what it built out of the collector's sight (`gc.freeze`, as
    CPython's docs suggest for long-lived processes) and collect at the usual pace again."""
    _gc.freeze()
    _gc.set_threshold(*_THRESHOLDS)
