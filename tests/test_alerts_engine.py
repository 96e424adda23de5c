"""The alert engine on records built by hand: fire once, stay silent, repeat, resolve once."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from sms_stats.alerts.engine import judge, reconcile
from sms_stats.alerts.metrics import figure
from sms_stats.alerts.state import Pending, State
from sms_stats.core.notices import Notice
from sms_stats.core.records import BalanceRecord, CallbackRecord, Counts, Package, Receipts, Record
from sms_stats.core.rules import Rule, parse_rules, rules_in_force
from sms_stats.core.windows import Window, zone

TZ = zone("Asia/Shanghai")
APP = "1400006874"
DAY = datetime(2021, 5, 1, tzinfo=TZ)


def hour(h: int) -> Window:
    start = DAY + timedelta(hours=h)
    return Window(start, start + timedelta(hours=1))


def receipts(h: int, total: int, ok: int, app: str = APP) -> CallbackRecord:
    r = Receipts(total, total, ok, total - ok, total - ok, 0, 0, 0, 0, "rid")
    return CallbackRecord(app, hour(h), "Asia/Shanghai", r, hour(h).end)


def sends(h: int, requests: int, ok: int, fee: int | None = None) -> Record:
    counts = Counts(requests, ok, requests if fee is None else fee, "rid")
    return Record(APP, hour(h), "Asia/Shanghai", counts, hour(h).end)


DELIVERY = Rule(metric="delivery_rate", below=0.9, min_volume=50)


def run(rules: list[Rule], state: State, *records: object) -> list[str]:
    return [
        n.id.rsplit("_", 1)[-1] + ":" + n.type
        for n in judge(rules, records, state, "Asia/Shanghai")
    ]  # type: ignore[arg-type]


class TestFiringAndResolving:
    def test_given_two_bad_hours_then_one_firing_then_one_resolved(self) -> None:
        state = State()
        assert run([DELIVERY], state, receipts(10, 100, 99)) == []
        assert run([DELIVERY], state, receipts(11, 100, 50)) == ["firing:alert.firing"]
        assert run([DELIVERY], state, receipts(12, 100, 40)) == []
        assert run([DELIVERY], state, receipts(13, 100, 98)) == ["resolved:alert.resolved"]
        assert run([DELIVERY], state, receipts(14, 100, 98)) == []

    def test_given_the_same_hour_judged_again_then_nothing_new(self) -> None:
        state = State()
        assert run([DELIVERY], state, receipts(11, 100, 50)) == ["firing:alert.firing"]
        assert run([DELIVERY], state, receipts(11, 100, 50)) == []
        assert run([DELIVERY], state, receipts(10, 100, 99)) == []  # older: a late run

    def test_given_firing_then_the_notice_names_value_threshold_and_since(self) -> None:
        state = State()
        judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        (notice,) = judge([DELIVERY], [receipts(13, 100, 99)], state, "Asia/Shanghai")
        assert notice.type == "alert.resolved"
        assert notice.data["since"] == "2021-05-01T11:00:00+08:00"
        assert notice.data["window_start"] == "2021-05-01T13:00:00+08:00"
        assert notice.data["value"] == 0.99
        assert notice.data["threshold"] == 0.9
        assert notice.id.endswith(f"_{APP}_2021050111_resolved")

    def test_given_a_retry_of_one_bad_hour_then_it_counts_once_toward_for_hours(self) -> None:
        rule = Rule(metric="delivery_rate", below=0.9, for_hours=2)
        state = State()
        assert run([rule], state, receipts(11, 100, 50)) == []
        assert run([rule], state, receipts(11, 100, 50)) == []  # SCF's retry of that run

    def test_given_a_quiet_hour_then_it_is_not_judged(self) -> None:
        state = State()
        assert run([DELIVERY], state, receipts(3, 3, 2)) == []  # 3 messages, 1 failed
        assert run([DELIVERY], state, receipts(4, 100, 50)) == ["firing:alert.firing"]
        assert run([DELIVERY], state, receipts(5, 3, 3)) == []  # quiet: still firing
        assert state.alerts[next(iter(state.alerts))].firing

    def test_given_for_hours_then_fires_at_the_nth_bad_hour_since_the_first(self) -> None:
        rule = Rule(metric="delivery_rate", below=0.9, for_hours=2)
        state = State()
        assert run([rule], state, receipts(11, 100, 50)) == []
        (notice,) = judge([rule], [receipts(12, 100, 50)], state, "Asia/Shanghai")
        assert notice.data["since"] == "2021-05-01T11:00:00+08:00"

    def test_given_repeat_hours_then_repeated_while_firing(self) -> None:
        rule = Rule(metric="delivery_rate", below=0.9, repeat_hours=2)
        state = State()
        got = [run([rule], state, receipts(h, 100, 50)) for h in range(10, 15)]
        assert got == [
            ["firing:alert.firing"],
            [],
            ["2021050112:alert.firing"],
            [],
            ["2021050114:alert.firing"],
        ]

    def test_given_two_apps_then_each_has_its_own_alert(self) -> None:
        state = State()
        got = run([DELIVERY], state, receipts(11, 100, 50), receipts(11, 100, 99, "1400006875"))
        assert got == ["firing:alert.firing"]


class TestMetrics:
    def test_given_shares_then_counted_over_receipts(self) -> None:
        rule = Rule(metric="internal_error_share", above=0.1)
        judged = figure(rule, receipts(1, 200, 150))
        assert judged is not None
        assert judged.value == 0.25

    def test_given_runway_then_remaining_over_daily_usage(self) -> None:
        state = State()
        for h in range(24):
            judge([], [sends(h, 100, 100, fee=50)], state, "Asia/Shanghai")
        as_of = DAY + timedelta(hours=24, minutes=5)
        package = Package(
            package_id=1,
            bought=True,
            amount=10_000,
            used=10_000 - 3_000,
            created_at=DAY - timedelta(days=30),
            effective_at=DAY - timedelta(days=30),
            expires_at=DAY + timedelta(days=300),
        )
        balance = BalanceRecord(APP, as_of, (package,), "rid", as_of)
        rule = Rule(metric="package_runway_days", below=7)
        (notice,) = judge([rule], [balance], state, "Asia/Shanghai")
        assert notice.data["value"] == 2.5  # 3,000 left / 1,200 a day
        assert notice.type == "alert.firing"


class TestRules:
    @pytest.mark.parametrize(
        ("text", "says"),
        [
            (
                '[{"metric": "deliverability", "below": 0.9}]',
                "unknown metric (got 'deliverability')",
            ),
            ('[{"metric": "delivery_rate"}]', "exactly one of below or above"),
            ('[{"metric": "delivery_rate", "below": 0.9, "above": 0.1}]', "exactly one"),
            ('[{"metric": "delivery_rate", "below": 90}]', "delivery_rate is 0..1; got 90"),
            ('[{"metric": "delivery_rate", "below": 0.9, "for_hours": -1}]', "for_hours"),
            ('{"metric": "delivery_rate"}', "must be a list of rules"),
            ("[{", "is not JSON"),
            (
                '[{"name": "a", "metric": "delivery_rate", "below": 0.9},'
                ' {"name": "b", "metric": "delivery_rate", "below": 0.9}]',
                "rule 2 judges the same as rule 1",
            ),
        ],
    )
    def test_given_a_bad_rule_then_the_error_names_it(self, text: str, says: str) -> None:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_rules(text)

    def test_given_the_same_rule_for_other_apps_then_both_stand(self) -> None:
        text = (
            '[{"name": "a", "metric": "delivery_rate", "below": 0.9, "app_ids": ["1400006874"]},'
            ' {"name": "b", "metric": "delivery_rate", "below": 0.9, "app_ids": ["1400006875"]}]'
        )
        assert [r.name for r in parse_rules(text) or ()] == ["a", "b"]

    def test_given_no_rules_then_the_contracts_defaults(self) -> None:
        metrics = [(r.metric, r.threshold, r.min_volume) for r in rules_in_force(None)]
        assert metrics == [
            ("delivery_rate", 0.9, 50),
            ("success_rate", 0.95, 50),
            ("package_runway_days", 7, 0),
            ("volume_ratio", 4.0, 200),
            ("package_unused_at_expiry", 0, 0),
        ]
        assert rules_in_force(parse_rules("[]")) == ()

    def test_given_budgets_then_the_budget_rule_judges_the_apps_that_have_one(self) -> None:
        (rule,) = [
            r
            for r in rules_in_force(None, (("1400006874", 900),))
            if r.metric == "budget_forecast_ratio"
        ]
        assert (rule.threshold, rule.condition, rule.app_ids) == (1.0, "above", ("1400006874",))
        (every,) = [
            r for r in rules_in_force(None, (("*", 900),)) if r.metric == "budget_forecast_ratio"
        ]
        assert every.app_ids is None
        assert not [r for r in rules_in_force(None) if r.metric == "budget_forecast_ratio"]


class TestStateMerge:
    def test_given_another_run_wrote_since_then_neither_transition_is_lost(self) -> None:
        ours, theirs = State(), State()
        judge([DELIVERY], [receipts(11, 100, 50)], theirs, "Asia/Shanghai")
        notices = judge([DELIVERY], [receipts(12, 100, 50, "1400006875")], ours, "Asia/Shanghai")
        ours.pending.append(Pending(notices[0], ["webhook"]))
        merged = ours.merge(State.decode(theirs.encode()))
        assert len(merged.alerts) == 2
        assert [p.notice.id for p in merged.pending] == [notices[0].id]
        back = State.decode(merged.encode())
        assert back.pending[0].notice == notices[0]

    def test_given_one_hour_judged_by_two_runs_when_merged_then_the_first_written_stands(
        self,
    ) -> None:
        theirs = State()
        (fired,) = judge([DELIVERY], [receipts(11, 100, 50)], theirs, "Asia/Shanghai")
        theirs.owe(fired, ["webhook"])
        ours = State()  # the same hour, its receipts read again a moment later: healthy
        assert judge([DELIVERY], [receipts(11, 100, 99)], ours, "Asia/Shanghai") == []
        merged = ours.merge(State.decode(theirs.encode()))
        (alert,) = merged.alerts.values()
        assert alert.firing
        assert [p.notice.id for p in merged.pending] == [fired.id]

    def test_given_a_state_told_in_its_old_shape_when_read_then_nothing_is_corrected(
        self,
    ) -> None:
        state = State()
        judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        old = json.loads(state.encode())
        del old["told"]  # as a version before `told` wrote it
        back = State.decode(json.dumps(old).encode())
        assert back.told == {}
        assert reconcile(back, [DELIVERY], "Asia/Shanghai") == []

    def test_given_a_digest_another_run_made_and_sent_when_merged_then_not_owed_again(
        self,
    ) -> None:
        digest = Notice("digest_2021-05-01", "digest.daily", DAY, {"date": "2021-05-01"})
        theirs = State(digest="2021-05-01")  # made it, sent it, struck it
        ours = State(digest="2021-05-01")
        ours.owe(digest, ["webhook"])
        assert ours.merge(State.decode(theirs.encode())).pending == []
        behind = State(digest="2021-04-30")  # the stored state has not made it: ours stands
        assert [p.notice.id for p in ours.merge(behind).pending] == [digest.id]


class TestReconcile:
    """What receivers were told, against the judgement that won the merge (states by hand)."""

    def test_given_a_firing_owed_that_never_went_out_when_not_firing_then_it_is_dropped(
        self,
    ) -> None:
        state = State()
        (fired,) = judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        state.owe(fired, ["webhook"])
        (alert,) = state.alerts.values()
        alert.firing = False  # the judgement that won says otherwise
        assert reconcile(state, [DELIVERY], "Asia/Shanghai") == []
        assert state.pending == []
        assert all(told == [] for told in state.told.values())

    def test_given_a_firing_that_went_out_when_not_firing_then_it_is_resolved(self) -> None:
        state = State()
        (fired,) = judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        state.owe(fired, ["webhook", "bot"])
        state.pending[0].out = True  # one sink has it
        (alert,) = state.alerts.values()
        alert.hour, alert.firing = "2021-05-01T12:00:00+08:00", False
        (resolved,) = reconcile(state, [DELIVERY], "Asia/Shanghai")
        assert resolved.type == "alert.resolved"
        assert resolved.id.endswith(f"_{APP}_2021050111_resolved_2021050112")
        assert resolved.data["since"] == "2021-05-01T11:00:00+08:00"
        assert resolved.data["window_start"] == "2021-05-01T12:00:00+08:00"
        assert [p.notice.id for p in state.pending] == [fired.id]  # still owed to the bot

    def test_given_told_resolved_then_firing_again_when_it_resolves_then_a_new_id(
        self,
    ) -> None:
        state = State()
        judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        (resolved,) = judge([DELIVERY], [receipts(12, 100, 99)], state, "Asia/Shanghai")
        (alert,) = state.alerts.values()  # a judgement from before the resolve won: firing
        alert.hour, alert.firing, alert.streak = "2021-05-01T13:00:00+08:00", True, 3
        alert.since = "2021-05-01T11:00:00+08:00"
        (again,) = reconcile(state, [DELIVERY], "Asia/Shanghai")
        assert again.id.endswith("_2021050111_repeat_2021050113")
        assert again.type == "alert.firing"
        assert alert.notified == alert.hour  # told now: the next repeat counts from here
        (final,) = judge([DELIVERY], [receipts(14, 100, 99)], state, "Asia/Shanghai")
        assert final.id != resolved.id  # receivers would drop it as a repeat
        assert final.id.endswith("_2021050111_resolved_2021050114")

    def test_given_the_rule_no_longer_in_force_then_nothing_is_told(self) -> None:
        state = State()
        (fired,) = judge([DELIVERY], [receipts(11, 100, 50)], state, "Asia/Shanghai")
        state.owe(fired, ["webhook"])
        state.pending[0].out = True
        (alert,) = state.alerts.values()
        alert.firing = False
        assert reconcile(state, [], "Asia/Shanghai") == []


def test_given_for_hours_when_it_first_fires_then_the_chat_does_not_say_still_firing() -> None:
    from sms_stats.deliver.chat.notices import summary

    rule = Rule(metric="delivery_rate", below=0.9, for_hours=2, repeat_hours=1)
    state = State()
    judge([rule], [receipts(11, 100, 50)], state, "Asia/Shanghai")
    (first,) = judge([rule], [receipts(12, 100, 50)], state, "Asia/Shanghai")
    (again,) = judge([rule], [receipts(13, 100, 50)], state, "Asia/Shanghai")
    assert "still firing" not in " ".join(summary(first).rows[0].cells)
    assert "still firing since 2021-05-01 11:00" in " ".join(summary(again).rows[0].cells)
