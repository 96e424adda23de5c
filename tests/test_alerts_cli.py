"""`sms-stats alerts`: the rules in force, the state, and a dry run over the store that tells
no one (an operator tunes thresholds against history before turning them on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from index import main_handler

from sms_stats.cli import main
from sms_stats.emulator import Emulator

from .conftest import APP_A
from .standins.webhook import WebhookReceiver
from .test_alerts import receipts, timer


def test_given_no_rules_configured_when_listed_then_the_defaults_are_shown(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SMS_STATS_ALERTS")
    assert main(["alerts", "rules"]) == 0
    out = capsys.readouterr().out
    for name in ("delivery rate low", "success rate low", "package runs out soon"):
        assert name in out
    assert "below 0.9" in out
    assert "(the defaults" in out


def test_given_alerts_off_when_listed_then_it_says_so(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "rules"]) == 0
    assert "alerts are off" in capsys.readouterr().out


def test_given_a_bad_rule_when_listed_then_a_clear_error_not_a_traceback(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMS_STATS_ALERTS", '[{"metric": "delivery_rate", "below": 90}]')
    assert main(["alerts", "rules"]) == 1
    err = capsys.readouterr().err
    assert "SMS_STATS_ALERTS: rule 1: below: delivery_rate is 0..1; got 90" in err
    assert "Traceback" not in err


class TestDryRun:
    @pytest.fixture
    def history(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        emulator: Emulator,
        context: dict[str, Any],
    ) -> None:
        """A store holding 10:00-14:00 with app A's receipts bad at 11:00 and 12:00, written
        with alerts off (as before an operator turns them on)."""
        monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback")
        monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "0")
        for hour, bad in ((11, False), (12, True), (13, True), (14, False), (15, False)):
            emulator.clear_faults()
            emulator.set_fault(receipts(200, 100 if bad else 199), app_id=APP_A)
            main_handler(timer(hour), context)
        emulator.clear_faults()

    def test_given_history_when_dry_run_then_the_transitions_and_nobody_told(
        self,
        history: None,
        monkeypatch: pytest.MonkeyPatch,
        store: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        rule = [
            {
                "name": "delivery low",
                "metric": "delivery_rate",
                "below": 0.9,
                "min_volume": 50,
                "app_ids": [APP_A],
            }
        ]
        monkeypatch.setenv("SMS_STATS_ALERTS", json.dumps(rule))
        with WebhookReceiver() as hook:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{hook.url}")
            code = main(["alerts", "dry-run", "--from", "2021050110", "--to", "2021050114"])
            assert hook.received == []
        captured = capsys.readouterr()
        assert code == 0, captured.err
        lines = captured.out.splitlines()
        assert [line.split()[2] for line in lines] == ["FIRING", "RESOLVED"]
        assert lines[0].startswith("2021-05-01 11:00")
        assert f"app {APP_A}" in lines[0]
        assert lines[1].startswith("2021-05-01 13:00")
        assert "since 2021-05-01 11:00" in lines[1]
        assert "nobody was notified" in captured.err
        assert not (store / "alerts" / "state.json").exists()

    def test_given_a_threshold_never_reached_when_dry_run_then_nothing_would_fire(
        self,
        history: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_ALERTS", '[{"metric": "delivery_rate", "below": 0.3}]')
        assert main(["alerts", "dry-run", "--from", "2021050110", "--to", "2021050114"]) == 0
        assert capsys.readouterr().out == ""

    def test_given_from_after_to_then_a_clear_error(
        self, scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["alerts", "dry-run", "--from", "2021050114", "--to", "2021050110"]) == 1
        assert "is before --from" in capsys.readouterr().err


def test_given_a_firing_alert_when_state_shown_then_it_is_listed(
    scf_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    emulator: Emulator,
    context: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback")
    monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "0")
    monkeypatch.setenv(
        "SMS_STATS_ALERTS", '[{"name": "delivery low", "metric": "delivery_rate", "below": 0.9}]'
    )
    emulator.set_fault(receipts(200, 100), app_id=APP_A)
    main_handler(timer(12), context)
    emulator.clear_faults()
    capsys.readouterr()
    assert main(["alerts", "state"]) == 0
    out = capsys.readouterr().out
    assert f"FIRING  delivery low  app {APP_A}  since 2021-05-01T11:00:00+08:00" in out
