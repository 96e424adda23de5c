"""Command line for the emulator, for running it beside a process under test.

It announces readiness twice: a JSON line on stdout for callers that read pipes, and an
atomically renamed port file for callers (shell scripts, other test runners) that can only poll
the file system. Both appear only once the socket is listening.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .server import DEFAULT_CREDENTIALS, Emulator, Fault


def _parse_fault(spec: str) -> tuple[str | None, Fault]:
    """``APPID:CODE``; APPID ``*`` means every app; CODE is an error code, an HTTP status
    (3 digits), ``html``, ``no-response`` or ``hang``, or one of the answers no real API gives:
    ``raw=BODY`` (BODY answered as-is, HTTP 200 JSON; bytes that are not UTF-8 pass through
    from the command line), ``field=NAME=JSON`` (that field of the answer written as the JSON
    text, e.g. ``RequestCount=1e400``; repeat the spec for more fields), ``drip=SECONDS`` (one
    byte of the answer every SECONDS), ``huge=BYTES`` (an answer padded to BYTES)."""
    app_id, sep, code = spec.partition(":")
    if not sep or not app_id or not code:
        raise argparse.ArgumentTypeError(f"expected APPID:CODE, got {spec!r}")
    target = None if app_id == "*" else app_id
    if code.isdigit():
        return target, Fault(http_status=int(code))
    kind, eq, value = code.partition("=")
    if eq:
        return target, _parse_answer_fault(spec, kind, value)
    special = {
        "html": Fault(html=True),
        "no-response": Fault(no_response_key=True),
        "hang": Fault(hang=True),
    }
    return target, special.get(code, Fault(error_code=code))


def _parse_answer_fault(spec: str, kind: str, value: str) -> Fault:
    try:
        if kind == "raw":
            # argv was decoded with surrogateescape: this gives back the bytes typed.
            return Fault(raw_body=value.encode("utf-8", "surrogateescape"))
        if kind == "field":
            name, eq, text = value.partition("=")
            if not eq or not name:
                raise ValueError("expected field=NAME=JSON")
            json.loads(text)
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
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None
    raise argparse.ArgumentTypeError(
        f"{spec!r}: unknown fault {kind!r}= (raw=, field=, drip=, huge=)"
    )


def _merged(faults: Sequence[tuple[str | None, Fault]]) -> dict[str | None, Fault]:
    """One fault per app; ``field=`` specs for the same app add up to one answer."""
    merged: dict[str | None, Fault] = {}
    for app_id, fault in faults:
        before = merged.get(app_id)
        if fault.fields and before is not None and before.fields:
            merged[app_id] = Fault(fields={**before.fields, **fault.fields})
        else:
            merged[app_id] = fault
    return merged


def _build_parser() -> argparse.ArgumentParser:
    default_id, default_key = next(iter(DEFAULT_CREDENTIALS.items()))
    parser = argparse.ArgumentParser(
        prog="sms-stats emulator",
        description="Local stand-in for Tencent Cloud SMS SendStatusStatistics (API 3.0).",
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
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s per key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per answer")
    parser.add_argument("--max-skew", type=int, default=300, help="allowed clock skew, seconds")
    parser.add_argument(
        "--fault-app",
        action="append",
        default=[],
        type=_parse_fault,
        metavar="APPID:CODE",
        help="inject a fault; APPID '*' = all; CODE: error code, HTTP status, html, "
        "no-response, hang, raw=BODY, field=NAME=JSON (e.g. field=RequestCount=1e400), "
        "drip=SECONDS or huge=BYTES (repeatable)",
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
    emulator = Emulator(
        credentials=credentials,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
        latency_s=args.latency,
        max_skew_s=args.max_skew,
        log_stream=None if args.quiet else sys.stderr,
    )
    for app_id, fault in _merged(args.fault_app).items():
        emulator.set_fault(fault, app_id)

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
