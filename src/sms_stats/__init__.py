"""sms-stats: Tencent Cloud SMS delivery statistics (SendStatusStatistics) from an SCF function.

Two settings here serve the cold start, which SCF bills and users wait for; `handler` undoes
the second when the first invocation is over (`first_invocation_over`).
"""

import gc as _gc
import os as _os

__version__ = "0.1.0"

# pydantic scans the metadata of every installed distribution for plugins when it builds its
# first model (1-2 ms, more on a slow disk); the function uses none. An explicit setting wins,
# so `PYDANTIC_DISABLE_PLUGINS=` (empty) brings plugins back.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Importing creates tens of thousands of objects that live as long as the process, and no
# garbage: collections during the import only walk them again and again. The same holds for
# the first invocation, which imports the SDK and builds its client and sessions (26
# collections, ~6 ms of a cold timer run), so the pace stays slow until that is over.
_THRESHOLDS = _gc.get_threshold()
_gc.set_threshold(max(_THRESHOLDS[0], 50_000), *_THRESHOLDS[1:])
_cold = [True]  # emptied when the first invocation is over
_unfrozen = [True]  # emptied once what the first invocation loaded is frozen


def imported() -> None:
    """The import is over: move what it built out of the collector's sight (`gc.freeze`, as
    CPython's docs suggest for long-lived processes)."""
    _gc.freeze()


def first_invocation_over(*, failed: bool = False) -> None:
    """Collect at the usual pace again, and freeze what the first invocation loaded (the SDK,
    its client and sessions: they live as long as the container). Garbage it left in reference
    cycles is frozen with it: a few hundred objects after a run that succeeded. After one that
    raised, the exception and every frame its traceback holds are still alive here (they could
    hold a megabyte answer each), so the freeze waits for the next invocation that ends well,
    and collects first: that exception's traceback and the frame that raised it hold each other
    in a cycle, which only a collection frees. Calls after the freeze do nothing."""
    delayed = not _cold
    if _cold:
        _cold.clear()
        _gc.set_threshold(*_THRESHOLDS)
    if _unfrozen and not failed:
        _unfrozen.clear()
        if delayed:
            _gc.collect()  # once, on a warm invocation
        _gc.freeze()
