"""Deployment: the zip `scripts/package` builds, and serverless.yml checked offline.

The package is built once per session (for this interpreter's Python version, so it can run
here), unzipped into an empty directory and run in an isolated interpreter (`-I -S`: no
site-packages, no PYTHONPATH, nothing but the stdlib and the zip) against the local SMS API
stand-in. serverless.yml is checked against the component schema and the built package, and
broken copies must fail naming the field.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from sms_stats.emulator import Emulator

from .conftest import API_TOKEN, APP_A, APP_B, SECRET_ID, SECRET_KEY, load_event, record_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_SCRIPT = ROOT / "scripts" / "package"
LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def load_script(path: Path, name: str) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


packaging_script = load_script(PACKAGE_SCRIPT, "sms_stats_scripts_package")
checker = load_script(ROOT / "scripts" / "check_serverless.py", "sms_stats_scripts_check")


def source_fingerprint() -> str:
    """What the package is built from: changes here between two builds explain a difference."""
    digest = hashlib.sha256()
    paths = [ROOT / "index.py", ROOT / "pyproject.toml", ROOT / "requirements" / "lock.txt"]
    paths += sorted((ROOT / "src" / "sms_stats").rglob("*.py"))
    for path in paths:
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Build:
    out_dir: Path
    output: str
    fingerprint: str

    @property
    def zip(self) -> Path:
        return self.out_dir / "sms-stats.zip"

    @property
    def package(self) -> Path:
        return self.out_dir / "package"


def build(out_dir: Path, python_version: str = LOCAL_PYTHON) -> Build:
    fingerprint = source_fingerprint()
    command = [sys.executable, str(PACKAGE_SCRIPT), "--python-version", python_version]
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    result = subprocess.run(
        [*command, "--out-dir", str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Build(out_dir, result.stdout, fingerprint)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return build(tmp_path_factory.mktemp("build") / "dist")


@pytest.fixture(scope="session")
def unzipped(built: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(built.zip) as archive:
        archive.extractall(target)
    return target


def zip_names(built: Build) -> list[str]:
    with zipfile.ZipFile(built.zip) as archive:
        return archive.namelist()


class TestZip:
    def test_given_build_when_listed_then_function_code_and_no_dev_material(
        self, built: Build
    ) -> None:
        names = zip_names(built)
        assert "index.py" in names
        assert "sms_stats/handler.py" in names
        assert "sms_stats/core/settings.py" in names
        assert not [n for n in names if n.startswith(("tests/", "sms_stats/emulator", "bin/"))]
        # `sms-stats serve` is for a laptop: neither its module nor its server is deployed.
        assert not [n for n in names if n.startswith(("sms_stats/web/serve", "waitress"))]
        assert not [n for n in names if "__pycache__/serve." in n]
        assert "sms_stats/web/http.py" in names  # the rest of its stage is deployed
        assert not [n for n in names if n.endswith(".pyo")]
        # Bytecode only where SCF's Python looks for it, for each module, and no other version's.
        pycs = [n for n in names if n.endswith(".pyc")]
        if LOCAL_PYTHON == "3.10":
            assert "sms_stats/__pycache__/handler.cpython-310.pyc" in pycs
        tag = f"cpython-{LOCAL_PYTHON.replace('.', '')}"
        assert all("__pycache__/" in n and n.endswith(f".{tag}.pyc") for n in pycs)
        sources = set(names)
        for pyc in pycs:
            module = pyc.replace("__pycache__/", "").replace(f".{tag}.pyc", ".py")
            assert module in sources, pyc
        assert not [n for n in names if n.startswith(("scripts/", "src/", ".venv/", "benchmarks/"))]
        assert not [n for n in names if n.split("/")[0] in ("pytest", "mypy", "hypothesis", "ruff")]

    def test_given_build_when_listed_then_entries_sorted_with_fixed_time_and_modes(
        self, built: Build
    ) -> None:
        with zipfile.ZipFile(built.zip) as archive:
            infos = archive.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {(i.external_attr >> 16) for i in infos}
        assert modes == {0o100644, 0o40755}

    def test_given_build_when_dists_read_then_each_is_the_locked_version(
        self, built: Build
    ) -> None:
        lock = packaging_script.read_lock()
        dists = packaging_script.installed_dists(built.package)
        assert dists, "no *.dist-info in the package"
        assert {name: d.version for name, d in dists.items()} == {
            name: lock[name] for name in dists
        }
        # The COS extra made it in, at the locked 1.9.x (not pip's silent 1.8.3 fallback).
        assert dists["cos-python-sdk-v5"].version == lock["cos-python-sdk-v5"]
        assert dists["crcmod"].version == lock["crcmod"]
        assert dists["crcmod"].tags == ["py3-none-any"]
        assert not list((built.package / "crcmod").glob("*.so"))

    def test_given_build_when_it_ran_then_it_reported_the_size_and_largest_entries(
        self, built: Build
    ) -> None:
        size = built.zip.stat().st_size
        assert f"{size:,} bytes" in built.output
        assert "MiB" in built.output
        assert "pydantic_core" in built.output.split("largest top-level entries", 1)[1]

    def test_given_same_sources_when_built_twice_then_zips_are_byte_identical(
        self, built: Build, tmp_path: Path
    ) -> None:
        again = build(tmp_path / "dist")
        if again.fingerprint != built.fingerprint:
            pytest.skip("the sources changed between the two builds")
        first = hashlib.sha256(built.zip.read_bytes()).hexdigest()
        assert hashlib.sha256(again.zip.read_bytes()).hexdigest() == first


class TestLockCheck:
    def test_given_lock_with_other_version_when_checked_then_the_dist_is_named(
        self, built: Build
    ) -> None:
        lock = packaging_script.read_lock()
        dists = packaging_script.installed_dists(built.package)
        top = packaging_script.runtime_requirements(LOCAL_PYTHON)
        assert packaging_script.check_against_lock(dists, lock, top, LOCAL_PYTHON) == []

        drifted = {**lock, "pydantic": "2.0.0"}
        problems = packaging_script.check_against_lock(dists, drifted, top, LOCAL_PYTHON)
        assert any(p.startswith("pydantic ") and "pins 2.0.0" in p for p in problems)

        missing = {k: v for k, v in dists.items() if k != "crcmod"}
        problems = packaging_script.check_against_lock(missing, lock, top, LOCAL_PYTHON)
        assert any("crcmod==1.7 is required by cos-python-sdk-v5" in p for p in problems)

    def test_given_wheel_for_another_python_when_checked_then_it_is_named(self) -> None:
        dist = packaging_script.Dist(
            name="pydantic-core",
            version="2.50.5",
            tags=["cp311-cp311-manylinux_2_17_x86_64"],
        )
        problems = packaging_script.check_tags({"pydantic-core": dist}, "3.10")
        assert len(problems) == 1
        assert "pydantic-core" in problems[0]
        pure = packaging_script.Dist(name="six", version="1.17.0", tags=["py2-none-any"])
        assert packaging_script.check_tags({"six": pure}, "3.10") != []

    def test_given_no_crcmod_wheel_when_installing_then_pip_failure_names_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "empty").mkdir()
        with pytest.raises(packaging_script.BuildError, match=r"no usable wheel for: crcmod==1\.7"):
            packaging_script.install_dependencies(
                tmp_path / "target", LOCAL_PYTHON, tmp_path / "empty"
            )
        assert "cos-python-sdk-v5" in capsys.readouterr().err

    def test_given_wrong_sdist_when_wheel_built_then_checksum_error(self, tmp_path: Path) -> None:
        fake = tmp_path / "crcmod-1.7.tar.gz"
        fake.write_bytes(b"not the sdist")
        with pytest.raises(packaging_script.BuildError, match="sha256"):
            packaging_script.crcmod_wheel_from_sdist(fake, tmp_path / "wheels")


SMOKE = r"""
import importlib.util, json, sys, sysconfig
package = sys.argv[1]
sys.path.insert(0, package)
import index
context = {"request_id": "smoke", "function_name": "sms-stats", "time_limit_in_ms": 60000}
out = {name: index.main_handler(json.loads(event), context)
       for name, event in zip(("timer", "http"), sys.argv[2:4])}
import crcmod.crcmod, qcloud_cos
crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
out["foreign_modules"] = sorted(
    f for f in files if f and not f.startswith((package, *stdlib)))
out["site_packages_on_path"] = [p for p in sys.path if "site-packages" in p]
out["emulator_found"] = importlib.util.find_spec("sms_stats.emulator") is not None
out["serve_found"] = importlib.util.find_spec("sms_stats.web.serve") is not None
out["waitress_found"] = importlib.util.find_spec("waitress") is not None
import contextlib, io
from sms_stats import cli
said = io.StringIO()
with contextlib.redirect_stderr(said):
    out["serve_exit"] = cli.main(["serve", "--port", "0"])
out["serve_said"] = said.getvalue()
out["crcmod_extension"] = sys.modules["crcmod.crcmod"]._usingExtension
out["crc64"] = crc64(b"123456789")
out["sms_stats_file"] = sys.modules["sms_stats"].__file__
print("RESULT:" + json.dumps(out, default=str))
"""


class TestSmoke:
    def test_given_unzipped_package_when_run_isolated_then_timer_and_http_work(
        self, unzipped: Path, emulator: Emulator, tmp_path: Path
    ) -> None:
        store = tmp_path / "store"
        emulator.clear_faults()
        env = {
            "PATH": "/usr/bin:/bin",
            "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "SMS_STATS_ENDPOINT": emulator.endpoint,
            "SMS_STATS_APP_IDS": f"{APP_A},{APP_B}",
            "SMS_STATS_SINKS": f"file://{store}",
            "SMS_STATS_TIMEZONE": "Asia/Shanghai",
            "SMS_STATS_API_TOKEN": API_TOKEN,
            "SMS_STATS_LOG_LEVEL": "ERROR",
            "SMS_STATS_SETTLE_HOURS": "6",
        }
        events = [
            json.dumps(load_event("timer.json")),
            json.dumps(load_event("function_url_get.json")),
        ]
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", SMOKE, str(unzipped), *events],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT:"))
        out: dict[str, Any] = json.loads(line.removeprefix("RESULT:"))

        # Only the zip and the stdlib were imported.
        assert out["sms_stats_file"].startswith(str(unzipped))
        assert out["foreign_modules"] == []
        assert out["site_packages_on_path"] == []
        assert out["emulator_found"] is False
        # `sms-stats serve` from the zip says how to get it, and nothing more.
        assert out["serve_found"] is False
        assert out["waitress_found"] is False
        assert out["serve_exit"] == 1
        assert "pip install 'sms-stats[serve]'" in out["serve_said"]
        assert "Traceback" not in out["serve_said"]

        # The timer run wrote the last full hour of each app and healed the six before it
        # (and the HTTP GET its hour), with the counts the stand-in answers; receipts of the
        # same seven hours, and a balance, for each app: all three kinds, from inside the zip.
        assert out["timer"]["ok"] is True
        assert out["timer"]["heal"]["apps"] == 2
        files = record_files(store)
        sends = [name for name in files if name.startswith("app=")]
        hours = [f"20210501{h:02d}" for h in range(6, 13)]
        assert sends == [
            *(f"app={APP_A}/dt=2021-05-01/{h}-{h}.json" for h in [*hours, "2021050113"]),
            *(f"app={APP_B}/dt=2021-05-01/{h}-{h}.json" for h in hours),
        ]
        for app in (APP_A, APP_B):
            assert sum(name.startswith(f"callback/app={app}/") for name in files) == 7
            assert sum(name.startswith(f"packages/app={app}/") for name in files) == 1
        for path in (store / name for name in sends):
            record = json.loads(path.read_text(encoding="utf-8"))
            expected = Emulator.expected(
                record["sms_sdk_app_id"], record["begin_time"], record["end_time"]
            )
            assert record["request_count"] == expected["RequestCount"]
            assert record["request_success_count"] == expected["RequestSuccessCount"]
            assert record["fee_count"] == expected["FeeCount"]

        # The HTTP entry answered from inside the zip too.
        assert out["http"]["statusCode"] == 200, out["http"]["body"]
        (record,) = json.loads(out["http"]["body"])["records"]
        assert (
            record["request_count"]
            == Emulator.expected(APP_A, "2021050113", "2021050113")["RequestCount"]
        )

        # COS's CRC-64 through crcmod's pure-Python fallback equals the C extension's answer.
        import crcmod

        reference = crcmod.mkCrcFun(
            0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True
        )(b"123456789")
        assert out["crcmod_extension"] is False
        assert out["crc64"] == reference


# -- serverless.yml ---------------------------------------------------------------------------

DEPLOY_ENV = {
    "SMS_STATS_APP_IDS": f"{APP_A},{APP_B}",
    "SMS_STATS_SINKS": "cos://sms-stats-1250000000/sms-stats?region=ap-guangzhou",
    "SMS_STATS_WEBHOOK_SECRET": "",
    "SMS_STATS_API_TOKEN": "deploy-token-61c7f0a2",
    "SMS_STATS_HTTP_APP_IDS": "",
}


@pytest.fixture(scope="session")
def scf_package(built: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package for serverless.yml's runtime (Python3.10): the session's build when this
    interpreter is 3.10, else one more build."""
    if LOCAL_PYTHON == "3.10":
        return built.package
    return build(tmp_path_factory.mktemp("build310") / "dist", "3.10").package


@pytest.fixture
def deploy_dir(scf_package: Path, tmp_path: Path) -> Path:
    """A copy of serverless.yml beside a dist/package for its runtime."""
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "package").symlink_to(scf_package, target_is_directory=True)
    return tmp_path


def write_config(directory: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    doc = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    if change is not None:
        change(doc)
    path = directory / "serverless.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def timer(doc: dict[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = doc["inputs"]["events"][0]["timer"]["parameters"]
    return parameters


def variables(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["inputs"]["environment"]["variables"]
    return found


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    "argument",
    [
        "",
        "hourly",
        '{"app_ids": ["1400006874"], "window": "day", "lookback": 2}',
        '{"SmsSdkAppId": "1400006874", "BeginTime": "2021050100", "EndTime": "2021050123"}',
    ],
)
def test_given_a_timer_argument_the_function_runs_when_checked_then_no_problem(
    argument: str,
) -> None:
    assert checker._job_problem(argument) is None


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        ('{"window": "week"}', "window"),
        ('{"SmsSdkAppId": "1400006874", "BeginTime": "x", "EndTime": "y", "Limit": 5}', "Limit"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_given_a_timer_argument_the_function_refuses_when_checked_then_its_message(
    argument: str, problem: str
) -> None:
    found = checker._job_problem(argument)
    assert found is not None
    assert found.startswith("not a valid job or request")
    assert problem in found


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("node runtime", _set("inputs", "runtime", value="Nodejs12.16"), r"inputs\.runtime: "),
    ("unknown runtime", _set("inputs", "runtime", value="Python3.12"), r"inputs\.runtime: "),
    ("older python", _set("inputs", "runtime", value="Python3.9"), r"inputs\.runtime: .*3\.9"),
    ("memory 100", _set("inputs", "memorySize", value=100), r"inputs\.memorySize: 100"),
    ("memory 4096", _set("inputs", "memorySize", value=4096), r"inputs\.memorySize: 4096"),
    ("timeout 1000", _set("inputs", "timeout", value=1000), r"inputs\.timeout: 1000"),
    ("timeout 0", _set("inputs", "timeout", value=0), r"inputs\.timeout: 0"),
    (
        "cron with 5 fields",
        lambda d: timer(d).update(cronExpression="5 * * * *"),
        r"inputs\.events\[0\]\.timer\.parameters\.cronExpression: .*5 fields",
    ),
    (
        "cron minute 65",
        lambda d: timer(d).update(cronExpression="0 65 * * * * *"),
        r"cronExpression: .*minute 65",
    ),
    (
        "bad job in argument",
        lambda d: timer(d).update(argument='{"window": "week"}'),
        r"inputs\.events\[0\]\.timer\.parameters\.argument: not a valid job",
    ),
    (
        "reserved env name",
        lambda d: variables(d).update(SCF_REGION="x"),
        r"inputs\.environment\.variables\.SCF_REGION: the name is reserved",
    ),
    (
        "tencentcloud env name",
        lambda d: variables(d).update(TENCENTCLOUD_SECRETKEY="x"),
        r"variables\.TENCENTCLOUD_SECRETKEY: the name is reserved",
    ),
    (
        "malformed env name",
        lambda d: variables(d).update({"SMS-STATS": "x"}),
        r"variables\.SMS-STATS: the name must match",
    ),
    (
        "misspelt env name",
        lambda d: variables(d).update(SMS_STATS_APPIDS="1400006874"),
        r"variables\.SMS_STATS_APPIDS: .*did you mean SMS_STATS_APP_IDS",
    ),
    (
        "over 4 KB of variables",
        lambda d: variables(d).update({f"EXTRA_{i}": "x" * 120 for i in range(40)}),
        r"inputs\.environment\.variables: \d+ bytes .*4096",
    ),
    (
        "invalid setting",
        lambda d: variables(d).update(SMS_STATS_TIMEZONE="Mars/Olympus"),
        r"inputs\.environment\.variables: .*SMS_STATS_TIMEZONE",
    ),
    ("repository root as src", _set("inputs", "src", value="./"), r"inputs\.src: '\./' is not"),
    ("missing handler file", _set("inputs", "handler", value="main.main_handler"), "main.py"),
    (
        "missing handler function",
        _set("inputs", "handler", value="index.handle_it"),
        r"inputs\.handler: .*defines no handle_it",
    ),
    (
        "misspelt input",
        lambda d: d["inputs"].update(memorysize=d["inputs"].pop("memorySize")),
        r"inputs: .*'memorysize' was unexpected",
    ),
    (
        "closed function url",
        lambda d: d["inputs"]["events"][1]["http"]["parameters"]["netConfig"].update(
            enableExtranet=False
        ),
        r"inputs\.events\[1\]\.http\.parameters\.netConfig: ",
    ),
]


class TestServerlessYml:
    def test_given_schema_when_checked_then_it_is_valid_draft_2020_12(self) -> None:
        Draft202012Validator.check_schema(
            json.loads((ROOT / "schemas" / "scf-component.schema.json").read_text("utf-8"))
        )

    def test_given_serverless_yml_and_built_package_when_checked_then_ok(
        self, deploy_dir: Path
    ) -> None:
        config = deploy_dir / "serverless.yml"
        config.write_text((ROOT / "serverless.yml").read_text("utf-8"), encoding="utf-8")
        report = checker.check(config, environ=DEPLOY_ENV)
        assert report.errors == []
        assert report.warnings == []

    def test_given_serverless_yml_when_read_then_it_is_the_deployment_the_contract_needs(
        self,
    ) -> None:
        doc = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
        inputs = doc["inputs"]
        assert doc["component"] == "scf"
        assert inputs["src"] == "./dist/package"
        assert (inputs["handler"], inputs["runtime"]) == ("index.main_handler", "Python3.10")
        kinds = [next(iter(event)) for event in inputs["events"]]
        assert kinds == ["timer", "http"]
        assert timer(doc)["cronExpression"] == "0 5 * * * * *"
        assert inputs["events"][1]["http"]["parameters"]["authType"] == "NONE"
        secrets = ("SMS_STATS_SINKS", "SMS_STATS_API_TOKEN", "SMS_STATS_WEBHOOK_SECRET")
        for name in secrets:
            assert variables(doc)[name] == f"${{env:{name}}}", name

    def test_given_unset_env_references_when_checked_then_each_is_an_error(
        self, deploy_dir: Path
    ) -> None:
        report = checker.check(write_config(deploy_dir), environ={})
        assert not report.ok
        assert any(e.startswith("${env:SMS_STATS_API_TOKEN} is set neither") for e in report.errors)

    def test_given_dotenv_beside_the_file_when_run_as_a_script_then_read_as_scf_deploy_does(
        self, deploy_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for name in DEPLOY_ENV:
            monkeypatch.delenv(name, raising=False)
        config = write_config(deploy_dir)
        lines = [f"{k}={v}" for k, v in DEPLOY_ENV.items() if k != "SMS_STATS_API_TOKEN"]
        lines += ["# the token", 'export SMS_STATS_API_TOKEN="deploy-token-61c7f0a2"']
        (deploy_dir / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert checker.main([str(config)]) == 0, capsys.readouterr().err
        assert capsys.readouterr().err == ""

    def test_given_readmes_env_as_printed_when_checked_then_each_placeholder_refused(
        self, deploy_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Issue 25: README's `.env`, pasted as it is, passed the check, and would have
        deployed `<a long random token>` as the function's token."""
        for name in DEPLOY_ENV:
            monkeypatch.delenv(name, raising=False)
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        dotenv = readme.split("cat > .env <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
        config = write_config(deploy_dir)
        (deploy_dir / ".env").write_text(dotenv + "\n", encoding="utf-8")
        report = checker.check(config)
        placeholders = [e for e in report.errors if "holds a placeholder" in e]
        assert [e.split(":")[0] for e in placeholders] == [
            "inputs.environment.variables.SMS_STATS_SINKS",
            "inputs.environment.variables.SMS_STATS_API_TOKEN",
        ]
        # The same with real values of real lengths passes, within 128 bytes a value.
        key = "693a91f6-7a1c-4bc4-97a0-0ec2f1a5aaa9"  # a WeCom robot key's shape
        token = "Xb3k9q_Zr8VtP2mW5nL0cY7hJ4dF6sA1eG9uI3oK2pQ"  # token_urlsafe(32)'s length
        real = dotenv.replace("key=...", f"key={key}").replace("<a long random token>", token)
        (deploy_dir / ".env").write_text(real + "\n", encoding="utf-8")
        report = checker.check(config)
        assert report.errors == []
        assert report.warnings == []

    @pytest.mark.parametrize(
        ("sinks", "words"),
        [
            ("ftp://x", "unknown sink scheme 'ftp'"),
            ("out", "for a directory write file:out"),
            ("", "a scheduled run needs somewhere to put its records"),
        ],
    )
    def test_given_sinks_the_function_would_refuse_when_checked_then_error(
        self, deploy_dir: Path, sinks: str, words: str
    ) -> None:
        report = checker.check(
            write_config(deploy_dir), environ={**DEPLOY_ENV, "SMS_STATS_SINKS": sinks}
        )
        assert any(words in error for error in report.errors), report.errors

    def test_given_sinks_with_notify_when_checked_then_ok_and_an_unknown_value_is_an_error(
        self, deploy_dir: Path
    ) -> None:
        """`?notify=records,alerts` in the variable: its commas are the list's too."""
        cos = "cos://sms-stats-1250000000/sms-stats?region=ap-guangzhou&notify=records,alerts"
        sinks = f"{cos},https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K&notify=digest"
        config = write_config(deploy_dir)
        report = checker.check(config, environ={**DEPLOY_ENV, "SMS_STATS_SINKS": sinks})
        assert report.errors == []
        wrong = checker.check(config, environ={**DEPLOY_ENV, "SMS_STATS_SINKS": f"{cos},alert"})
        assert any("notify: unknown 'alert'" in error for error in wrong.errors), wrong.errors

    @pytest.mark.parametrize(
        ("change", "expected"),
        [pytest.param(change, expected, id=label) for label, change, expected in BROKEN],
    )
    def test_given_broken_copy_when_checked_then_the_field_is_named(
        self,
        deploy_dir: Path,
        change: Callable[[dict[str, Any]], None],
        expected: str,
    ) -> None:
        report = checker.check(write_config(deploy_dir, change), environ=DEPLOY_ENV)
        assert not report.ok
        assert any(re.search(expected, error) for error in report.errors), report.errors

    def test_given_no_built_package_when_checked_then_it_says_to_build(
        self, tmp_path: Path
    ) -> None:
        report = checker.check(write_config(tmp_path), environ=DEPLOY_ENV)
        assert report.errors == [
            "inputs.src: './dist/package' does not exist: run `make package` first"
        ]

    def test_given_broken_copy_when_run_as_a_script_then_exit_1_naming_the_field(
        self, deploy_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = write_config(deploy_dir, _set("inputs", "memorySize", value=100))
        assert checker.main([str(config)]) == 1
        assert "error: inputs.memorySize: 100" in capsys.readouterr().err
