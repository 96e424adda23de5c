"""Alert rules: which metric, which threshold, for which apps, how long before firing.

Rules come from `[[alerts]]` in the settings file or `SMS_STATS_ALERTS` (a JSON list of the same
objects), and are validated with the settings, at startup, with the same kind of message: the
rule, the field, what is wrong and the value. With none configured the contract's defaults
apply, so a new deployment alerts sensibly; `SMS_STATS_ALERTS=[]` turns alerts off.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sms_stats.core.values import APP_ID_RE, split_list

Source = Literal["send", "callback", "packages"]


class Metric(NamedTuple):
    """What a metric reads, its range, and which count is its volume (for `min_volume`)."""

    source: Source
    low: float
    high: float | None  # None: no upper bound
    volume: str | None  # the record's count a `min_volume` compares with; None: not volume-gated
    rate: bool = False  # shown as a percentage


_SHARE = Metric("callback", 0.0, 1.0, "callback_count", rate=True)
METRICS: dict[str, Metric] = {
    "success_rate": Metric("send", 0.0, 1.0, "request_count", rate=True),
    "delivery_rate": Metric("callback", 0.0, 1.0, "callback_count", rate=True),
    "request_count": Metric("send", 0.0, None, "request_count"),
    "fee_count": Metric("send", 0.0, None, "request_count"),
    "black_list_share": _SHARE,
    "frequency_limit_share": _SHARE,
    "invalid_number_share": _SHARE,
    "shutdown_error_share": _SHARE,
    "internal_error_share": _SHARE,
    "package_remaining": Metric("packages", 0.0, None, None),
    "package_runway_days": Metric("packages", 0.0, None, None),
    "package_expiry_days": Metric("packages", 0.0, None, None),
    # Money and fraud: judged with each app's newest hour of sends, from its hour history.
    "month_to_date_fee_count": Metric("send", 0.0, None, None),
    "month_forecast_fee_count": Metric("send", 0.0, None, None),
    "budget_forecast_ratio": Metric("send", 0.0, None, None),
    "volume_ratio": Metric("send", 0.0, None, "request_count"),
    "package_unused_at_expiry": Metric("packages", 0.0, None, None),
}
# The default surge rule: the ordinary daily and weekly rhythm stays within ~1.3x of the same
# hour's usual volume (tests/test_money.py, 28 days of an office rhythm); SMS pumping is a
# multiple. Hours under SURGE_MIN_VOLUME requests are not judged (a quiet night's 40 against
# a usual 8 is no incident).
SURGE_RATIO = 4.0
SURGE_MIN_VOLUME = 200


class Rule(BaseModel):
    """One rule. `name` defaults to `<metric> below|above <threshold>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="", max_length=120)
    metric: str
    below: float | None = None
    above: float | None = None
    min_volume: int = Field(default=0, ge=0)
    for_hours: int = Field(default=1, ge=1, le=168)
    app_ids: tuple[str, ...] | None = None
    repeat_hours: int = Field(default=24, ge=0, le=24 * 30)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(
                f"unknown metric (got {value[:40]!r}); use one of {', '.join(METRICS)}"
            )
        return value

    @field_validator("app_ids", mode="before")
    @classmethod
    def _app_ids(cls, value: Any) -> Any:
        value = split_list(value)
        if isinstance(value, tuple):
            for item in value:
                if not isinstance(item, str) or not APP_ID_RE.fullmatch(item):
                    raise ValueError(f"{str(item)[:40]!r} is not an SmsSdkAppId like 1400006874")
        return value

    @model_validator(mode="after")
    def _threshold(self) -> Rule:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below or above")
        metric = METRICS[self.metric]
        value = self.threshold
        above_high = metric.high is not None and value > metric.high
        if math.isnan(value) or value < metric.low or above_high:
            span = f"{metric.low:g}..{metric.high:g}" if metric.high is not None else ">= 0"
            side = "below" if self.below is not None else "above"
            raise ValueError(f"{side}: {self.metric} is {span}; got {value:g}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.metric} {self.condition} {value:g}")
        return self

    @property
    def condition(self) -> Literal["below", "above"]:
        return "below" if self.below is not None else "above"

    @property
    def threshold(self) -> float:
        value = self.below if self.below is not None else self.above
        assert value is not None
        return value

    @property
    def source(self) -> Source:
        return METRICS[self.metric].source

    @property
    def ident(self) -> str:
        """A short stable id of what the rule judges (not its name, which is free text, nor
        repeat_hours): the alert state and notice ids are keyed by it, so renaming a rule or
        changing its repeat keeps its state, and a new threshold is a new alert."""
        what = [self.metric, self.condition, self.threshold, self.min_volume, self.for_hours]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:10]

    def applies_to(self, app_id: str) -> bool:
        return self.app_ids is None or app_id in self.app_ids

    def is_bad(self, value: float | None) -> bool:
        """Whether a judged value breaks the rule. None is an unbounded value (a runway with
        no usage): above every threshold."""
        if value is None:
            return self.above is not None
        return value < self.threshold if self.below is not None else value > self.threshold


def default_rules(budgets: tuple[tuple[str, int], ...] = ()) -> tuple[Rule, ...]:
    """The contract's rules when none are configured; the budget rule for the apps that have a
    budget (every app, with a `"*"` one)."""
    rules = [
        Rule(name="delivery rate low", metric="delivery_rate", below=0.90, min_volume=50),
        Rule(name="success rate low", metric="success_rate", below=0.95, min_volume=50),
        Rule(name="package runs out soon", metric="package_runway_days", below=7),
        Rule(
            name="volume surge",
            metric="volume_ratio",
            above=SURGE_RATIO,
            min_volume=SURGE_MIN_VOLUME,
        ),
        Rule(name="package expires unused", metric="package_unused_at_expiry", above=0),
    ]
    if budgets:
        apps = None if any(app == "*" for app, _ in budgets) else tuple(a for a, _ in budgets)
        rules.append(
            Rule(name="month over budget", metric="budget_forecast_ratio", above=1.0, app_ids=apps)
        )
    return tuple(rules)


def parse_rules(value: Any) -> tuple[Rule, ...] | None:
    """Rules from TOML (a list of tables) or the environment (JSON text). None: not set, the
    defaults apply; (): alerts off. ValueError naming each problem: `rule 2 (name): field:
    rule (got value)`."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"is not JSON ({exc.msg} at character {exc.pos}); give a list like "
                '[{"metric": "delivery_rate", "below": 0.9, "min_volume": 50}]'
            ) from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of rules; got a {type(value).__name__}")
    rules: list[Rule] = []
    problems: list[str] = []
    for index, item in enumerate(value, 1):
        label = f"rule {index}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name'][:40]})"
        if not isinstance(item, dict):
            problems.append(f"{label}: must be an object; got a {type(item).__name__}")
            continue
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"])
                rule = error["msg"].removeprefix("Value error, ")
                got = ""
                if "got " not in rule and error["loc"]:
                    got = f" (got {str(error.get('input'))[:40]!r})"
                problems.append(f"{label}: {where + ': ' if where else ''}{rule}{got}")
    names = [rule.name for rule in rules]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"two rules are named {repeated[0]!r}; give each its own name")
    for later, this in enumerate(rules):
        for earlier, other in enumerate(rules[:later]):
            if this.ident == other.ident and _overlap(this, other):
                problems.append(
                    f"rule {later + 1} judges the same as rule {earlier + 1} for the same apps "
                    "(metric, threshold, min_volume, for_hours): drop one, or give each its apps"
                )
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(rules)


def _overlap(one: Rule, two: Rule) -> bool:
    if one.app_ids is None or two.app_ids is None:
        return True
    return bool(set(one.app_ids) & set(two.app_ids))


def rules_in_force(
    configured: tuple[Rule, ...] | None, budgets: tuple[tuple[str, int], ...] = ()
) -> tuple[Rule, ...]:
    return default_rules(budgets) if configured is None else configured
