"""Pacing: sliding-window limits shared by threads, several at once, bounded by a deadline."""

from __future__ import annotations

import pytest

from sms_stats.core.pacing import Pace, RateLimiter, pace_for

from .conftest import FakeClock


def most_in_any_span(starts: list[float], span: float) -> int:
    return max(sum(1 for s in starts if start <= s < start + span) for start in starts)


class TestRateLimiter:
    def test_given_rate_10_when_30_acquired_then_never_more_than_10_in_any_second(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
        starts = []
        for _ in range(30):
            assert limiter.acquire()
            starts.append(clock.now)
        assert most_in_any_span(starts, 1.0) <= 10
        assert starts[-1] - starts[0] >= 2.0

    def test_given_fractional_rate_2_5_when_20_acquired_then_never_more_than_2_in_any_second(
        self,
    ) -> None:
        """2.5/s is 2 in any second, never "2 per 0.8 s" (which lets 4 through in one)."""
        clock = FakeClock()
        limiter = RateLimiter(2.5, clock=clock, sleep=clock.sleep)
        starts = []
        for _ in range(20):
            assert limiter.acquire()
            starts.append(clock.now)
        assert most_in_any_span(starts, 1.0) <= 2

    def test_given_deadline_before_next_slot_when_acquired_then_false_and_no_sleep(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
        assert limiter.acquire()
        assert not limiter.acquire(deadline=clock.now + 0.5)
        assert clock.slept == []

    def test_given_20_a_minute_when_21_acquired_then_21st_waits_a_minute(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(20 / 60, 60.0, clock=clock, sleep=clock.sleep)
        for _ in range(20):
            assert limiter.acquire()
        assert clock.slept == []
        assert limiter.acquire()
        assert 60.0 <= sum(clock.slept) < 60.1


class TestPace:
    def test_given_5_a_second_and_100_a_minute_when_130_sent_then_both_limits_hold(
        self,
    ) -> None:
        clock = FakeClock()
        pace = Pace(((5, 1.0), (100, 60.0)), clock=clock, sleep=clock.sleep)
        starts = []
        for _ in range(130):
            assert pace.acquire()
            starts.append(clock.now)
        assert most_in_any_span(starts, 1.0) <= 5
        assert most_in_any_span(starts, 60.0) <= 100
        # 100 in the first minute at 5 a second (about 20 s), then the minute must pass
        assert starts[100] - starts[0] >= 60.0

    def test_given_minute_used_up_when_deadline_is_sooner_then_false_without_waiting(
        self,
    ) -> None:
        clock = FakeClock()
        pace = Pace(((20, 60.0),), clock=clock, sleep=clock.sleep)
        for _ in range(20):
            assert pace.acquire(deadline=clock.now + 5)
        assert not pace.acquire(deadline=clock.now + 5)
        assert clock.slept == []

    @pytest.mark.parametrize(
        ("limits", "text"),
        [
            (((20, 60.0),), "at most 20 messages a minute"),
            (((5, 1.0), (100, 60.0)), "at most 5 messages a second and 100 messages a minute"),
            (((1, 1.0),), "at most 1 message a second"),
            (((3, 10.0),), "at most 3 messages in 10 s"),
        ],
    )
    def test_given_limits_when_described_then_plain_words(
        self, limits: tuple[tuple[int, float], ...], text: str
    ) -> None:
        assert Pace(limits).describe() == text

    def test_given_no_limit_when_built_then_value_error(self) -> None:
        with pytest.raises(ValueError, match="at least one limit"):
            Pace(())


class TestRegistry:
    def test_given_same_robot_when_asked_twice_then_one_shared_pace(self) -> None:
        first = pace_for("wecom:test-registry#1", ((20, 60.0),))
        assert pace_for("wecom:test-registry#1", ((20, 60.0),)) is first
        assert pace_for("wecom:test-registry#2", ((20, 60.0),)) is not first


class TestSlidingWindow:
    def test_given_staggered_starts_when_oldest_expires_then_only_its_slot_frees(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
        starts = []
        assert limiter.acquire()
        starts.append(clock.now)
        clock.now += 0.5
        for _ in range(19):
            assert limiter.acquire()
            starts.append(clock.now)
        assert most_in_any_span(starts, 1.0) <= 10

    def test_given_rate_below_one_a_second_when_acquired_then_spaced_by_its_period(self) -> None:
        """SMS_STATS_RATE_LIMIT=0.5 is one call every 2 s, not one a second."""
        clock = FakeClock()
        limiter = RateLimiter(0.5, clock=clock, sleep=clock.sleep)
        starts = []
        for _ in range(3):
            assert limiter.acquire()
            starts.append(clock.now)
        assert most_in_any_span(starts, 2.0) == 1
