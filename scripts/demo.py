"""`make demo`: the function's main job, locally, with no Tencent account.

Starts the local SMS API stand-in, a webhook receiver and a WeCom robot stand-in on free ports,
points the function at them, runs a timer event and an HTTP GET through `index.main_handler`,
writes records into ./out, posts them to the receiver signed per Standard Webhooks (checked there
with the `standardwebhooks` package), and shows what arrived. Then yesterday's 11:00 and 12:00
are run again with the stand-in answering bad receipts for one app at 11:00: the delivery-rate
alert fires once and resolves once, and the robot's messages are shown as a person reads them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import main_handler
from tests.standins.bots import BotReceiver
from tests.standins.webhook import WebhookReceiver

from sms_stats.cli import table
from sms_stats.emulator import DEFAULT_CREDENTIALS, Emulator, Fault
from sms_stats.windows import format_hour, last_full, zone

APPS = ["1400006874", "1400006875"]
TOKEN = "demo-token-5e0b3a9c71"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"demo-secret-0123456789abcdef").decode()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]).resolve() if args else ROOT / "out"  # a test passes its own directory
    secret_id, secret_key = next(iter(DEFAULT_CREDENTIALS.items()))
    # The demo runs on its own settings, whatever this shell exports: a stray
    # SMS_STATS_TIMEZONE or SMS_STATS_HTTP_APP_IDS must not turn the demo into a traceback.
    for name in list(os.environ):
        if name.startswith(("SMS_STATS_", "TENCENTCLOUD_")):
            del os.environ[name]
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
            }
        )
        print(f"local SMS API stand-in on {emulator.endpoint}")
        print(f"webhook receiver on {receiver.url}")
        print(f"WeCom robot stand-in on {bots.endpoint}\n")
        context = {"request_id": "demo", "function_name": "sms-stats", "time_limit_in_ms": 60_000}

        now = datetime.now(timezone.utc)
        _alerts_demo(emulator, receiver, bots, context, now)
        timer = _timer(now)
        seen = len(receiver.received)
        print(f"1. timer event at {timer['Time']} -> the last full hour, Asia/Shanghai")
        summary = main_handler(timer, context)
        print(table(summary["records"]))
        for delivery in summary["deliveries"]:
            outcome = "ok" if delivery["ok"] else f"FAILED: {delivery['error']}"
            print(f"   app {delivery['sms_sdk_app_id']} -> {delivery['sink']}: {outcome}")

        hours = last_full(now, zone("Asia/Shanghai"), "hour", 6)
        begin, end = format_hour(hours[0].start), format_hour(hours[-1].start)
        print(f"\n2. HTTP GET /stats?app_id={APPS[0]}&begin={begin}&end={end}")
        event = {
            "httpMethod": "GET",
            "path": "/stats",
            "headers": {"authorization": f"Bearer {TOKEN}"},
            "queryString": {"app_id": APPS[0], "begin": begin, "end": end},
            "body": "",
        }
        answer = main_handler(event, context)
        print(f"   HTTP {answer['statusCode']}")
        print(table(json.loads(answer["body"])["records"]))
        print(f"\n   stand-in served {len(emulator.requests)} signed requests")
        print(f"\n3. the webhook receiver got {len(receiver.received) - seen} messages:")
        for message in receiver.received[seen:]:
            if "records" not in message.json:
                print(
                    f"   {message.json['type']:<8} webhook-id {message.headers['webhook-id']}  "
                    f"signature {'verified' if message.verified else 'REJECTED'}"
                )
                continue
            (record,) = message.json["records"]
            what = (
                f"as of {record['as_of']}"
                if "as_of" in record
                else f"{record['begin_time']}-{record['end_time']}"
            )
            print(
                f"   {message.json['kind']:<8} webhook-id {message.headers['webhook-id']}  "
                f"signature {'verified' if message.verified else 'REJECTED'}  "
                f"app {record['sms_sdk_app_id']} {what}"
            )

    print(f"\n4. the store ({out}):")
    for path in sorted(out.rglob("*.json")):
        print(f"   {path.relative_to(out.parent)}")
    return 0


def _alerts_demo(
    emulator: Emulator,
    receiver: WebhookReceiver,
    bots: BotReceiver,
    context: dict[str, object],
    now: datetime,
) -> None:
    """Yesterday's 10:00-13:00 again, one app's receipts bad at 11:00: one alert fires, then
    resolves; the webhook's notices and the WeCom robot's messages as a person reads them."""
    print("0. alerts: yesterday 11:00 and 12:00 again, the stand-in answering bad receipts")
    print(f"   for app {APPS[0]} at 11:00 (the default rule: delivery rate below 90%)")
    local = now.astimezone(zone("Asia/Shanghai")) - timedelta(days=1)
    # 10:00 as the stand-in has it (this run also sends the digest of the day before),
    # then 11:00 with half the receipts failed, then two good hours.
    for hour, delivered in ((10, None), (11, 100), (12, 199), (13, 198)):
        emulator.clear_faults()
        if delivered is not None:
            emulator.set_fault(_receipts(200, delivered), app_id=APPS[0])
        run = local.replace(hour=hour + 1, minute=5, second=0, microsecond=0)
        main_handler(_timer(run), context)
    emulator.clear_faults()
    for message in receiver.received:
        if "type" in message.json and message.json["type"].startswith("alert."):
            data = message.json["data"]
            print(
                f"   webhook {message.json['type']:<15} app {data['app_id']} "
                f"{data['metric']} {data['value']} (threshold {data['threshold']}) "
                f"since {data['since']}  signature "
                f"{'verified' if message.verified else 'REJECTED'}"
            )
    print("   the WeCom robot showed:")
    for payload in bots.payloads("wecom"):
        for line in payload["markdown"]["content"].splitlines():
            print(f"     | {line}")
    print()


def _timer(moment: datetime) -> dict[str, str]:
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"Type": "Timer", "TriggerName": "sms-stats-hourly", "Time": stamp, "Message": ""}


def _receipts(total: int, delivered: int) -> Fault:
    """The stand-in answers these receipts for the app, whatever hour is asked."""
    failed = total - delivered
    fields = {
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
