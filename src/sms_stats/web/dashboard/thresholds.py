"""Where an alert would fire, drawn on the chart of the metric it judges.

The rules in force (`settings.alerts`, or the defaults) that apply to an app and judge a metric
a chart draws: success and delivery rates on the rates chart, requests and billed parts on the
volume chart, messages left on the balance chart. Rules judge hours; a daily volume is a day's
sum, so an hourly count threshold is not drawn on it (the caption says so); a daily rate is
still a rate, so its thresholds stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sms_stats.core.rules import Rule
from sms_stats.web.dashboard.charts import Threshold

# metric -> (chart, index of the line it is drawn beside, whether it is a rate)
CHARTED = {
    "request_count": ("volume", 0, False),
    "fee_count": ("volume", 1, False),
    "success_rate": ("rates", 0, True),
    "delivery_rate": ("rates", 1, True),
    "package_remaining": ("balance", 0, False),
}


@dataclass
class Drawn:
    """The thresholds of one app's charts, and what was left undrawn and why."""

    by_chart: dict[str, list[Threshold]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def of(self, chart: str) -> list[Threshold]:
        return self.by_chart.get(chart, [])


def for_app(rules: Sequence[Rule], app_id: str, *, daily: bool) -> Drawn:
    drawn = Drawn()
    for rule in rules:
        if rule.metric not in CHARTED or not rule.applies_to(app_id):
            continue
        chart, line, rate = CHARTED[rule.metric]
        if daily and chart == "volume":
            drawn.notes[chart] = "hourly alert thresholds are not drawn on daily sums"
            continue
        value = rule.threshold
        shown = f"{value * 100:g}%" if rate else f"{value:,.0f}"
        side = "<" if rule.condition == "below" else ">"
        drawn.by_chart.setdefault(chart, []).append(
            Threshold(f"{rule.name} ({side} {shown})", value, line)
        )
    return drawn
