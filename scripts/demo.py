"""`make demo`: the function's main job, locally, with no Tencent account.

Starts the local SMS API stand-in, a webhook receiver and a WeCom robot stand-in on free ports,
points the function at them and tells a day of its life, in order, through `index.main_handler`:
yesterday's late morning again with one app's receipts going bad for an hour (a delivery-rate
alert fires once and resolves once, to the webhook and the robot), then this hour's timer run
(the hour's three kinds, and the 72 hours before it made whole in the store), an HTTP query
answered from the store, what the webhook received (signed per Standard Webhooks and checked
there), and what the store holds. Every run starts from an empty ./out, so every run shows the
whole story.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import main_handler
from tests.standins.bots import BotReceiver
from tests.standins.webhook import WebhookReceiver

from sms_stats.cli import table
from sms_stats.core.log import logger
from sms_stats.core.windows import format_hour, last_full, zone
from sms_stats.emulator import DEFAULT_CREDENTIALS, Emulator, Fault

APPS = ["1400006874", "1400006875"]
TOKEN = "demo-token-5e0b3a9c71"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"demo-secret-0123456789abcdef").decode()
ZONE = "Asia/Shanghai"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]).resolve() if args else ROOT / "out"  # a test passes its own directory
    if not _fresh(out):
        return 1
    secret_id, secret_key = next(iter(DEFAULT_CREDENTIALS.items()))
    # The demo runs on its own settings, whatever this shell exports: a stray
    # SMS_STATS_TIMEZONE or SMS_STATS_HTTP_APP_IDS must not turn the demo into a traceback.
    for name in list(os.environ):
        if name.startswith(("SMS_STATS_", "TENCENTCLOUD_")):
            del os.environ[name]
    logger.set_readable(frozenset({"invocation.end", "upstream.call"}))  # a person reads this
    with (
        Emulator() as emulator,
        WebhookReceiver(secret=WEBHOOK_SECRET) as receiver,
        BotReceiver() as bots,
    ):
        os.environ.update(
            {
                "TENCENTCLOUD_SECRETID": secret_id,
                "TENCENTCLOUD_SECRETKEY": secret_key,
                "SMS_STATS_ENDPOINT": emulator.endpoint,
                "SMS_STATS_APP_IDS": ",".join(APPS),
                "SMS_STATS_SINKS": f"file://{out},{receiver.url},{bots.url('wecom')}",
                "SMS_STATS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "SMS_STATS_API_TOKEN": TOKEN,
                "SMS_STATS_LOG_LEVEL": "WARNING",
                "SMS_STATS_RATE_LIMIT": "1000",  # the stand-in has no limit; the real API: 10
            }
        )
        print(f"the local SMS API stand-in:  {emulator.endpoint}")
        print(f"a webhook receiver:          {receiver.url}")
        print(f"a WeCom robot stand-in:      {bots.endpoint}")
        print(f"the store:                   {out}\n")
        context = {"request_id": "demo", "function_name": "sms-stats", "time_limit_in_ms": 60_000}
        now = datetime.now(timezone.utc)
        _yesterday(emulator, receiver, bots, context, now)
        seen = len(receiver.received)
        _this_hour(context, now)
        _query(emulator, context, now)
        _webhook(receiver, seen)
    _store(out)
    return 0


def _fresh(out: Path) -> bool:
    """An empty store for the story: a store an earlier demo left is removed; a directory
    holding anything else is left alone, and the demo says why it stops."""
    if out.exists():
        ours = (out / "_store.json").exists() or not any(out.iterdir())
        if not ours:
            print(f"{out} holds files that are not a demo's store; give the demo another directory")
            return False
        shutil.rmtree(out)
    return True


def _yesterday(
    emulator: Emulator,
    receiver: WebhookReceiver,
    bots: BotReceiver,
    context: dict[str, object],
    now: datetime,
) -> None:
    """Yesterday's 10:00-13:00 again, app 1's receipts bad at 11:00: one alert fires, then
    resolves; the webhook's notices and the robot's messages as a person reads them."""
    local = now.astimezone(zone(ZONE)) - timedelta(days=1)
    day = local.date().isoformat()
    print(f"1. Yesterday ({day}), the timer at 11:05, 12:05, 13:05 and 14:05 ({ZONE}).")
    print(f"   At 11:00 only half of app {APPS[0]}'s receipts said delivered: below the")
    print("   default rule's 90%. The alert fires once, and resolves once the next hour is fine:")
    for hour, delivered in ((10, None), (11, 100), (12, 199), (13, 198)):
        emulator.clear_faults()
        if delivered is not None:
            emulator.set_fault(_receipts(200, delivered), app_id=APPS[0])
        run = local.replace(hour=hour + 1, minute=5, second=0, microsecond=0)
        main_handler(_timer(run), context)
    emulator.clear_faults()
    digests = []
    for message in receiver.received:
        kind = message.json.get("type", "")
        if kind.startswith("alert."):
            data = message.json["data"]
            print(
                f"   webhook {kind:<15} app {data['app_id']}  {data['metric']} "
                f"{data['value']:.1%} (rule: {data['condition']} {data['threshold']:.0%}) "
                f"since {data['since'][11:16]}"
            )
            print(f"   {'':<23} {_verified(message.verified)}")
        elif kind == "digest.daily":
            digests.append(message.json["data"]["date"])
    print("   The WeCom robot showed (alerts and digests only: a chat hears of problems):")
    for payload in bots.payloads("wecom"):
        for line in payload["markdown"]["content"].splitlines():
            # Wrapped as the chat wraps it, to this terminal's 100 columns.
            wrapped = textwrap.wrap(line, 92, subsequent_indent="  ") or [""]
            for part in wrapped:
                print(f"     | {part}")
        print("     |")
    for date in digests:
        print(
            f"   (The first run after 09:00 also sent the daily digest of the day before: {date}.)"
        )
    print()


def _this_hour(context: dict[str, object], now: datetime) -> None:
    timer = _timer(now)
    local = now.astimezone(zone(ZONE))
    print(f"2. Now ({local:%Y-%m-%d %H:%M} {ZONE}), the hourly timer: the hour that just ended,")
    print("   all three kinds (sends, delivery receipts, the balance of the SMS packages):")
    summary = main_handler(timer, context)
    print(_indent(table(summary["records"])))
    if any(r.get("request_count") == 0 for r in summary["records"]):
        print("   (a quiet hour: the stand-in has no traffic in about one hour in twelve)")
    heal = summary.get("heal", {})
    calls = heal.get("send_calls", 0) + heal.get("callback_calls", 0)
    print(
        f"   Then it made the 72 hours before it whole: {heal.get('records', 0)} hour records "
        "written (hours"
    )
    print(
        f"   the store lacked, receipts that settled since), {calls} calls for "
        f"{heal.get('apps', 0)} apps. With nothing"
    )
    print("   missing, an hour costs one more receipts call an app: to see what settled.")
    by_sink = Counter(d["sink"].split(":")[0] for d in summary["deliveries"] if d["ok"])
    failed = [d for d in summary["deliveries"] if not d["ok"]]
    print(
        f"   Delivered: {by_sink['file']} records to the store, {by_sink['webhook']} to the "
        "webhook" + (f"; {len(failed)} FAILED" if failed else "")
    )
    print("   (the robot takes alerts and digests only: a group chat reads problems, not hours)")
    print()


def _query(emulator: Emulator, context: dict[str, object], now: datetime) -> None:
    hours = last_full(now, zone(ZONE), "hour", 6)
    begin, end = format_hour(hours[0].start), format_hour(hours[-1].start)
    print(f"3. HTTP GET /stats?app_id={APPS[0]}&begin={begin}&end={end}, with the token:")
    before = len(emulator.requests)
    event = {
        "httpMethod": "GET",
        "path": "/stats",
        "headers": {"authorization": f"Bearer {TOKEN}"},
        "queryString": {"app_id": APPS[0], "begin": begin, "end": end},
        "body": "",
    }
    answer = main_handler(event, context)
    body = json.loads(answer["body"])
    asked = len(emulator.requests) - before
    source = body.get("source")
    print(
        f"   HTTP {answer['statusCode']}, answered from the {source} "
        f"({asked} API calls: the store holds those hours)"
    )
    print(_indent(table(body["records"])))
    print()


def _webhook(receiver: WebhookReceiver, seen: int) -> None:
    messages = receiver.received[seen:]
    kinds = Counter(m.json.get("kind") or m.json.get("type") for m in messages)
    verified = sum(1 for m in messages if m.verified)
    print(
        f"4. The webhook received {len(messages)} messages from this run, a record each, "
        f"signed ({verified} verified"
    )
    print("   by the receiver with the standardwebhooks package):")
    for kind, count in sorted(kinds.items()):
        print(f"   {count:>4} {kind}")
    if messages:
        first = messages[0]
        print(f"   e.g. webhook-id {first.headers['webhook-id']}:")
        print("   the same id on a retry, a new one when receipts settle and the counts change.")
    print()


def _store(out: Path) -> None:
    files = sorted(p.relative_to(out) for p in out.rglob("*.json"))
    groups: Counter[str] = Counter()
    for path in files:
        top = path.parts[0]
        if top.startswith("app="):
            groups["sends (app=<id>/dt=<date>/<hour>.json)"] += 1
        else:
            groups[f"{top}/" if len(path.parts) > 1 else top] += 1
    print(f"5. The store ({out}): {len(files)} objects, one per app, kind and hour:")
    for name, count in sorted(groups.items()):
        print(f"   {count:>5}  {name}")
    example = next((p for p in files if p.parts[0].startswith("app=")), None)
    if example is not None:
        print(f"   e.g. {example}")


def _indent(text: str) -> str:
    return "\n".join(f"   {line}" for line in text.splitlines())


def _verified(ok: bool) -> str:
    return "signature verified" if ok else "signature REJECTED"


def _timer(moment: datetime) -> dict[str, str]:
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"Type": "Timer", "TriggerName": "sms-stats-hourly", "Time": stamp, "Message": ""}


def _receipts(total: int, delivered: int) -> Fault:
    """The stand-in answers these receipts for the app, whatever hour is asked."""
    failed = total - delivered
    fields: dict[str, Any] = {
        "RequestSuccessCount": total,
        "CallbackCount": total,
        "CallbackSuccessCount": delivered,
        "CallbackFailCount": failed,
        "InternalErrorCount": failed,
        "InvalidNumberCount": 0,
        "ShutdownErrorCount": 0,
        "BlackListCount": 0,
        "FrequencyLimitCount": 0,
    }
    return Fault(action="callback", fields={k: str(v) for k, v in fields.items()})


if __name__ == "__main__":
    raise SystemExit(main())
