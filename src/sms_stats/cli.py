"""`sms-stats`: run the handler locally, fetch one range, or start the local API stand-in."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sms_stats import first_invocation_over
from sms_stats.core.errors import ConfigError, InputError, SmsStatsError
from sms_stats.store.base import SinkError


def _fail(exc: Exception) -> None:
    """An error on stderr: several configuration problems one per line."""
    problems = getattr(exc, "problems", [])
    if isinstance(exc, SmsStatsError) and len(problems) > 1:
        print(f"error: {exc.code}: {len(problems)} problems:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)


def _sample_event(name: str) -> dict[str, Any]:
    """Built-in events, stamped with the current time so they fetch a recent hour."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "timer":
        return {"Type": "Timer", "TriggerName": "sms-stats-hourly", "Time": now, "Message": ""}
    from sms_stats.core.windows import format_hour, last_full  # noqa: PLC0415
    from sms_stats.handler import current_settings, utcnow  # noqa: PLC0415

    settings = current_settings()
    hour = format_hour(last_full(utcnow(), settings.zone)[0].start)
    app_ids = settings.app_ids or ("1400006874",)
    token = settings.api_tokens[0].get_secret_value() if settings.api_tokens else ""
    return {
        "httpMethod": "GET",
        "path": "/stats",
        "headers": {"authorization": f"Bearer {token}", "host": "localhost"},
        "queryString": {"app_id": list(app_ids), "begin": hour, "end": hour},
        "body": "",
    }


def _read_event(path: Path) -> Any:
    """An event file (a cron job's, say) that is missing or not JSON: a message, not a traceback."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            f"cannot read the event file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InputError(
            f"the event file {str(path)!r} is not JSON: {exc}", code="FailedOperation.JsonParseFail"
        ) from None


def _invoke(args: argparse.Namespace) -> int:
    from sms_stats.handler import main_handler  # noqa: PLC0415

    context = {"request_id": "cli", "function_name": "sms-stats", "time_limit_in_ms": 900_000}
    try:
        if args.event in ("timer", "http"):
            event: Any = _sample_event(args.event)
        else:
            event = _read_event(Path(args.event))
        answer = main_handler(event, context)
    except SmsStatsError as exc:
        _fail(exc)
        return 1
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    if isinstance(answer, dict) and isinstance(answer.get("statusCode"), int):
        return 0 if answer["statusCode"] < 400 else 1
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from sms_stats.core.context import Invocation  # noqa: PLC0415
    from sms_stats.core.windows import last_full  # noqa: PLC0415
    from sms_stats.events.jobs import Job, check_app_ids, collected, window_between  # noqa: PLC0415
    from sms_stats.handler import current_settings, utcnow  # noqa: PLC0415
    from sms_stats.run.pipeline import run_job  # noqa: PLC0415

    kinds = collected(args.kind or ["send"])
    try:
        settings = current_settings()
        app_ids = check_app_ids(args.app_id, "--app-id", settings)
        if kinds == ("packages",) and args.begin is None and args.end is None:
            # A balance is a snapshot of now: no range to give.
            window = last_full(utcnow(), settings.zone)[0]
        elif args.begin is None or args.end is None:
            missing = "--begin" if args.begin is None else "--end"
            raise InputError(
                f"{missing} is required (yyyymmddhh, both hours included); only a balance "
                "(--kind packages alone) takes no range",
                code="MissingParameter",
            )
        else:
            window = window_between(args.begin, args.end, settings, utcnow(), ("--begin", "--end"))
        job = Job(app_ids, (window,), kinds=kinds)
        result = run_job(job, settings, Invocation.begin(None), [])
    except SmsStatsError as exc:
        _fail(exc)
        return 1
    if args.json:
        print(json.dumps(result.summary()["records"], ensure_ascii=False, indent=2))
    elif result.records:
        print(table(r.to_dict() for r in result.records))
    for failure in result.failures:
        print(f"error: app {failure.app_id}: {failure.error}", file=sys.stderr)
    return 0 if result.ok else 1


def _backfill_settings(args: argparse.Namespace) -> tuple[Any, list[Any], list[str]]:
    from sms_stats.deliver.sinks import build_sinks  # noqa: PLC0415
    from sms_stats.handler import current_settings  # noqa: PLC0415

    settings = current_settings()
    if args.sink:
        settings = settings.model_copy(update={"sinks": tuple(args.sink)})
    sinks = build_sinks(settings)
    app_ids = args.app_id or list(settings.app_ids)
    return settings, sinks, app_ids


def _backfill(args: argparse.Namespace) -> int:
    from sms_stats.deliver.topics import record_sinks  # noqa: PLC0415
    from sms_stats.handler import utcnow  # noqa: PLC0415
    from sms_stats.run import backfill  # noqa: PLC0415

    try:
        settings, sinks, app_ids = _backfill_settings(args)
        if not sinks:
            raise SmsStatsError(
                "no sinks: set SMS_STATS_SINKS or pass --sink (e.g. --sink file:out)",
                code="MissingParameter",
            )
        sinks, chats = backfill.without_chat(sinks, args.notify)
        if chats and not record_sinks(sinks):
            raise SmsStatsError(
                "only chat bots among the sinks: a backfill needs a store or a webhook "
                "(--sink file:out), or --notify to post a summary per window to the bots",
                code="MissingParameter",
            )
        if not record_sinks(sinks):
            raise SmsStatsError(
                "no sink takes records: a backfill needs a store or a webhook (--sink file:out), "
                "or a chat bot whose URL says ?notify=records (bots get alerts and the daily "
                "digest by default)",
                code="MissingParameter",
            )
        settings.credentials()  # missing keys: a message now, not a traceback mid-run
        plan = backfill.plan(
            app_ids,
            args.begin,
            args.end,
            args.by,
            settings,
            sinks,
            utcnow(),
            force=args.force,
            kinds=args.kind or ["send"],
        )
    except (SmsStatsError, SinkError) as exc:
        _fail(exc)
        return 1
    for chat in chats:
        print(
            f"left out: {chat.name} (chat bots get a backfill only with --notify)", file=sys.stderr
        )
    windows = len({(kind, window) for kind, _, window in plan.job.tasks()})
    for chat in backfill.record_chats(sinks):
        least = timedelta(seconds=round(backfill.posting_time(windows, chat)))
        print(
            f"notify: {chat.name} gets {windows} summaries, paced to "
            f"{chat.pace.describe()} (at least {least})",
            file=sys.stderr,
        )
    store = plan.store.name if plan.store else "none (nothing can be skipped)"
    kinds = plan.job.kinds
    times_kinds = f" x {len(kinds)} kinds ({', '.join(kinds)})" if len(kinds) > 1 else ""
    print(
        f"backfill {len(plan.job.app_ids)} app(s) x {len(plan.job.windows)} {args.by} "
        f"window(s){times_kinds}: {plan.stored} already stored in {store}, {plan.todo} to fetch",
        file=sys.stderr,
    )
    for name, count in plan.owed.items():
        later = (
            " (left out of this backfill: it stays owed)" if name in {c.name for c in chats} else ""
        )
        print(f"owed from earlier runs: {count} record(s) to {name}{later}", file=sys.stderr)
    try:
        result = backfill.run(
            plan, settings, sinks, progress=backfill.Progress(plan.todo), left_out=chats
        )
    except KeyboardInterrupt:
        print(
            "interrupted: what was fetched is stored; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    failed_deliveries = len(result.failed_deliveries)
    print(
        f"done: {len(result.records)} fetched, {len(result.failures)} failed, "
        f"{len(result.deliveries) - failed_deliveries} delivered, {failed_deliveries} deliveries "
        f"failed, {len(result.left_for_next_run)} left",
        file=sys.stderr,
    )
    for failure in result.failures:
        print(f"error: app {failure.app_id} {failure.window}: {failure.error}", file=sys.stderr)
    for delivery in result.failed_deliveries:
        print(
            f"error: delivery {delivery.app_id} {delivery.window}: {delivery.error}",
            file=sys.stderr,
        )
    return 0 if result.ok else 1


def _gaps(args: argparse.Namespace) -> int:
    from sms_stats.deliver.topics import takes_records  # noqa: PLC0415
    from sms_stats.handler import utcnow  # noqa: PLC0415
    from sms_stats.run import backfill  # noqa: PLC0415
    from sms_stats.store.base import find_store  # noqa: PLC0415

    try:
        settings, sinks, app_ids = _backfill_settings(args)
        store = find_store(sinks)
        if store is None:
            raise SmsStatsError(
                "no store to check: give --sink file:DIR or cos://..., or set SMS_STATS_SINKS",
                code="MissingParameter",
            )
        missing = backfill.gaps(
            app_ids, args.begin, args.end, settings, store, utcnow(), sinks, args.by, args.kind
        )
    except (SmsStatsError, SinkError) as exc:
        _fail(exc)
        return 1
    for app_id, window, sink in missing:
        print(f"{app_id} {window} {sink}")
    for sink in sinks:
        if sink is not store and not takes_records(sink):
            continue  # its ?notify= takes no records: it misses none
        count = sum(1 for *_, name in missing if name == sink.name)
        print(f"{count} {args.by}(s) missing from {sink.name}", file=sys.stderr)
    return 1 if missing else 0


def _store_migrate(args: argparse.Namespace) -> int:
    from sms_stats.run.migrate import migrate  # noqa: PLC0415
    from sms_stats.store.base import find_store  # noqa: PLC0415

    try:
        settings, sinks, _ = _backfill_settings(args)
        store = find_store(sinks)
        if store is None:
            raise SmsStatsError(
                "no store to migrate: give --sink file:DIR or cos://..., or set SMS_STATS_SINKS",
                code="MissingParameter",
            )
        found = migrate(store, settings.timezone, apply=args.apply)
    except (SmsStatsError, SinkError) as exc:
        _fail(exc)
        return 1
    verb = "moved" if args.apply else "to move"
    for old, new in found.moves:
        print(f"{old} -> {new}")
    print(f"{store.name}: {len(found.moves)} record(s) {verb} to their grain", file=sys.stderr)
    for key in found.other_zone:
        print(f"left alone (a record of another zone than {found.zone}): {key}", file=sys.stderr)
    for key in found.foreign:
        print(f"left alone (not an sms-stats record): {key}", file=sys.stderr)
    if found.outbox_entries:
        owe = "now owe" if args.apply else "would owe"
        print(f"outbox: {found.outbox_entries} entry(ies) {owe} the new keys", file=sys.stderr)
    if found.moves and not args.apply:
        print("dry run: nothing changed; add --apply to move them", file=sys.stderr)
    return 0


def _alerts(args: argparse.Namespace) -> int:
    """`sms-stats alerts`: the rules in force, the state, or a dry run over the store."""
    from sms_stats.core.rules import rules_in_force  # noqa: PLC0415
    from sms_stats.store.base import find_store  # noqa: PLC0415

    try:
        settings, sinks, app_ids = _backfill_settings(args)
        rules = rules_in_force(settings.alerts, settings.budgets)
        if args.alerts_command == "rules":
            _print_rules(rules, settings.alerts is None)
            return 0
        store = find_store(sinks)
        if store is None:
            raise SmsStatsError(
                "no store to read: give --sink file:DIR or cos://..., or set SMS_STATS_SINKS",
                code="MissingParameter",
            )
        if args.alerts_command == "state":
            return _print_state(store)
        if not app_ids:
            raise SmsStatsError(
                "alerts dry-run: no app ids to judge: give --app-id (repeatable) or set "
                "SMS_STATS_APP_IDS",
                code="MissingParameter",
            )
        return _dry_run(args, rules, store, app_ids, settings.timezone)
    except (SmsStatsError, SinkError) as exc:
        _fail(exc)
        return 1


def _print_rules(rules: Sequence[Any], defaults: bool) -> None:
    if not rules:
        print("alerts are off (SMS_STATS_ALERTS=[])")
        return
    head = ("name", "metric", "condition", "min volume", "for hours", "repeat hours", "apps")
    body: list[tuple[str, ...]] = [
        (
            str(r.name),
            str(r.metric),
            f"{r.condition} {r.threshold:g}",
            str(r.min_volume),
            str(r.for_hours),
            str(r.repeat_hours) if r.repeat_hours else "never",
            ",".join(r.app_ids) if r.app_ids else "all",
        )
        for r in rules
    ]
    print(_grid(head, body))
    if defaults:
        print("(the defaults: no SMS_STATS_ALERTS or [[alerts]] is configured)")


def _print_state(store: Any) -> int:
    from sms_stats.alerts.state import KEY, load  # noqa: PLC0415

    state = load(store, None)
    firing = [a for a in state.alerts.values() if a.firing]
    if not state.alerts:
        print(f"no alert state yet in {store.name} ({KEY})")
    for alert in sorted(firing, key=lambda a: (a.rule, a.app_id)):
        print(f"FIRING  {alert.rule}  app {alert.app_id}  since {alert.since}  value {alert.value}")
    print(f"{len(firing)} firing of {len(state.alerts)} judged (rule, app) pairs")
    for item in state.pending:
        print(f"owed    {item.notice.id} to {', '.join(item.owed)}")
    if state.digest:
        print(f"last digest: {state.digest}")
    return 0


def _dry_run(
    args: argparse.Namespace, rules: Sequence[Any], store: Any, app_ids: list[str], zone: str
) -> int:
    from sms_stats.alerts.replay import HISTORY_DAYS, read_days, replay  # noqa: PLC0415
    from sms_stats.core.windows import parse_hour  # noqa: PLC0415
    from sms_stats.core.windows import zone as tz  # noqa: PLC0415

    try:
        start = parse_hour(args.begin, tz(zone))
        end = parse_hour(args.end, tz(zone))
    except ValueError as exc:
        raise InputError(f"--from/--to: {exc}") from None
    if end < start:
        raise InputError(f"--to {args.end} is before --from {args.begin}")
    records, bad = read_days(
        store, app_ids, (start - timedelta(days=HISTORY_DAYS)).date(), end.date()
    )
    records = [r for r in records if r.window.start <= end]
    for key in bad:
        print(f"skipped (not a readable record): {key}", file=sys.stderr)
    notices = replay(rules, records, start, zone)
    for notice in notices:
        print(_transition(notice))
    fired = sum(1 for n in notices if n.type == "alert.firing")
    print(
        f"dry run over {args.begin}..{args.end}: {len(notices)} notice(s), {fired} firing; "
        "nobody was notified",
        file=sys.stderr,
    )
    return 0


def _transition(notice: Any) -> str:
    data = notice.data
    firing = notice.type == "alert.firing"
    state = "FIRING  " if firing else "RESOLVED"
    value = data["value"]
    shown = "none" if value is None else f"{value:g}"
    rule = f"{data['condition']} {data['threshold']:g}"
    return (
        f"{data['window_start'][:16].replace('T', ' ')}  {state}  {data['alert']}  "
        f"app {data['app_id']}  {data['metric']} {shown} "
        f"({rule if firing else 'no longer ' + rule})  "
        f"since {data['since'][:16].replace('T', ' ')}"
    )


def table(records: Any) -> str:
    """Records as aligned text tables, one per kind (sends, receipts, balances), in that order."""
    by_schema: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_schema.setdefault(str(record.get("schema")), []).append(record)
    parts = [
        _grid(header, sorted(row(r) for r in by_schema[schema]))
        for schema, (header, row) in _TABLES.items()
        if schema in by_schema
    ]
    return "\n\n".join(parts)


def _pct(rate: Any) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _window(r: dict[str, Any]) -> str:
    return f"{r['begin_time']}-{r['end_time']}"


_TABLES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], tuple[str, ...]]]] = {
    "sms-stats/v1": (
        ("app", "window", "requests", "success", "rate", "billed"),
        lambda r: (
            r["sms_sdk_app_id"],
            _window(r),
            str(r["request_count"]),
            str(r["request_success_count"]),
            _pct(r["success_rate"]),
            str(r["fee_count"]),
        ),
    ),
    "sms-stats-callback/v1": (
        ("app", "receipts of", "receipts", "delivered", "rate", "failed", "pending"),
        lambda r: (
            r["sms_sdk_app_id"],
            _window(r),
            str(r["callback_count"]),
            str(r["callback_success_count"]),
            _pct(r["delivery_rate"]),
            str(r["callback_fail_count"]),
            str(r["pending_count"]),
        ),
    ),
    "sms-stats-packages/v1": (
        ("app", "balance as of", "left", "next expiry", "expiring"),
        lambda r: (
            r["sms_sdk_app_id"],
            str(r["as_of"])[:16].replace("T", " "),
            str(r["remaining"]),
            "-" if r["next_expiry"] is None else str(r["next_expiry"])[:10],
            "-" if r["next_expiry_remaining"] is None else str(r["next_expiry_remaining"]),
        ),
    ),
}


def _grid(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i > 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _serve(args: argparse.Namespace) -> int:
    try:
        from sms_stats.web.serve import serve  # noqa: PLC0415
    except ImportError:  # the function's zip carries neither the module nor waitress
        print(
            "error: sms-stats serve is not part of this installation: "
            "pip install 'sms-stats[serve]'",
            file=sys.stderr,
        )
        return 1
    from sms_stats.handler import main_handler  # noqa: PLC0415

    return serve(
        args.host,
        args.port,
        main_handler,
        note=_serve_note(),
        threads=args.threads,
        idle_timeout=args.idle_timeout,
    )


def _serve_note() -> str | None:
    """What a person starting the server should know before the first request says it: that
    no token is set (every request but /healthz is refused), or that the settings are wrong."""
    from sms_stats.handler import current_settings  # noqa: PLC0415

    try:
        settings = current_settings()
    except ConfigError as exc:
        return f"warning: the function's settings are wrong, every request will say so: {exc}"
    if not settings.api_tokens and not settings.allow_anonymous:
        return (
            "warning: SMS_STATS_API_TOKEN is not set: every request but /healthz is refused "
            "(401). Export a token of 16 characters or more before starting the server (or "
            "SMS_STATS_ALLOW_ANONYMOUS=true, on a machine only you can reach)"
        )
    return None


def _bounded(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of `kind` from `low` to `high`, or the rule and the value."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number from {low:g} to {high:g}; got {text[:20]!r}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}; got {text[:20]}")
        return value

    return parse


def _add_fetch_parser(sub: Any) -> None:
    fetch = sub.add_parser(
        "fetch", help="fetch one range (sends, receipts) or the balance, and print a table"
    )
    fetch.add_argument("--app-id", action="append", required=True, help="repeatable")
    fetch.add_argument("--begin", help="yyyymmddhh (not for --kind packages)")
    fetch.add_argument("--end", help="yyyymmddhh (included)")
    fetch.add_argument(
        "--kind",
        action="append",
        choices=("send", "callback", "packages"),
        help="repeatable; default send (receipts: callback; the balance now: packages)",
    )
    fetch.add_argument("--json", action="store_true", help="print records as JSON")
    fetch.set_defaults(func=_fetch)


def _add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve", help="a local HTTP server that turns requests into Function URL events"
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free one")
    serve.add_argument(
        "--threads",
        type=_bounded(int, 1, 64),
        default=8,
        help="requests handled at once (default 8); slow clients wait without a thread",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_bounded(float, 1, 3600),
        default=30.0,
        help="seconds a silent connection (or a half-sent request) is kept (default 30)",
    )
    serve.set_defaults(func=_serve)


def _add_alerts_parser(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="the alert rules in force, their state, a dry run")
    alerts_sub = alerts.add_subparsers(
        dest="alerts_command", required=True, metavar="{rules,state,dry-run}"
    )
    for name, text in (
        ("rules", "list the rules in force (the defaults when none are configured)"),
        ("state", "what fires now, and what is still owed to a sink"),
        ("dry-run", "judge the rules over a range of the store, notifying no one"),
    ):
        cmd = alerts_sub.add_parser(name, help=text)
        cmd.add_argument("--sink", action="append", help="store URL; default SMS_STATS_SINKS")
        cmd.add_argument("--app-id", action="append", help="repeatable; default SMS_STATS_APP_IDS")
        if name == "dry-run":
            cmd.add_argument("--from", dest="begin", required=True, help="yyyymmddhh (included)")
            cmd.add_argument("--to", dest="end", required=True, help="yyyymmddhh (included)")
        cmd.set_defaults(func=_alerts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sms-stats", description=__doc__)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{invoke,fetch,backfill,gaps,store,alerts,serve,emulator}",
    )

    invoke = sub.add_parser("invoke", help="run an event through main_handler")
    invoke.add_argument("event", help="an event JSON file, or 'timer' / 'http' for a built-in one")
    invoke.set_defaults(func=_invoke)

    _add_fetch_parser(sub)

    for name, func, text in (
        ("backfill", _backfill, "fetch a range into the sinks, skipping what the store has"),
        ("gaps", _gaps, "list windows missing from the store, and from each sink (the outbox)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--app-id", action="append", help="repeatable; default SMS_STATS_APP_IDS")
        cmd.add_argument("--from", dest="begin", required=True, help="yyyymmddhh (included)")
        cmd.add_argument("--to", dest="end", required=True, help="yyyymmddhh (included)")
        cmd.add_argument(
            "--sink", action="append", help="sink URL (repeatable); default SMS_STATS_SINKS"
        )
        cmd.add_argument(
            "--by",
            choices=("hour", "day"),
            default="hour",
            help="grain: hours, or whole local days (--from D00 --to D23), each in its layout",
        )
        if name == "gaps":
            cmd.add_argument(
                "--kind", choices=("send", "callback"), default="send", help="default send"
            )
        if name == "backfill":
            cmd.add_argument(
                "--kind",
                action="append",
                choices=("send", "callback"),
                help="repeatable; default send (receipts: --kind callback)",
            )
            cmd.add_argument("--force", action="store_true", help="fetch stored windows again")
            cmd.add_argument(
                "--notify",
                action="store_true",
                help="post a summary per window to the chat-bot sinks too (paced to each "
                "platform's rate; left out by default)",
            )
        cmd.set_defaults(func=func)

    store = sub.add_parser("store", help="operations on the store as a whole")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="{migrate}")
    migrate = store_sub.add_parser(
        "migrate",
        help="move records of an older store to the layout of their grain (dry run unless --apply)",
    )
    migrate.add_argument(
        "--sink", action="append", help="store URL (file: or cos://); default SMS_STATS_SINKS"
    )
    migrate.add_argument("--apply", action="store_true", help="make the moves")
    migrate.set_defaults(func=_store_migrate, app_id=None)

    _add_alerts_parser(sub)
    _add_serve_parser(sub)

    sub.add_parser("emulator", help="run the local SMS API stand-in", add_help=False)

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] != ["invoke"]:
        # The slow collection pace is for a function's first invocation; a command (or a
        # server's first request) has none to end it, so the usual pace starts now.
        first_invocation_over()
    if args_list[:1] == ["emulator"]:
        from sms_stats.emulator import main as emulator_main  # noqa: PLC0415

        return emulator_main(args_list[1:])
    args = parser.parse_args(args_list)
    from sms_stats.core.log import logger  # noqa: PLC0415

    if sys.stderr.isatty() and not os.environ.get("SMS_STATS_LOG_LEVEL"):
        # A person is reading: a JSON line per call would bury the progress bar and the
        # summary, and an error would be said twice (its log line, then the command's own
        # words). Warnings show as one short line each; a retried call's warnings and the
        # closing line do not (the command says how it ended). SMS_STATS_LOG_LEVEL brings
        # the JSON lines back, as they go to a pipe.
        os.environ["SMS_STATS_LOG_LEVEL"] = "WARNING"
        logger.set_readable(frozenset({"invocation.end", "upstream.call", "http.refused"}))
    logger.set_stream(sys.stderr)  # stdout is for the answer, so it can be piped
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # `sms-stats gaps | head -3`: the reader has what it wanted. Point stdout at devnull
        # so the interpreter's final flush does not print a traceback (Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        logger.set_stream(None)
        logger.set_readable(None)


if __name__ == "__main__":
    raise SystemExit(main())
