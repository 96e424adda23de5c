#!/usr/bin/env python3
"""Check serverless.yml offline: nothing here can deploy, so this is what stands in for it.

    python scripts/check_serverless.py [serverless.yml]

1. The JSON Schema of the `scf` component's inputs (schemas/scf-component.schema.json, its
   sources cited inside), after resolving the framework's variables (`${name}`, `${stage}`,
   `${app}`, `${org}`, and `${env:NAME}` from this environment when set).
2. What a schema cannot see: `src` is the built package directory (`dist/package`, from
   `make package`) and holds the handler's file, defining the handler's function, for the
   configured runtime's language and Python version; environment variable names are not
   reserved, are ones the function reads, and all variables together stay within 4 KB, and the
   settings they spell are valid; each timer's cron has 7 fields in range and its argument is a
   valid job; trigger names are unique.

Each problem names its field (`inputs.memorySize: ...`). Exit status 1 when there is an error;
warnings (a value over the 128 bytes an older doc allows) are printed but pass. `${env:NAME}`
comes from this shell, else from the `.env` beside serverless.yml (as `scf deploy` reads it); an
unset one is an error, since the deployment would carry it empty.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "scf-component.schema.json"
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # the function's own settings and job models

RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_TOTAL_BYTES = 4096  # all variables together, names and values
ENV_VALUE_BYTES = 128  # one value, per an older SCF doc: a warning, not an error
TIMER_ARGUMENT_BYTES = 4096
PACKAGE_DIR = re.compile(r"dist/(py3\.\d+/)?package")
HANDLER_SUFFIX = {"Python": ".py", "Nodejs": ".js", "Php": ".php"}
CRON_FIELDS = (  # SCF timer cron: seconds first, then as classic cron, then the year
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
    ("year", 1970, 2099),
)
_VARIABLE = re.compile(r"\$\{(env:)?([A-Za-z0-9_.-]+)\}")
# What documentation writes where a value goes: `...`, `<a long random token>`, `<key>`.
PLACEHOLDER = re.compile(r"\.\.\.|<[^<>]{1,80}>")


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# -- variables -------------------------------------------------------------------------------


def resolve(doc: Any, environ: Mapping[str, str]) -> tuple[Any, set[str]]:
    """The document with `${...}` replaced as the framework would; also the unset env names."""
    unset: set[str] = set()
    top: dict[str, str] = {}

    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            is_env, name = match.group(1), match.group(2)
            if is_env:
                if name in environ:
                    return environ[name]
                unset.add(name)
                return match.group(0)
            return top.get(name, match.group(0))

        return _VARIABLE.sub(one, text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return substitute(value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        return value

    if isinstance(doc, dict):
        for key in ("org", "app", "stage", "name"):
            if isinstance(doc.get(key), str):
                top[key] = substitute(doc[key])
        top.setdefault("stage", "dev")  # the framework's defaults
        if "name" in top:
            top.setdefault("app", top["name"])
    return walk(doc), unset


# -- the schema ------------------------------------------------------------------------------


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_message(error: ValidationError) -> tuple[str, str]:
    path = field_path(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        name = error.instance
        if error.validator == "not":
            reason = f"the name is reserved ({', '.join(RESERVED_PREFIXES)} belong to SCF)"
        else:
            reason = f"the name must match {ENV_NAME.pattern}"
        return f"{path}.{name}", reason
    if error.validator == "not":
        comment = error.schema.get("not", {}).get("$comment", "not allowed")
        return path, f"{error.instance!r}: {comment}"
    if error.validator == "pattern" and isinstance(error.instance, str):
        hint = " (an unset ${env:...}?)" if "${" in error.instance else ""
        return path, f"{error.instance!r} does not match {error.schema['pattern']}{hint}"
    return path, error.message


def schema_errors(doc: Any, schema_path: Path = SCHEMA) -> list[tuple[str, str]]:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [_schema_message(error) for error in errors]


# -- what the schema cannot see --------------------------------------------------------------


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _defines(source: str, name: str) -> bool:
    """Whether a module binds `name` at top level (def, class, import or assignment)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return True
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            return True
    return False


def built_for(package: Path) -> dict[tuple[int, int], list[str]]:
    """CPython versions the package's compiled wheels were built for -> those wheels."""
    versions: dict[tuple[int, int], list[str]] = {}
    for wheel in sorted(package.glob("*.dist-info/WHEEL")):
        for line in wheel.read_text(encoding="utf-8").splitlines():
            match = re.fullmatch(r"Tag: cp(\d)(\d+)-cp\d+-\S+", line.strip())
            if match:
                key = (int(match.group(1)), int(match.group(2)))
                names = versions.setdefault(key, [])
                if wheel.parent.name.split("-")[0] not in names:
                    names.append(wheel.parent.name.split("-")[0])
    return versions


def _python_hint(package: Path) -> str:
    builds = sorted(built_for(package))
    return f"Python{builds[0][0]}.{builds[0][1]}" if len(builds) == 1 else "a Python runtime"


def check_package(inputs: dict[str, Any], base: Path) -> Iterator[tuple[str, str]]:
    src = inputs.get("src")
    if isinstance(src, dict):
        if "src" not in src:
            return  # code already in COS: nothing local to look at
        src = src["src"]
    if not isinstance(src, str):
        return
    base = base.absolute()
    package = Path(os.path.normpath(base / src))
    try:
        relative = package.relative_to(base).as_posix()
    except ValueError:
        relative = str(package)
    if not PACKAGE_DIR.fullmatch(relative):
        yield (
            "inputs.src",
            f"{src!r} is not the built package directory (./dist/package, written by "
            "`make package`); anything else ships the repository (tests, the emulator, dev "
            "tools) without the dependencies",
        )
        return
    if not package.is_dir():
        yield "inputs.src", f"{src!r} does not exist: run `make package` first"
        return
    handler, runtime = inputs.get("handler"), inputs.get("runtime")
    if not isinstance(handler, str) or "." not in handler or not isinstance(runtime, str):
        return
    module, function = handler.rsplit(".", 1)
    language = re.match(r"[A-Za-z]+", runtime)
    suffix = HANDLER_SUFFIX.get(language.group(0) if language else "")
    if suffix is None:  # Go, Java, CustomRuntime: no handler source file to look for
        if (package / f"{module}.py").is_file():
            yield (
                "inputs.runtime",
                f"{runtime} cannot run {module}.py: use {_python_hint(package)}",
            )
        return
    handler_file = package / f"{module}{suffix}"
    if not handler_file.is_file():
        present = sorted(s for s in HANDLER_SUFFIX.values() if (package / f"{module}{s}").is_file())
        if present:
            yield (
                "inputs.runtime",
                f"{runtime} runs {module}{suffix}, but the package holds "
                f"{', '.join(module + s for s in present)}"
                + (f": use {_python_hint(package)}" if ".py" in present else ""),
            )
        else:
            yield "inputs.handler", f"{handler}: {module}{suffix} is not in {relative}"
        return
    if suffix == ".py":
        if not _defines(handler_file.read_text(encoding="utf-8"), function):
            yield "inputs.handler", f"{handler}: {module}.py defines no {function}"
        wanted = re.fullmatch(r"Python(\d)\.(\d+)", runtime)
        builds = built_for(package)
        if wanted and builds:
            version = (int(wanted.group(1)), int(wanted.group(2)))
            if set(builds) != {version}:
                found = "; ".join(
                    f"CPython {major}.{minor} ({', '.join(names)})"
                    for (major, minor), names in sorted(builds.items())
                )
                yield (
                    "inputs.runtime",
                    f"{runtime}, but {relative} was built for {found}: rebuild with "
                    f"`scripts/package --python-version {version[0]}.{version[1]}` or change "
                    "the runtime",
                )


def _known_variables() -> set[str] | None:
    try:
        from sms_stats.core.settings import CONFIG_FILE_ENV, ENV_FIELDS  # noqa: PLC0415
    except ImportError:
        return None
    return {*ENV_FIELDS, CONFIG_FILE_ENV}


def check_environment(
    variables: dict[str, Any], raw_variables: dict[str, Any], report: Report
) -> Iterator[tuple[str, str]]:
    known = _known_variables()
    total = 0
    usable: dict[str, str] = {}
    for name, value in variables.items():
        text = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        total += len(str(name).encode()) + len(text.encode())
        where = f"inputs.environment.variables.{name}"
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            continue  # the schema said so
        if name.startswith(RESERVED_PREFIXES):
            continue  # the schema said so
        if known is not None and name.startswith("SMS_STATS_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            yield where, f"the function reads no such variable{hint}"
        raw = raw_variables.get(name)
        if isinstance(raw, str) and "${env:" in raw and "${env:" in text:
            continue  # unset here: nothing to size or validate
        placeholder = PLACEHOLDER.search(text)
        if placeholder:
            # README's own example (`key=...`, `<a long random token>`): deployed as it is, a
            # placeholder token would be the function's real one.
            yield (
                where,
                (
                    f"holds a placeholder ({placeholder.group(0)[:40]!r}): put the real value in "
                    ".env (or the shell) before deploying"
                ),
            )
            continue
        if len(text.encode()) > ENV_VALUE_BYTES:
            report.warnings.append(
                f"{where}: {len(text.encode())} bytes; an older SCF doc caps one value at "
                f"{ENV_VALUE_BYTES}: a long list belongs in a bundled sms_stats.toml"
            )
        usable[name] = text
    if total > ENV_TOTAL_BYTES:
        yield (
            "inputs.environment.variables",
            f"{total} bytes of names and values; SCF allows {ENV_TOTAL_BYTES} in all",
        )
    try:
        from sms_stats.core.errors import ConfigError  # noqa: PLC0415
        from sms_stats.run import preflight  # noqa: PLC0415
    except ImportError:
        return
    # The function's own checks, as its first timer run would make them (the timer is a
    # scheduled run: it needs a sink). Credentials come from the role at run time only.
    offline = {k: v for k, v in usable.items() if k.startswith("SMS_STATS_")}
    offline |= {"TENCENTCLOUD_SECRETID": "offline-check", "TENCENTCLOUD_SECRETKEY": "offline"}
    try:
        settings = preflight.load(offline)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = preflight.check(settings, scheduled=True)[1]
    for problem in problems:
        yield "inputs.environment.variables", f"the function would refuse them: {problem}"


def _cron_problem(expression: str) -> str | None:
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return (
            f"{expression!r} has {len(fields)} fields; SCF's cron has 7, seconds first: "
            "second minute hour day-of-month month day-of-week year (e.g. '0 5 * * * * *')"
        )
    for text, (label, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for number in re.findall(r"\d+", text):
            if "/" in text and text.split("/", 1)[1] == number:
                continue  # a step, not a value
            if not low <= int(number) <= high:
                return f"{expression!r}: {label} {number} is outside {low}..{high}"
    return None


def _job_problem(argument: str) -> str | None:
    """What the function would refuse in a timer's argument, read as the handler reads it: JSON
    structure is a seed request or a job, anything else is text and runs the settings' job."""
    if len(argument.encode()) > TIMER_ARGUMENT_BYTES:
        return f"{len(argument.encode())} bytes; a timer's argument holds {TIMER_ARGUMENT_BYTES}"
    message = argument.strip()
    if not message.startswith(("{", "[")):
        return None  # plain text: the timer runs the job from the settings
    try:
        from sms_stats.core.errors import InputError  # noqa: PLC0415
        from sms_stats.events.parse import parse_direct, parse_json_object  # noqa: PLC0415
    except ImportError:
        return None
    try:
        parse_direct(parse_json_object(message, "Message"), "Message")
    except InputError as exc:
        return f"not a valid job or request ({exc.message})"
    return None


def check_events(events: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(events, list):
        return
    names: dict[str, str] = {}
    for index, event in enumerate(events):
        if not isinstance(event, dict) or len(event) != 1:
            continue
        ((kind, body),) = event.items()
        where = f"inputs.events[{index}].{kind}"
        parameters = _dig(body, "parameters")
        if not isinstance(parameters, dict):
            continue
        name = parameters.get("name") or _dig(body, "name")
        if isinstance(name, str):
            if name in names:
                yield f"{where}.parameters.name", f"{name!r} is also {names[name]}"
            names.setdefault(name, where)
        if kind == "timer":
            cron = parameters.get("cronExpression")
            if isinstance(cron, str):
                problem = _cron_problem(cron)
                if problem:
                    yield f"{where}.parameters.cronExpression", problem
            argument = parameters.get("argument")
            if isinstance(argument, str):
                problem = _job_problem(argument)
                if problem:
                    yield f"{where}.parameters.argument", problem


def read_dotenv(path: Path) -> dict[str, str]:
    """`.env` as `scf deploy` reads it (dotenv): `NAME=value` lines, `export ` allowed, `#`
    comments, values optionally quoted; the shell's own variables win over the file's."""
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return found
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        found[name.strip()] = value
    return found


def check(
    path: Path, environ: Mapping[str, str] | None = None, schema_path: Path = SCHEMA
) -> Report:
    """`environ` None: this shell's variables over the `.env` beside the file, as `scf deploy`
    sees them."""
    report = Report()
    if environ is None:
        environ = {**read_dotenv(path.parent / ".env"), **os.environ}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        report.errors.append(f"{path}: cannot read it: {exc}")
        return report
    doc, unset = resolve(raw, environ)
    for name in sorted(unset):
        report.errors.append(
            f"${{env:{name}}} is set neither in this shell nor in {path.parent / '.env'}: "
            "`scf deploy` would deploy it empty; set it (an empty value means the default)"
        )
    found = schema_errors(doc, schema_path)
    inputs = _dig(doc, "inputs")
    semantic: list[tuple[str, str]] = []
    if isinstance(inputs, dict):
        semantic += check_package(inputs, path.parent)
        variables = _dig(inputs, "environment", "variables")
        raw_variables = _dig(raw, "inputs", "environment", "variables")
        if isinstance(variables, dict):
            semantic += check_environment(
                variables, raw_variables if isinstance(raw_variables, dict) else {}, report
            )
        semantic += check_events(inputs.get("events"))
    explained = {where for where, _ in semantic}
    found = [(where, why) for where, why in found if where not in explained]
    report.errors += [f"{where}: {why}" for where, why in found + semantic]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("config", nargs="?", type=Path, default=ROOT / "serverless.yml")
    parser.add_argument("--schema", type=Path, default=SCHEMA)
    args = parser.parse_args(argv)
    report = check(args.config, schema_path=args.schema)
    for warning in report.warnings:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"{args.config}: error: {error}", file=sys.stderr)
    if report.ok:
        print(f"{args.config}: ok")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
