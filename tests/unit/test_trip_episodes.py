"""Episodes of repeated tripping (settlement.telemetry.trips.trip_episodes) on hand-made trip sequences."""

from __future__ import annotations

import datetime as dt

import pytest

from settlement.telemetry.trips import TripRule, trip_episodes

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.timezone.utc)
RULE = TripRule()  # 3 within 7 days


def days(*offsets: float) -> list[dt.datetime]:
    return [T0 + DAY * d for d in offsets]


def spans(trips: list[dt.datetime], rule: TripRule = RULE) -> list[tuple[int, int, int, dt.datetime]]:
    return [(e.first, e.start, e.last, e.ends_at) for e in trip_episodes(trips, rule)]


def test_two_trips_are_no_episode():
    assert spans(days(0, 1)) == []


def test_three_within_the_window_are_one_episode_from_the_third():
    # starts at the third trip, ends when the first leaves the window
    assert spans(days(0, 2, 5)) == [(0, 2, 2, T0 + 7 * DAY)]


def test_three_spread_wider_than_the_window_are_none():
    assert spans(days(0, 3.5, 7.5)) == []
    assert spans(days(0, 3, 7)) == []  # exactly 7 days apart: the first is out of (t − 7 d, t]


def test_trips_while_the_count_holds_extend_the_episode_and_open_no_new_one():
    # every day for ten days: one episode, not eight; it ends 7 days after the 8th trip
    assert spans(days(*range(10))) == [(0, 2, 9, T0 + 14 * DAY)]


def test_a_new_episode_only_after_the_count_dropped_below_the_threshold():
    # 0, 1, 2 make an episode that ends on day 7 (day 0 leaves the window); at 7.5 the window
    # (0.5, 7.5] holds 1, 2 and 7.5 again: the count had dropped to 2, so this is a second episode
    assert spans(days(0, 1, 2, 7.5)) == [(0, 2, 2, T0 + 7 * DAY), (1, 3, 3, T0 + 8 * DAY)]
    # at 6.5 the first episode was still going on: it grows instead
    assert spans(days(0, 1, 2, 6.5)) == [(0, 2, 3, T0 + 8 * DAY)]


def test_the_threshold_and_window_are_the_settings():
    rule = TripRule(threshold=2, window=dt.timedelta(hours=12))
    assert spans([T0, T0 + dt.timedelta(hours=11)], rule) == [(0, 1, 1, T0 + dt.timedelta(hours=12))]
    assert spans([T0, T0 + dt.timedelta(hours=13)], rule) == []
    assert rule.text == "频繁跳闸: 12小时内停运2次" and RULE.text == "频繁跳闸: 7天内停运3次"
    with pytest.raises(ValueError):
        TripRule(threshold=1)
    with pytest.raises(ValueError):
        TripRule(window=dt.timedelta(0))
