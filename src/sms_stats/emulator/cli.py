"""Command line for the emulator, for running it beside a process under test.

It announces readiness twice: a JSON line on stdout for callers that read pipes, and an
atomically renamed port file for callers (shell scripts, other test runners) that can only poll
the file system. Both appear only once the socket is listening.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import FrameType

from sms_stats.emulator.counts import Surge, parse_hour
from sms_stats.emulator.server import ACTIONS, DEFAULT_CREDENTIALS, KINDS, Emulator, Fault

_FaultKey = str | None | tuple[str | None, str]


def _parse_fault(spec: str) -> tuple[str | None, Fault]:
    """``APPID[@ACTION]:CODE``; APPID ``*`` means every app; ACTION limits the fault to one
    action (its name, or send, callback, packages); CODE is an error code, an HTTP status
    (3 digits), ``html``, ``no-response`` or ``hang``, or one of the answers no real API gives:
    ``raw=BODY`` (BODY answered as-is, HTTP 200 JSON; bytes that are not UTF-8 pass through
    from the command line), ``field=NAME=JSON`` (that field of the answer written as the JSON
    text, e.g. ``RequestCount=1e400``; repeat the spec for more fields), ``repeat=NAME=JSON``
    (that field written a second time, after the answer's own), ``drip=SECONDS`` (one
    byte of the answer every SECONDS), ``huge=BYTES`` (an answer padded to BYTES), or bad
    data: ``overuse`` (a package used beyond its amount), ``overcount`` (more receipts than
    submissions), ``paging=repeat|skip|overlap``."""
    target_spec, sep, code = spec.partition(":")
    app_id, at, action = target_spec.partition("@")
    if not sep or not app_id or not code or (at and not action):
        raise argparse.ArgumentTypeError(f"expected APPID[@ACTION]:CODE, got {spec!r}")
    if at and action not in ACTIONS and action not in KINDS:
        names = ", ".join((*KINDS, *ACTIONS))
        raise argparse.ArgumentTypeError(f"{spec!r}: unknown action {action!r} ({names})")
    target = None if app_id == "*" else app_id
    fault = _parse_code(spec, code)
    if at:
        fault = replace(fault, action=KINDS.get(action, action))
    return target, fault


def _parse_code(spec: str, code: str) -> Fault:
    if code.isdigit():
        return Fault(http_status=int(code))
    kind, eq, value = code.partition("=")
    if eq:
        return _parse_answer_fault(spec, kind, value)
    special = {
        "html": Fault(html=True),
        "no-response": Fault(no_response_key=True),
        "hang": Fault(hang=True),
        "overuse": Fault(overuse=True),
        "overcount": Fault(overcount=True),
    }
    return special.get(code, Fault(error_code=code))


def _parse_answer_fault(spec: str, kind: str, value: str) -> Fault:
    try:
        if kind == "raw":
            # argv was decoded with surrogateescape: this gives back the bytes typed.
            return Fault(raw_body=value.encode("utf-8", "surrogateescape"))
        if kind in ("field", "repeat"):
            name, eq, text = value.partition("=")
            if not eq or not name:
                raise ValueError(f"expected {kind}=NAME=JSON")
            json.loads(text)
            if kind == "repeat":
                return Fault(repeated={name: text})
            return Fault(fields={name: text})
        if kind == "drip":
            seconds = float(value)
            if not seconds > 0:
                raise ValueError("drip needs seconds > 0")
            return Fault(drip_s=seconds)
        if kind == "huge":
            size = int(value)
            if size < 0:
                raise ValueError("huge needs a byte count >= 0")
            return Fault(huge_body=size)
        if kind == "paging":
            if value not in ("repeat", "skip", "overlap"):
                raise ValueError("paging needs repeat, skip or overlap")
            return Fault(paging=value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None
    raise argparse.ArgumentTypeError(
        f"{spec!r}: unknown fault {kind!r}= (raw=, field=, repeat=, drip=, huge=, paging=)"
    )


def _merged(faults: Sequence[tuple[str | None, Fault]]) -> dict[_FaultKey, Fault]:
    """One fault per app and action; ``field=`` and ``repeat=`` specs for the same app and
    action add up to one answer. Keyed by app id, or by (app id, action) for a fault limited
    to one action."""
    merged: dict[_FaultKey, Fault] = {}
    for app_id, fault in faults:
        key: _FaultKey = app_id if fault.action is None else (app_id, fault.action)
        before = merged.get(key)
        if _shapes(fault) and before is not None and _shapes(before):
            merged[key] = Fault(
                fields={**(before.fields or {}), **(fault.fields or {})} or None,
                repeated={**(before.repeated or {}), **(fault.repeated or {})} or None,
                action=fault.action,
            )
        else:
            merged[key] = fault
    return merged


def _shapes(fault: Fault) -> bool:
    """A fault made only of fields written or repeated in the answer (specs that add up)."""
    return bool(fault.fields or fault.repeated) and fault == Fault(
        fields=fault.fields, repeated=fault.repeated, action=fault.action
    )


def _parse_packages(spec: str) -> tuple[str, int]:
    """``APPID:N``: the app has N generated packages instead of the default handful."""
    app_id, sep, count = spec.partition(":")
    if not sep or not app_id or not (count.isascii() and count.isdigit()):
        raise argparse.ArgumentTypeError(f"expected APPID:N (N >= 0), got {spec!r}")
    return app_id, int(count)


def _parse_surge(spec: str) -> Surge:
    """``APP:BEGIN:HOURS:FACTOR``: APP sends FACTOR times its usual figures for HOURS hours
    from BEGIN (``yyyymmddhh``, Beijing). Refused here, before anything listens, so a typo
    reads as a usage error and not as a surge that never shows."""
    parts = spec.split(":")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(
            f"expected APP:BEGIN:HOURS:FACTOR (e.g. 1400009000:2024010809:2:20), got {spec!r}"
        )
    app_id, begin, hours, factor = parts
    try:
        if not re.fullmatch(r"1400[0-9]{6}", app_id):
            raise ValueError(f"APP must be an app id 1400xxxxxx, got {app_id!r}")
        try:
            parse_hour(begin)
        except ValueError:
            raise ValueError(f"BEGIN must be a real hour yyyymmddhh, got {begin!r}") from None
        if not (hours.isascii() and hours.isdigit() and int(hours) >= 1):
            raise ValueError(f"HOURS must be an integer >= 1, got {hours!r}")
        try:
            number = float(factor)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"FACTOR must be a finite number >= 0, got {factor!r}")
        return Surge(app_id, begin, int(hours), number)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None


def _parse_now(text: str) -> datetime:
    """An ISO-8601 instant; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2024-06-01T12:30:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _build_parser() -> argparse.ArgumentParser:
    default_id, default_key = next(iter(DEFAULT_CREDENTIALS.items()))
    parser = argparse.ArgumentParser(
        prog="sms-stats emulator",
        description=(
            "Local stand-in for Tencent Cloud SMS statistics (API 3.0, 2021-01-11): "
            "SendStatusStatistics, CallbackStatusStatistics (delivery receipts, settling over "
            "6 hours) and SmsPackagesStatistics (packages, Limit 1..500 with Offset paging)."
        ),
        epilog=(
            "It accepts the TC3 signatures of the key pairs given with --secret-id/--secret-key, "
            "plus TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY when both are set; with none of "
            f"those, the pair SecretId {default_id} / SecretKey {default_key}. Point the function "
            "at it with SMS_STATS_ENDPOINT=http://127.0.0.1:PORT and those credentials."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--secret-id", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--secret-key", action="append", default=[], help="repeatable, paired by position"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="requests/s per action, region and SecretId (the real API: 10)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per answer")
    parser.add_argument("--max-skew", type=int, default=300, help="allowed clock skew, seconds")
    parser.add_argument(
        "--fault-app",
        action="append",
        default=[],
        type=_parse_fault,
        metavar="APPID[@ACTION]:CODE",
        help="inject a fault; APPID '*' = all; @ACTION limits it to one action (send, "
        "callback, packages, or the action's name), e.g. "
        "'*@callback:UnauthorizedOperation.RequestPermissionDeny'; CODE: error code, HTTP "
        "status, html, no-response, hang, raw=BODY, field=NAME=JSON (e.g. "
        "field=RequestCount=1e400), repeat=NAME=JSON (the field named a second time), "
        "drip=SECONDS, huge=BYTES, overuse (a package used beyond "
        "its amount), overcount (more receipts than submissions), paging=repeat|skip|overlap "
        "(repeatable)",
    )
    parser.add_argument(
        "--packages",
        action="append",
        default=[],
        type=_parse_packages,
        metavar="APPID:N",
        help="give APPID N generated packages (created over the last 2 years) instead of the "
        "default six (repeatable)",
    )
    parser.add_argument(
        "--surge",
        action="append",
        default=[],
        type=_parse_surge,
        metavar="APP:BEGIN:HOURS:FACTOR",
        help="APP sends FACTOR times its usual figures (requests, successes, billed parts; "
        "receipts follow) for HOURS hours from BEGIN (yyyymmddhh, Beijing), e.g. "
        "1400009000:2024010809:2:20; overlapping surges multiply (repeatable). Apps "
        "1400009000-1400009099 send with an office rhythm (weekday peaks, quiet nights, "
        "weekends at a third)",
    )
    parser.add_argument(
        "--now",
        type=_parse_now,
        default=None,
        metavar="ISO8601",
        help="pin the clock that receipts' settling, the packages and 'EndTime in the future' "
        "are judged by (e.g. 2024-06-01T12:30:00Z); default: the real time",
    )
    parser.add_argument(
        "--settle-hours",
        type=float,
        default=6.0,
        metavar="HOURS",
        help="hours over which an hour's receipts arrive, from 80%% at its end to all of them "
        "(default 6; 0: all at once, a steady account whose stored hours never change)",
    )
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--quiet", action="store_true", help="no JSON request log on stderr")
    return parser


def _credentials(
    parser: argparse.ArgumentParser, ids: Sequence[str], keys: Sequence[str]
) -> dict[str, str]:
    if len(ids) != len(keys):
        parser.error("--secret-id and --secret-key must be given the same number of times")
    credentials = dict(zip(ids, keys, strict=True))
    env_id = os.environ.get("TENCENTCLOUD_SECRETID")
    env_key = os.environ.get("TENCENTCLOUD_SECRETKEY")
    if env_id and env_key:
        credentials.setdefault(env_id, env_key)
    return credentials or dict(DEFAULT_CREDENTIALS)


def _write_port_file(path: str, port: int) -> None:
    """Rename into place so a poller never reads a half-written number."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    credentials = _credentials(parser, args.secret_id, args.secret_key)
    if not 0 <= args.settle_hours <= 24 * 366:
        parser.error(f"--settle-hours must be 0 to 8784; got {args.settle_hours:g}")
    emulator = Emulator(
        credentials=credentials,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
        latency_s=args.latency,
        max_skew_s=args.max_skew,
        log_stream=None if args.quiet else sys.stderr,
        settle_after=timedelta(hours=args.settle_hours),
        packages=dict(args.packages),
        **({} if args.now is None else {"clock": lambda: args.now}),
    )
    for key, fault in _merged(args.fault_app).items():
        emulator.set_fault(fault, key[0] if isinstance(key, tuple) else key)
    for surge in args.surge:
        emulator.add_surge(surge.app_id, surge.begin, surge.hours, surge.factor)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            emulator.start()
        except OSError as exc:
            print(
                f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                "(another emulator still running? --port 0 picks a free port)",
                file=sys.stderr,
            )
            return 1
        try:
            if args.port_file:
                _write_port_file(args.port_file, emulator.port)
            event = {
                "event": "listening",
                "endpoint": emulator.endpoint,
                "port": emulator.port,
                "secret_ids": sorted(credentials),
            }
            print(json.dumps(event), flush=True)
            # The stand-in's own keys are not secrets, and without them nothing signs in; a
            # key taken from the environment may be a real one, and is never printed.
            env_id = os.environ.get("TENCENTCLOUD_SECRETID")
            pairs = "".join(
                f"  TENCENTCLOUD_SECRETID={key_id} TENCENTCLOUD_SECRETKEY="
                + ("<the one in your environment>" if key_id == env_id else key)
                + "\n"
                for key_id, key in credentials.items()
            )
            print(
                f"SMS API stand-in on {emulator.endpoint}; sign with one of:\n{pairs}"
                f"  SMS_STATS_ENDPOINT={emulator.endpoint}",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(1.0):
                pass
        finally:
            emulator.stop()
            if args.port_file:
                # A stale file would point the next poller at a dead port.
                with contextlib.suppress(OSError):
                    os.remove(args.port_file)
        print(json.dumps({"event": "stopped"}), flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
