"""`make bench`: speed and memory, each as a ratio to a baseline measured in the same run.

Machines here are noisy, so every figure is paired with its floor, measured alternately in the
same run, and the ratio is what counts; absolute numbers are printed for context.

- cold start: a fresh process that imports `index` and handles one timer event (one app, `file:`
  sink) against the local stand-in, vs the fair floor: a fresh process that imports pydantic
  and the SMS SDK, validates the timer event with one small pydantic model and makes the same
  call (target <= 1.10x, whole process from its start to its answer, in the virtualenv and
  from dist/package; no side's interpreter teardown is timed, since SCF keeps the process). Each
  round runs ours and both floors, the rounds going through all six orders; the figure is the
  median of the rounds' ratios (judged as printed, to two places), with their middle half
  shown. The import-only floor (no model) is printed too, so the model layer's own price stays
  visible. Where valgrind is installed, one process of ours and one of the fair floor are also
  counted in instructions (callgrind, hash seed fixed): a count that a busy machine does not
  move, so a change's cost shows even when the times' noise hides it;
- peak RSS of that cold invocation (target <= 40 MB), and with a COS sink (target <= 64 MB);
- warm: median of 200 HTTP GETs through `main_handler` vs the same raw SDK call (target <= 1.2x);
- backfill: 2 apps x 100 hours, stand-in enforcing 10 req/s with 150 ms latency: wall time vs the
  20 s the rate limit allows (target <= 1.10x) and vs a plain sequential loop;
- deployment zip size vs the same zip with the monolithic SDK (when `make package` has run).

Progress goes to stderr as it runs; each figure with a target is marked ok or MISSED, and the
exit status is 1 when any is missed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sms_stats.emulator import DEFAULT_CREDENTIALS, Emulator

SECRET_ID, SECRET_KEY = next(iter(DEFAULT_CREDENTIALS.items()))
APP = "1400006874"
APPS = ("1400006874", "1400006875")
TIMER = {"Type": "Timer", "TriggerName": "bench", "Time": "2021-05-01T05:05:00Z", "Message": ""}

# Child programs: each prints one JSON line {"t": seconds in the program, "rss_kb": peak RSS},
# flushes its output and leaves with os._exit: the parent's wall time is the process's time to
# its answer. Interpreter teardown is left out on every side, because SCF keeps the process
# after an invocation (nobody waits for it) and because what it costs depends on what is
# tracked by the collector: ours freezes what it loaded, which a floor does not, and a whole-
# process figure would credit us with a shorter exit instead of a faster answer.
OURS = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import index
    index.main_handler({timer}, {{"request_id": "bench", "time_limit_in_ms": 60000}})
    t = time.perf_counter() - t0
    import json, os, resource, sys
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.__stderr__.write(json.dumps({{"t": t, "rss_kb": rss}}) + "\\n")
    sys.stdout.flush(), sys.__stderr__.flush()
    os._exit(0)
    """
).format(timer=json.dumps(TIMER))
# The floors import pydantic and the SMS SDK and make the same call. The fair floor also
# validates the timer event with one small pydantic model, as the design asks of us: pydantic's
# model layer (schema machinery, plugin lookup) is then in both, and the ratio is what is ours.
# The import-only floor keeps the price of that model layer visible.
_FLOOR = """
import time
t0 = time.perf_counter()
import json, os
import pydantic
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client
{model}
scheme, _, host = os.environ["SMS_STATS_ENDPOINT"].partition("://")
profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host, reqTimeout=5))
client = sms_client.SmsClient(
    Credential(os.environ["TENCENTCLOUD_SECRETID"], os.environ["TENCENTCLOUD_SECRETKEY"]),
    "ap-guangzhou", profile)
req = models.SendStatusStatisticsRequest()
req.from_json_string(json.dumps({{"SmsSdkAppId": "{app}", "BeginTime": "2021050112",
                                  "EndTime": "2021050112", "Limit": 0, "Offset": 0}}))
client.SendStatusStatistics(req)
{more}
t = time.perf_counter() - t0
import resource, sys
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.stderr.write(json.dumps({{"t": t, "rss_kb": rss}}) + "\\n")
sys.stdout.flush(), sys.stderr.flush()
os._exit(0)
"""
_ONE_MODEL = """
from datetime import datetime
class Timer(pydantic.BaseModel):
    Type: str
    TriggerName: str = ""
    Time: datetime
    Message: str = ""
Timer.model_validate({timer})
"""
# The same receipts and balance calls the default timer makes (with SMS_STATS_SETTLE_HOURS=0).
_TWO_MORE = """
req = models.CallbackStatusStatisticsRequest()
req.from_json_string(json.dumps({{"SmsSdkAppId": "{app}", "BeginTime": "2021050112",
                                  "EndTime": "2021050112", "Limit": 0, "Offset": 0}}))
client.CallbackStatusStatistics(req)
from datetime import datetime, timedelta, timezone
end = datetime.now(timezone(timedelta(hours=8))).replace(minute=0, second=0, microsecond=0)
req = models.SmsPackagesStatisticsRequest()
req.from_json_string(json.dumps({{"SmsSdkAppId": "{app}", "Limit": 500, "Offset": 0,
    "BeginTime": (end - timedelta(days=775)).strftime("%Y%m%d%H"),
    "EndTime": end.strftime("%Y%m%d%H")}}))
client.SmsPackagesStatistics(req)
"""
_MODEL = _ONE_MODEL.format(timer=json.dumps(TIMER))
FLOOR = _FLOOR.format(model="", app=APP, more="")
FAIR_FLOOR = _FLOOR.format(model=_MODEL, app=APP, more="")
FAIR_FLOOR_3 = _FLOOR.format(model=_MODEL, app=APP, more=_TWO_MORE.format(app=APP))


def env_for(
    emulator: Emulator, sinks: str, collect: str = "send", settle: str = "72"
) -> dict[str, str]:
    """`collect`: the kinds a timer run fetches (`send`: the seed's one call, which the
    single-call floors make). `settle`: the hours each timer run heals, 72 by default as
    deployed: the cold runs find a store their warm-up run filled (a steady store, whose
    healing asks nothing of sends and one range call of receipts), as every hour after a
    deployment's first does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_STATS_", "TENCENTCLOUD_"))}
    env.update(
        {
            "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "SMS_STATS_ENDPOINT": emulator.endpoint,
            "SMS_STATS_APP_IDS": APP,
            "SMS_STATS_SINKS": sinks,
            "SMS_STATS_HTTP_APP_IDS": "*",
            "SMS_STATS_API_TOKEN": "bench-token-7d1a09e35b",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
            "PYTHONDONTWRITEBYTECODE": "",
            "SMS_STATS_COLLECT": collect,
            "SMS_STATS_SETTLE_HOURS": settle,
        }
    )
    return env


def child(program: str, env: dict[str, str], isolated: bool = False) -> dict[str, float]:
    """`isolated`: -S, so only PYTHONPATH (the deployment package) and the stdlib are seen."""
    started = time.perf_counter()
    flags = ["-S"] if isolated else []
    done = subprocess.run(
        [sys.executable, *flags, "-c", program],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stderr.strip().splitlines()[-1])
    figures["wall"] = wall
    return figures


def instructions(program: str, env: dict[str, str], isolated: bool = False) -> float | None:
    """Instructions one fresh process runs, counted by valgrind's callgrind; None without
    valgrind. With the hash seed fixed, the same work gives the same count (to ~0.1%) however
    loaded the machine is, which no time can promise here."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    tool = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    flags = ["-S"] if isolated else []
    done = subprocess.run(
        [*tool, sys.executable, *flags, "-c", program],
        env={**env, "PYTHONHASHSEED": "0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:  # a context figure: the bench goes on without it
        print(f"      callgrind failed: {done.stderr[-500:]}", file=sys.stderr, flush=True)
        return None
    return float(found.group(1))


def cold_start(
    emulator: Emulator,
    runs: int,
    store: Path,
    package: Path | None = None,
    three: bool = False,
) -> dict[str, dict[str, float]]:
    """Medians of fresh processes: ours, the fair floor and the import-only floor, alternated
    so that drift on a noisy machine hits all alike. With `package`, every side imports from
    the deployment package (dist/package) alone, with `-S` and no .pyc written, as SCF runs.
    `three`: the default collection (send, receipts, balance) against the fair floor making
    the same three calls."""
    env = env_for(emulator, f"file://{store}", "send,callback,packages" if three else "send")
    if package is not None:
        env["PYTHONPATH"] = str(package)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    isolated = package is not None
    programs = {"ours": OURS, "fair": FAIR_FLOOR_3 if three else FAIR_FLOOR, "floor": FLOOR}
    for program in programs.values():  # warm the OS file cache (and .pyc files) for each
        child(program, env, isolated)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in programs}
    # Rounds go through every order of the three sides, so that each runs before each other
    # as often as after it (page cache, CPU frequency, the stand-in's threads): a number of
    # runs that is a multiple of six balances them exactly.
    orders = list(itertools.permutations(programs))
    for run in range(runs):
        for name in orders[run % len(orders)]:
            rows[name].append(child(programs[name], env, isolated))
    medians = {
        name: {k: statistics.median(r[k] for r in found) for k in ("t", "wall", "rss_kb")}
        for name, found in rows.items()
    }
    for name, found in rows.items():  # the least noisy estimate of a fixed amount of work
        medians[name]["t_min"] = min(r["t"] for r in found)
    # Each floor's processes ran in the same round as ours: the ratio within a pair shares the
    # moment's noise, so the median of pair ratios (and the middle half of them, shown) is
    # steadier than a ratio of medians taken from different moments.
    for name in ("fair", "floor"):
        pairs = sorted(o["wall"] / b["wall"] for o, b in zip(rows["ours"], rows[name], strict=True))
        medians[name]["pair"] = statistics.median(pairs)
        medians[name]["pair_lo"] = pairs[len(pairs) // 4]
        medians[name]["pair_hi"] = pairs[(3 * len(pairs)) // 4]
    if not three and shutil.which("valgrind"):
        print("      counting instructions (valgrind, ~1 min) ...", file=sys.stderr, flush=True)
        counts = {name: instructions(programs[name], env, isolated) for name in ("ours", "fair")}
        for name, count in counts.items():
            if count is not None:
                medians[name]["instructions"] = count
    return medians


def _spread(ours: dict[str, float], base: dict[str, float]) -> str:
    """Both estimates, so a noisy run shows as one: medians of each side, and the pairs."""
    return (
        f"medians {_ms(ours['wall'])} vs {_ms(base['wall'])} ({ours['wall'] / base['wall']:.2f}x);"
        f" pairs' middle half {base['pair_lo']:.2f}-{base['pair_hi']:.2f}x"
    )


def cold_rss_with_cos(emulator: Emulator, runs: int) -> float | None:
    try:
        from tests.standins.cos import CosStandIn
    except ImportError:
        return None
    bucket = "bench-1250000000"
    with CosStandIn(credentials={SECRET_ID: SECRET_KEY}, buckets={bucket}) as cos:
        env = env_for(emulator, f"cos://{bucket}/stats?region=ap-guangzhou&endpoint={cos.endpoint}")
        child(OURS, env)  # fills the 72 hours healing looks at: the runs below are steady
        return statistics.median(child(OURS, env)["rss_kb"] for _ in range(runs))


def warm(emulator: Emulator, calls: int) -> dict[str, float]:
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client

    os.environ.update(env_for(emulator, ""))
    os.environ["SMS_STATS_RATE_LIMIT"] = "1000"
    from index import main_handler

    from sms_stats.core.log import logger

    logger.set_stream(open(os.devnull, "w"))  # noqa: SIM115 - lives for the benchmark
    event = {
        "httpMethod": "GET",
        "path": "/stats",
        "headers": {"authorization": "Bearer bench-token-7d1a09e35b"},
        "queryString": {"app_id": APP, "begin": "2021050112", "end": "2021050112"},
        "body": "",
    }
    context = {"request_id": "bench", "time_limit_in_ms": 60000}
    scheme, _, host = emulator.endpoint.partition("://")
    http = HttpProfile(protocol=scheme, endpoint=host, reqTimeout=5)
    http.keepAlive = True
    client = sms_client.SmsClient(
        Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", ClientProfile(httpProfile=http)
    )
    client.request.set_keep_alive()
    body = {
        "SmsSdkAppId": APP,
        "BeginTime": "2021050112",
        "EndTime": "2021050112",
        "Limit": 0,
        "Offset": 0,
    }

    def raw() -> None:
        req = models.SendStatusStatisticsRequest()
        req.from_json_string(json.dumps(body))
        client.SendStatusStatistics(req)

    def ours() -> None:
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200, answer

    ours()
    raw()
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(calls):
        for name, fn in (("ours", ours), ("raw", raw)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def backfill_bench(hours: int) -> dict[str, float]:
    from datetime import datetime, timezone

    from sms_stats.deliver.sinks import build_sinks
    from sms_stats.handler import current_settings
    from sms_stats.run import backfill

    with Emulator(rate_limit=10, latency_s=0.15) as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(env_for(emulator, f"file://{tmp}"))
        os.environ["SMS_STATS_RATE_LIMIT"] = "10"
        settings = current_settings()
        sinks = build_sinks(settings)
        now = datetime(2021, 6, 1, tzinfo=timezone.utc)
        end_hour = f"202105{1 + (hours - 1) // 24:02d}{(hours - 1) % 24:02d}"
        plan = backfill.plan(APPS, "2021050100", end_hour, "hour", settings, sinks, now)
        started = time.perf_counter()
        result = backfill.run(plan, settings, sinks)
        ours = time.perf_counter() - started
        assert len(result.records) == 2 * hours, result.failures[:3]
        rejected_ours = emulator.rejected_count

    # The baseline on a fresh stand-in with the same limit and latency, so that its first calls
    # do not share a rate window with ours.
    with Emulator(rate_limit=10, latency_s=0.15) as emulator:
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import models, sms_client

        scheme, _, host = emulator.endpoint.partition("://")
        client = sms_client.SmsClient(
            Credential(SECRET_ID, SECRET_KEY),
            "ap-guangzhou",
            ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host, reqTimeout=5)),
        )
        started = time.perf_counter()
        for window in plan.job.windows:
            for app in APPS:
                req = models.SendStatusStatisticsRequest()
                params = {
                    "SmsSdkAppId": app,
                    "BeginTime": window.begin_time,
                    "EndTime": window.end_time,
                    "Limit": 0,
                    "Offset": 0,
                }
                req.from_json_string(json.dumps(params))
                client.SendStatusStatistics(req)
        sequential = time.perf_counter() - started
    floor = 2 * hours / 10
    return {"ours": ours, "floor": floor, "sequential": sequential, "rejected": rejected_ours}


def kinds_bench(apps: int) -> dict[str, float]:
    """A timer run for `apps` apps through `main_handler`, the stand-in enforcing 10 req/s per
    action with 150 ms latency: sends alone, all three kinds (each API has its own budget, so
    about one round of calls each, in parallel). Nothing is healed here (settle 0): the heal
    bench (`heal_bench.py`) measures that on its own."""
    from index import main_handler

    from sms_stats import handler
    from sms_stats.run import pipeline
    from sms_stats.store import layout

    ids = ",".join(f"14001{n:05d}" for n in range(apps))  # 1400000000 is the unauthorized one
    times: dict[str, float] = {}
    runs = {
        "send": ("send", "0"),
        "three": ("send,callback,packages", "0"),
    }
    for name, (collect, settle) in runs.items():
        with (
            Emulator(rate_limit=10, latency_s=0.15) as emulator,
            tempfile.TemporaryDirectory() as tmp,
        ):
            os.environ.update(env_for(emulator, f"file://{tmp}", collect))
            os.environ.update(
                {
                    "SMS_STATS_APP_IDS": ids,
                    "SMS_STATS_SETTLE_HOURS": settle,
                    "SMS_STATS_LOG_LEVEL": "ERROR",
                }
            )
            handler._settings_cache.clear()
            pipeline._clients.clear()
            layout.clear_cache()
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            event = {**TIMER, "Time": now}
            started = time.perf_counter()
            summary = main_handler(event, {"request_id": "bench", "time_limit_in_ms": 300_000})
            times[name] = time.perf_counter() - started
            assert summary["ok"], summary
            assert emulator.rejected_count == 0
    return times


def dashboard_bench(apps: int = 5, days: int = 31) -> dict[str, float]:
    """`GET /dashboard` for `apps` x `days` through `main_handler`, the store on the COS
    stand-in adding 20 ms to every request: the first view ever (every hour read and folded
    into rollups; for a month that takes more than one view's read budget, so the reloads it
    takes are counted in), a new container's view (rollups in the store, nothing in memory),
    and a warm container's view."""
    from datetime import datetime, timedelta, timezone

    from index import main_handler
    from tests.standins.cos import CosStandIn, StoredObject

    from sms_stats import handler
    from sms_stats.core.records import (
        AnyRecord,
        BalanceRecord,
        CallbackRecord,
        Counts,
        Receipts,
        Record,
    )
    from sms_stats.core.windows import Window, zone
    from sms_stats.store import layout
    from sms_stats.web.dashboard import data

    tz = zone("Asia/Shanghai")
    bucket = "bench-1250000000"
    now = datetime.now(timezone.utc)
    last = now.astimezone(tz).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    ids = [f"14002{n:05d}" for n in range(apps)]
    with CosStandIn(credentials={SECRET_ID: SECRET_KEY}, buckets={bucket}, latency_s=0.02) as cos:
        for app in ids:
            for h in range(days * 24):
                start = last - timedelta(hours=h)
                window = Window(start, start + timedelta(hours=1))
                n = 100 + h
                records: list[AnyRecord] = [
                    Record(app, window, "Asia/Shanghai", Counts(n, n - 1, n + 5, "r"), now),
                    CallbackRecord(
                        app,
                        window,
                        "Asia/Shanghai",
                        Receipts(n - 1, n - 2, n - 4, 2, 1, 1, 0, 0, 0, "r"),
                        now,
                    ),
                    BalanceRecord(app, start + timedelta(minutes=5), (), "r", now),
                ]
                for record in records:
                    body = json.dumps(record.to_dict()).encode()
                    cos.objects[(bucket, f"p/{record.key}")] = StoredObject(
                        body, "application/json"
                    )
        os.environ.update(
            {
                "TENCENTCLOUD_SECRETID": SECRET_ID,
                "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                "SMS_STATS_SINKS": f"cos://{bucket}/p?region=ap-guangzhou&endpoint={cos.endpoint}",
                "SMS_STATS_APP_IDS": ",".join(ids),
                "SMS_STATS_HTTP_APP_IDS": "*",
                "SMS_STATS_API_TOKEN": "bench-token-7d1a09e35b",
                "SMS_STATS_LOG_LEVEL": "ERROR",
            }
        )
        handler._settings_cache.clear()
        layout.clear_cache()
        event = {
            "httpMethod": "GET",
            "path": "/dashboard",
            "headers": {"authorization": "Bearer bench-token-7d1a09e35b"},
            "queryString": {"days": str(days)},
            "body": "",
        }
        times: dict[str, float] = {"first": 0.0, "first_views": 0}
        data.clear_cache()
        while True:  # a month's first view may not read it all in time: a reload goes on
            started = time.perf_counter()
            answer = main_handler(event, {"request_id": "bench", "time_limit_in_ms": 60_000})
            times["first"] += time.perf_counter() - started
            times["first_views"] += 1
            assert answer["statusCode"] == 200
            if "Not shown" not in answer["body"]:
                break
            assert times["first_views"] < 10, "the first views do not converge"
        for name in ("new_container", "warm"):
            if name != "warm":
                data.clear_cache()
            started = time.perf_counter()
            answer = main_handler(event, {"request_id": "bench", "time_limit_in_ms": 60_000})
            times[name] = time.perf_counter() - started
            assert answer["statusCode"] == 200, name
            assert "Not shown" not in answer["body"], name
    return times


def zip_sizes() -> dict[str, int] | None:
    """Our zip vs the same package with the monolithic tencentcloud-sdk-python in place of the
    per-product -common and -sms packages, zipped the same way (scripts/package's writer)."""
    import shutil
    import zipfile

    ours = ROOT / "dist" / "sms-stats.zip"
    package = ROOT / "dist" / "package"
    if not ours.exists() or not package.is_dir():
        return None
    from importlib.metadata import version

    sdk = version("tencentcloud-sdk-python-common")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                f"tencentcloud-sdk-python=={sdk}",
                "-d",
                str(work / "wheel"),
            ],
            check=True,
        )
        mono = work / "package"
        shutil.copytree(package, mono)
        for path in list(mono.iterdir()):
            if path.name == "tencentcloud" or path.name.startswith("tencentcloud_sdk_python_"):
                shutil.rmtree(path)
        (wheel,) = (work / "wheel").glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(mono)
        mono_zip = work / "mono.zip"
        with zipfile.ZipFile(mono_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in sorted(p for p in mono.rglob("*") if p.is_file()):
                archive.write(path, str(path.relative_to(mono)))
        unzipped = sum(p.stat().st_size for p in mono.rglob("*") if p.is_file())
        return {
            "ours": ours.stat().st_size,
            "ours_unzipped": sum(p.stat().st_size for p in package.rglob("*") if p.is_file()),
            "monolith": mono_zip.stat().st_size,
            "monolith_unzipped": unzipped,
        }


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    context: str = ""
    met: bool | None = None  # None: no target


class Report:
    """Figures as they come, with progress on stderr (a run takes minutes)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.step = 0
        self.figures: list[Figure] = []

    def start(self, what: str) -> None:
        self.step += 1
        print(f"[{self.step}/{self.steps}] {what} ...", file=sys.stderr, flush=True)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        mark = {True: "ok", False: "MISSED", None: ""}[figure.met]
        print(f"      {figure.name}: {figure.value} {mark}", file=sys.stderr, flush=True)

    def ratio(self, name: str, ours: float, base: float, most: float, context: str) -> None:
        # Judged as shown: a figure printed as 1.10x against 1.10x is not marked as missed.
        ratio = round(ours / base, 2)
        self.add(Figure(name, f"{ratio:.2f}x", f"<= {most:.2f}x", context, ratio <= most))

    def print(self) -> None:
        width = max(len(f.name) for f in self.figures)
        print(f"{'figure':<{width}}  {'ratio/value':>12}  {'target':>9}  {'':6}  context")
        for f in self.figures:
            mark = {True: "ok", False: "MISSED", None: ""}[f.met]
            print(f"{f.name:<{width}}  {f.value:>12}  {f.target:>9}  {mark:6}  {f.context}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def cold_figures(report: Report, cold: dict[str, dict[str, float]], where: str) -> None:
    ours, fair, floor = cold["ours"], cold["fair"], cold["floor"]
    report.ratio(
        f"cold start, process start to answer, {where}, vs fair floor",
        fair["pair"],
        1.0,
        COLD_TARGET,
        _spread(ours, fair),
    )
    report.add(
        Figure(
            f"  the same vs import-only floor ({where})",
            f"{floor['pair']:.2f}x",
            context=f"floor {_ms(floor['wall'])}; one pydantic model costs "
            f"{fair['wall'] / floor['wall']:.2f}x of it",
        )
    )
    if "instructions" in ours and "instructions" in fair:
        report.add(
            Figure(
                f"  instructions ({where}), vs fair floor",
                f"{ours['instructions'] / fair['instructions']:.3f}x",
                context=f"{ours['instructions'] / 1e6:.0f}M vs "
                f"{fair['instructions'] / 1e6:.0f}M (callgrind): the cost without the noise",
            )
        )
    report.add(
        Figure(
            f"  in process ({where}), vs fair floor",
            f"{ours['t'] / fair['t']:.2f}x",
            context=f"medians {_ms(ours['t'])} vs {_ms(fair['t'])}; fastest "
            f"{_ms(ours['t_min'])} vs {_ms(fair['t_min'])} ({ours['t_min'] / fair['t_min']:.2f}x)",
        )
    )


COLD_TARGET = 1.10
COLD_THREE_TARGET = 1.25
KINDS_TARGET = 1.5
RSS_TARGET_MB = 40.0
WARM_TARGET = 1.2
DASHBOARD_TARGET_S = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=18, help="cold-start processes per side (a multiple of 6)"
    )
    parser.add_argument("--calls", type=int, default=200, help="warm invocations per side")
    parser.add_argument("--hours", type=int, default=100, help="backfill hours per app")
    parser.add_argument("--apps", type=int, default=20, help="apps in the kinds timer run")
    parser.add_argument("--skip-backfill", action="store_true", help="and the kinds timer runs")
    parser.add_argument("--skip-heal", action="store_true", help="skip the heal benches")
    parser.add_argument(
        "--heal-apps", default="1000,4000", help="apps of the steady heal runs, comma-separated"
    )
    parser.add_argument(
        "--heal-rate",
        type=float,
        default=50.0,
        help="requests/s per API, on the stand-in and in SMS_STATS_RATE_LIMIT (real: 10; at "
        "100 the process's own CPU, ~19 ms an app, is the limit on a 2-core machine)",
    )
    args = parser.parse_args()

    package = ROOT / "dist" / "package"
    has_package = (package / "index.py").exists()
    heal_steps = 0 if args.skip_heal else 1 + len([n for n in args.heal_apps.split(",") if n])
    report = Report(steps=6 + has_package + 2 * (not args.skip_backfill) + heal_steps)
    with Emulator() as emulator, tempfile.TemporaryDirectory() as store:
        report.start(f"cold start in the development virtualenv, {args.runs} x 3 processes")
        cold = cold_start(emulator, args.runs, Path(store))
        cold_figures(report, cold, "venv")
        rss = cold["ours"]["rss_kb"] / 1024
        report.add(
            Figure(
                "peak RSS, cold timer run, file sink",
                f"{rss:.1f} MB",
                f"<= {RSS_TARGET_MB:.0f} MB",
                f"fair floor {cold['fair']['rss_kb'] / 1024:.1f} MB",
                rss <= RSS_TARGET_MB,
            )
        )
        if has_package:
            runs = args.runs
            report.start(f"cold start from dist/package (python -S), {runs} x 3 processes")
            zipped = cold_start(emulator, runs, Path(store), package)
            cold_figures(report, zipped, "dist/package")
        report.start(f"cold start, three kinds, in the virtualenv, {args.runs} x 3 processes")
        three = cold_start(emulator, args.runs, Path(store), three=True)
        report.ratio(
            "cold start, three kinds, a steady store (one more receipt call: healing), vs fair "
            "floor making three calls",
            three["fair"]["pair"],
            1.0,
            COLD_THREE_TARGET,
            _spread(three["ours"], three["fair"]),
        )
        report.start("peak RSS with a COS sink")
        cos_rss = cold_rss_with_cos(emulator, max(3, args.runs // 3))
        report.add(
            Figure(
                "peak RSS, cold, COS sink",
                "n/a" if cos_rss is None else f"{cos_rss / 1024:.1f} MB",
                "<= 64 MB",
                "" if cos_rss is None else f"{cos_rss / cold['fair']['rss_kb']:.2f}x fair floor",
                None if cos_rss is None else cos_rss / 1024 <= 64,
            )
        )
        report.start(f"warm HTTP GET, {args.calls} calls per side")
        medians = warm(emulator, args.calls)
        report.ratio(
            "warm HTTP GET (median) vs the raw SDK call",
            medians["ours"],
            medians["raw"],
            WARM_TARGET,
            f"{medians['ours'] * 1000:.2f} ms vs {medians['raw'] * 1000:.2f} ms",
        )
    if not args.skip_backfill:
        report.start(f"backfill 2 apps x {args.hours} hours at 10 req/s, then the sequential loop")
        b = backfill_bench(args.hours)
        report.ratio(
            f"backfill 2x{args.hours} h vs the rate limit's floor",
            b["ours"],
            b["floor"],
            1.10,
            f"{b['ours']:.1f} s vs {b['floor']:.0f} s; {b['rejected']:.0f} rejected",
        )
        report.add(
            Figure(
                "  backfill vs a sequential loop",
                f"{b['sequential'] / b['ours']:.2f}x faster",
                context=f"{b['sequential']:.1f} s sequential",
            )
        )
    if not args.skip_backfill:
        report.start(f"timer runs of {args.apps} apps at 10 req/s per API, 150 ms latency")
        k = kinds_bench(args.apps)
        report.ratio(
            f"timer, {args.apps} apps, three kinds vs sends alone",
            k["three"],
            k["send"],
            KINDS_TARGET,
            f"{k['three']:.1f} s vs {k['send']:.1f} s: the APIs' budgets run side by side",
        )
    import money_bench

    report.start("money: the month's forecast against its real total (rhythm app, March 2026)")
    known, fresh = money_bench.worst_from(8)
    report.add(
        Figure(
            "forecast error, any hour from the 8th day, 4 weeks known",
            f"{known:.1%}",
            "<= 5%",
            f"deployed on the 1st: {fresh:.1%}; README's table: benchmarks/money_bench.py",
            known <= 0.05 and fresh <= 0.05,
        )
    )
    if not args.skip_heal:
        import heal_bench

        report.start("heal: receipt calls per app and run, from the stand-in's log (20 apps)")
        cost = heal_bench.cost_bench(20)
        report.add(
            Figure(
                "heal, receipt calls per app and run, a steady account",
                f"{cost['steady_max']:.0f}",
                "<= 3",
                "the hour, and one call over the 72 before it",
                cost["steady_max"] <= 3,
            )
        )
        report.add(
            Figure(
                "  two changed hours among the 72",
                f"{cost['two_changed_mean']:.1f}",
                "< 24",
                f"most for one app {cost['two_changed_max']:.0f}; each changed hour "
                "rewritten from an answer for it alone",
                cost["two_changed_mean"] < 24,
            )
        )
        report.add(
            Figure(
                "  receipts settling over 6 hours (the stand-in's model)",
                f"{cost['settling_mean']:.1f}",
                context=f"most for one app {cost['settling_max']:.0f}",
            )
        )
        for apps in (int(n) for n in args.heal_apps.split(",") if n):
            rate = args.heal_rate
            report.start(
                f"heal: a steady timer run over {apps} apps, 72 settle hours, three kinds, "
                f"stand-in at {rate:g} req/s per API"
            )
            h = heal_bench.scale_bench(apps, rate=rate, latency=1.5 / rate)
            report.ratio(
                f"timer run, {apps} apps, 72 settle hours, vs its busiest API's rate",
                h["took"],
                h["floor"],
                1.10,
                f"{h['took']:.1f} s vs {h['floor']:.0f} s for {h['calls']:.0f} receipt calls at "
                f"{rate:g} a second; the process's CPU {h['cpu']:.1f} s",
            )
    report.start("GET /dashboard, 5 apps x 31 days, COS stand-in at +20 ms a request")
    d = dashboard_bench()
    report.add(
        Figure(
            "dashboard 5x31 d, COS +20 ms, new container (rollups stored)",
            f"{d['new_container']:.2f} s",
            f"<= {DASHBOARD_TARGET_S:.1f} s",
            f"first view ever {d['first']:.1f} s in {d['first_views']:.0f} view(s) (reads every "
            "hour, writes the rollups; one that runs out of time keeps what it read); "
            f"warm container {d['warm']:.2f} s",
            d["new_container"] <= DASHBOARD_TARGET_S,
        )
    )
    report.start("deployment zip vs the monolithic SDK")
    sizes = zip_sizes()
    if sizes:
        mib = 2**20
        report.add(
            Figure(
                "deployment zip vs monolith SDK",
                f"{sizes['ours'] / sizes['monolith']:.2f}x",
                context=f"{sizes['ours'] / mib:.1f} MiB vs {sizes['monolith'] / mib:.1f} MiB "
                f"zipped; {sizes['ours_unzipped'] / mib:.0f} vs "
                f"{sizes['monolith_unzipped'] / mib:.0f} MiB unzipped",
            )
        )
    else:
        report.add(Figure("deployment zip", "n/a", context="run make package first"))
    report.print()
    return 0 if all(f.met is not False for f in report.figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
