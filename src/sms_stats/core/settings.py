"""Settings from the environment, over an optional bundled TOML file.

A plain pydantic model rather than pydantic-settings: that package adds about a third to the cold
start. Every problem is reported at once, naming the variable, the rule and the value (redacted
for secrets), so a misconfigured function fails its first invocation loudly instead of delivering
nothing quietly.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from sms_stats.core import redact
from sms_stats.core.errors import ConfigError
from sms_stats.core.records import KINDS
from sms_stats.core.redact import short
from sms_stats.core.values import APP_ID_RE, split_list
from sms_stats.core.windows import api_zone, zone

if TYPE_CHECKING:
    from decimal import Decimal

REGION_RE = re.compile(r"[a-z]+(-[a-z]+)+(-[0-9]+)?")
MIN_TOKEN_LENGTH = 16  # SMS_STATS_API_TOKEN: shorter ones are refused
MAX_PRICE = 100  # a part costs cents: more is a unit slip (a price per thousand)
MAX_BUDGET = 10**12  # billed parts a month; more is no budget an account has
CURRENCY_RE = re.compile(r"[A-Z]{3}")

# Environment variable -> field. The same names are the keys of the bundled TOML file.
ENV_FIELDS: dict[str, str] = {
    "TENCENTCLOUD_SECRETID": "secret_id",
    "TENCENTCLOUD_SECRETKEY": "secret_key",
    "TENCENTCLOUD_SESSIONTOKEN": "session_token",
    "SMS_STATS_REGION": "region",
    "SMS_STATS_APP_IDS": "app_ids",
    "SMS_STATS_ENDPOINT": "endpoint",
    "SMS_STATS_TIMEZONE": "timezone",
    "SMS_STATS_SINKS": "sinks",
    "SMS_STATS_WEBHOOK_SECRET": "webhook_secret",
    "SMS_STATS_API_TOKEN": "api_tokens",
    "SMS_STATS_HTTP_APP_IDS": "http_app_ids",
    "SMS_STATS_HTTP_BASE_PATH": "http_base_path",
    "SMS_STATS_ALLOW_ANONYMOUS": "allow_anonymous",
    "SMS_STATS_TIMEOUT": "timeout",
    "SMS_STATS_MAX_ATTEMPTS": "max_attempts",
    "SMS_STATS_RATE_LIMIT": "rate_limit",
    "SMS_STATS_CONCURRENCY": "concurrency",
    "SMS_STATS_MAX_SPAN_HOURS": "max_span_hours",
    "SMS_STATS_MAX_BACKFILL_HOURS": "max_backfill_hours",
    "SMS_STATS_MAX_APP_IDS": "max_app_ids",
    "SMS_STATS_MAX_BODY_BYTES": "max_body_bytes",
    "SMS_STATS_LOG_LEVEL": "log_level",
    "SMS_STATS_COLLECT": "collect",
    "SMS_STATS_SETTLE_HOURS": "settle_hours",
    "SMS_STATS_ALERTS": "alerts",
    "SMS_STATS_DIGEST_HOUR": "digest_hour",
    "SMS_STATS_BUDGETS": "budgets",
    "SMS_STATS_PRICE_PER_PART": "price_per_part",
    "SMS_STATS_CURRENCY": "currency",
}
# Keys of the settings file besides the variable names: `[[alerts]]` reads better than
# `[[SMS_STATS_ALERTS]]`.
FILE_KEYS = {"alerts": "SMS_STATS_ALERTS", "budgets": "SMS_STATS_BUDGETS"}
FIELD_ENV = {field: env for env, field in ENV_FIELDS.items()}
_LIST_FIELDS = {"app_ids", "sinks", "api_tokens", "http_app_ids", "collect"}
_SECRET_FIELDS = {"secret_id", "secret_key", "session_token", "webhook_secret", "api_tokens"}
CONFIG_FILE_ENV = "SMS_STATS_CONFIG"
DEFAULT_CONFIG_FILE = "sms_stats.toml"


class Settings(BaseModel):
    """What one invocation needs to know; immutable, so it can key the per-container caches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None
    session_token: SecretStr | None = None
    region: str = "ap-guangzhou"
    app_ids: tuple[str, ...] = ()
    endpoint: str | None = None
    timezone: str = "Asia/Shanghai"
    # Bot keys and webhook tokens live in these URLs: never in a repr (a traceback's locals,
    # a print); what is shown of a sink is its name (kind, host, hash).
    sinks: tuple[str, ...] = Field(default=(), repr=False)
    webhook_secret: SecretStr | None = None
    api_tokens: tuple[SecretStr, ...] = ()
    http_app_ids: tuple[str, ...] | None = None
    http_base_path: str = ""
    allow_anonymous: bool = False
    timeout: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=10)
    rate_limit: float = Field(default=10.0, gt=0, le=1000)
    concurrency: int = Field(default=4, ge=1, le=32)
    max_span_hours: int = Field(default=744, ge=1, le=24 * 366)
    max_backfill_hours: int = Field(default=24 * 366, ge=1, le=24 * 366 * 5)
    max_app_ids: int = Field(default=20, ge=1, le=1000)
    max_body_bytes: int = Field(default=65536, ge=256, le=6 * 1024 * 1024)
    log_level: str = "INFO"
    # Which statistics APIs a run collects; the hours before the timer's are healed: missing
    # ones fetched, changed receipts rewritten (0: only the last hour; at most 31 days).
    collect: tuple[str, ...] = KINDS
    settle_hours: int = Field(default=72, ge=0, le=744)
    # Alert rules (alerts.rules.Rule); None: the defaults, (): alerts off. Validated by the
    # alerts package, imported only when rules are given, so an HTTP query never loads it.
    alerts: tuple[Any, ...] | None = None
    digest_hour: int = Field(default=9, ge=0, le=23)
    # Monthly budgets in billed parts: (app id or "*", parts), sorted; a tuple so the settings
    # stay hashable (they key the per-container caches).
    budgets: tuple[tuple[str, int], ...] = ()
    # Per billed part, in `currency`; None: counts only. Kept as the decimal's text: `decimal`
    # is imported only where money is worked out (`price()`), not by every cold start.
    price_per_part: str | None = None
    currency: str = "CNY"

    @field_validator("budgets", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> Any:
        return parse_budgets(value)

    @field_validator("price_per_part", mode="before")
    @classmethod
    def _price(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"must be a decimal number like 0.045; got a {type(value).__name__}")
        from decimal import Decimal, InvalidOperation  # noqa: PLC0415 - only with a price set

        try:
            price = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(
                f"must be a decimal number like 0.045 (got {short(str(value))})"
            ) from None
        if not price.is_finite() or not 0 < price <= MAX_PRICE:
            raise ValueError(
                f"must be above 0 and at most {MAX_PRICE} a part (got {short(str(value))})"
            )
        return str(price)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not CURRENCY_RE.fullmatch(value):
            raise ValueError(f"must be a three-letter code like CNY or USD (got {short(value)})")
        return value

    def price(self) -> Decimal | None:
        """The price of one billed part, for money worked out exactly (never a float)."""
        if self.price_per_part is None:
            return None
        from decimal import Decimal  # noqa: PLC0415

        return Decimal(self.price_per_part)

    def budget_of(self, app_id: str) -> int | None:
        """The app's monthly budget in billed parts: its own, else the `"*"` one, else None."""
        found = dict(self.budgets)
        return found.get(app_id, found.get("*"))

    @field_validator("alerts", mode="before")
    @classmethod
    def _alerts(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from sms_stats.core.rules import parse_rules  # noqa: PLC0415

        return parse_rules(value)

    @field_validator("app_ids", "sinks", "api_tokens", "http_app_ids", "collect", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        """Long enough not to be guessed: the token opens /stats, /metrics and the dashboard
        from the internet. Never quoted: its position and length say which one is short."""
        for number, token in enumerate(value, 1):
            length = len(token.get_secret_value())
            if length < MIN_TOKEN_LENGTH:
                which = f"token {number} of {len(value)}" if len(value) > 1 else "the token"
                raise ValueError(
                    f"{which} is {length} character{'s' if length != 1 else ''} long; a token "
                    f"must have at least {MIN_TOKEN_LENGTH} (a short one can be guessed). "
                    "Make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return value

    @field_validator("collect")
    @classmethod
    def _kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        kinds = tuple(dict.fromkeys(item.lower() for item in value))
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(
                f"unknown kind {unknown[0][:40]!r}; use any of {', '.join(KINDS)}, comma-separated"
            )
        if not kinds:
            raise ValueError(f"names no kind; use any of {', '.join(KINDS)}")
        return kinds

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION_RE.fullmatch(value):
            raise ValueError("must be a region like ap-guangzhou")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if "://" not in value and "@" not in value:
            raise ValueError(
                f"must be scheme://host[:port]; got {value[:80]!r}, which has no scheme: "
                f"write http://{value[:80]} (or https://)"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be scheme://host[:port], like http://127.0.0.1:9000")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("must be only scheme://host[:port], with no path, query or user")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value.rstrip("/")

    @field_validator("http_base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        path = value.strip().rstrip("/")
        if not path:
            return ""
        segments = path.split("/")
        if segments[0] != "" or any(seg in ("", ".", "..") for seg in segments[1:]):
            raise ValueError("must be a path like /sms-stats: a leading /, no empty, . or .. parts")
        return path

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        """A name the API's hours can be named in: one that exists and never changes its UTC
        offset (the API's zone has no daylight saving; see `windows.api_zone`)."""
        api_zone(value)
        return value

    @field_validator("app_ids")
    @classmethod
    def _app_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [item for item in value if not APP_ID_RE.fullmatch(item)]
        if bad:
            shown = ", ".join(repr(item[:40]) for item in bad[:5])
            raise ValueError(
                f"{shown} {'is not an SmsSdkAppId' if len(bad) == 1 else 'are not SmsSdkAppIds'}"
                " ('1400' followed by 6 digits, like 1400006874; comma-separated)"
            )
        return tuple(dict.fromkeys(value))  # `A,B,A` is a slip: keep order, drop repeats

    @field_validator("http_app_ids")
    @classmethod
    def _http_app_ids(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for item in value:
            if item != "*" and not APP_ID_RE.fullmatch(item):
                raise ValueError(f"{item!r} is neither '*' nor an SmsSdkAppId like 1400006874")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        from sms_stats.core.signing import decode_whsec  # noqa: PLC0415 - only when a secret is set

        decode_whsec(value.get_secret_value())
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    def model_post_init(self, context: Any, /) -> None:
        """Every secret read is registered for scrubbing: an upstream that echoes a request
        (its headers, a signed URL) must not carry one into a log line, answer or error."""
        secrets = [self.secret_id, self.secret_key, self.session_token, *self.api_tokens]
        if self.webhook_secret is not None:
            whsec = self.webhook_secret.get_secret_value()
            redact.register(whsec, whsec.removeprefix("whsec_"))
        redact.register(*(s.get_secret_value() for s in secrets if s is not None))

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def http_allowlist(self) -> tuple[str, ...]:
        """App ids the HTTP entry may query; ('*',) means any."""
        return self.http_app_ids if self.http_app_ids is not None else self.app_ids

    def credentials(self) -> tuple[str, str, str | None]:
        """The SDK's (id, key, token), or a ConfigError telling the user what to set."""
        missing = [
            env
            for env, value in (
                ("TENCENTCLOUD_SECRETID", self.secret_id),
                ("TENCENTCLOUD_SECRETKEY", self.secret_key),
            )
            if value is None or not value.get_secret_value()
        ]
        if missing:
            if os.environ.get("SCF_FUNCTIONNAME") or os.environ.get("SCF_RUNTIME"):
                fix = (
                    "Bind an execution role to the function (SCF then injects "
                    "TENCENTCLOUD_SECRETID, TENCENTCLOUD_SECRETKEY and TENCENTCLOUD_SESSIONTOKEN)"
                )
            else:  # a laptop, a VM, CI: no role injects anything there
                fix = (
                    "Export a sub-account's API keys (TENCENTCLOUD_SECRETKEY too), or, to try "
                    "it with no Tencent account, the local stand-in's: `sms-stats emulator` "
                    "prints the export lines (its SecretId, SecretKey and SMS_STATS_ENDPOINT)"
                )
            raise ConfigError(f"missing credentials: {' and '.join(missing)} not set. {fix}")
        assert self.secret_id is not None
        assert self.secret_key is not None
        token = self.session_token.get_secret_value() if self.session_token else None
        return self.secret_id.get_secret_value(), self.secret_key.get_secret_value(), token or None


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    more_checks: Callable[[Settings], list[str]] | None = None,
) -> Settings:
    """Settings from the bundled TOML file (if any), overridden by the environment.

    `more_checks` finds what else is wrong with the fields that did validate (the sinks and
    credentials: `run.preflight.load` passes its own check), so that every problem is in the
    first message, not one per redeploy. It is passed in, not imported: the sinks stand above
    the settings they read."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for key, value in _read_config_file(env).items():
        raw[ENV_FIELDS[FILE_KEYS.get(key, key)]] = value
    for key, field in ENV_FIELDS.items():
        value = env.get(key)
        if value is not None and (value.strip() or field not in raw):
            raw[field] = value.strip()
    if not raw.get("region") and env.get("TENCENTCLOUD_REGION", "").strip():
        raw["region"] = env["TENCENTCLOUD_REGION"].strip()
    raw = {k: v for k, v in raw.items() if v != "" or k in _SECRET_FIELDS}
    # Registered before validation: a setting that fails still must not be echoed anywhere.
    tokens = split_list(raw.get("api_tokens")) or ()
    redact.register(*(raw.get(k) for k in _SECRET_FIELDS), *tokens)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = _describe(exc, raw)
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        if more_checks is not None:
            problems += _more_problems({k: v for k, v in raw.items() if k not in bad}, more_checks)
        raise ConfigError.of(problems, head="invalid settings: ") from None


def _more_problems(valid: dict[str, Any], checks: Callable[[Settings], list[str]]) -> list[str]:
    try:
        partial = Settings.model_validate(valid)
    except ValidationError:  # pragma: no cover - every failing field was left out
        return []
    return checks(partial)


def parse_budgets(value: Any) -> tuple[tuple[str, int], ...]:
    """`{"1400006874": 200000, "*": 50000}` (JSON text from the environment, or a TOML table)
    as sorted pairs; ValueError naming each bad entry."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"is not JSON ({exc.msg} at character {exc.pos}); give an object like "
                '{"1400006874": 200000, "*": 50000} (billed parts a month)'
            ) from None
    if isinstance(value, (tuple, list)) and all(isinstance(p, (tuple, list)) for p in value):
        value = dict(value)  # the settings' own form, read back
    if not isinstance(value, dict):
        raise ValueError(
            f'must be an object of app id (or "*") to billed parts a month; got a '
            f"{type(value).__name__}"
        )
    problems = []
    pairs = []
    for app_id, parts in value.items():
        if not isinstance(app_id, str) or (app_id != "*" and not APP_ID_RE.fullmatch(app_id)):
            problems.append(f'{short(str(app_id))} is not an SmsSdkAppId like 1400006874 or "*"')
        elif isinstance(parts, bool) or not isinstance(parts, int) or not 0 < parts <= MAX_BUDGET:
            problems.append(
                f"{app_id}: a budget is a whole number of billed parts from 1 to {MAX_BUDGET} "
                f"(got {short(str(parts))})"
            )
        else:
            pairs.append((app_id, parts))
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(sorted(pairs))


def bundled_config_file() -> Path:
    """Where `sms_stats.toml` is read from when SMS_STATS_CONFIG names no file: next to
    `index.py`, which is the zip's root in SCF (the package's parent) and the repository's
    root in a checkout (the parent of `src/`): one file, in one place, for both."""
    here = Path(__file__).resolve().parents[1]
    root = here.parent if here.name == "src" and (here.parent / "index.py").is_file() else here
    return root / DEFAULT_CONFIG_FILE


def _read_config_file(env: Mapping[str, str]) -> dict[str, Any]:
    explicit = env.get(CONFIG_FILE_ENV)
    path = Path(explicit) if explicit else bundled_config_file()
    if not path.is_file():
        if explicit:
            raise ConfigError(f"{CONFIG_FILE_ENV}: no such file: {explicit}")
        return {}
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415  # novermin - guarded by the version check
    else:
        import tomli as tomllib  # noqa: PLC0415
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file: {exc}") from None
    unknown = sorted(set(data) - set(ENV_FIELDS) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {', '.join(unknown)}; the keys are the environment "
            f"variable names: {', '.join(sorted(ENV_FIELDS))} (and [[alerts]])"
        )
    return data


# Values that may carry secrets in parts of them: sink URLs (bot keys, tokens) and an endpoint
# with user:password. Shown cut after the host, whatever their type.
_URL_FIELDS = {"sinks", "endpoint"}


def _shown(field: str, value: Any) -> str:
    if field in _SECRET_FIELDS:
        return "<redacted>"
    if field in _URL_FIELDS:
        items = split_list(value) if field == "sinks" else (value,)
        if isinstance(items, tuple):
            return repr([_cut(item) for item in items])
        return f"<a {type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _cut(item: Any) -> str:
    if not isinstance(item, str):
        return f"<a {type(item).__name__}>"
    parts = urlsplit(item)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/..." if parts.scheme and host else f"{parts.scheme or '?'}:..."


def _describe(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        env = FIELD_ENV.get(field, field)
        rule = error["msg"].removeprefix("Value error, ")
        if len(error["loc"]) > 1 and field in _LIST_FIELDS:
            rule = f"item {int(error['loc'][1]) + 1}: {rule}"
        if "got " in rule or field == "app_ids":  # the rule already quotes what is wrong
            problems.append(f"{env}: {rule}")
        else:
            problems.append(f"{env}: {rule} (got {_shown(field, raw.get(field))})")
    return problems
