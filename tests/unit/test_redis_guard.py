"""RedisGuard: after an outage error a process stops asking Redis for a while, then asks again."""

from __future__ import annotations

import pytest
import redis.exceptions

from settlement.infra.redis_client import LocalWindows, RedisGuard, RedisUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("outage", [redis.exceptions.TimeoutError("Timeout reading"),
                                    redis.exceptions.ConnectionError("Connection refused"),
                                    ConnectionResetError(104, "reset"), TimeoutError()])
def test_an_outage_makes_redis_unavailable_for_the_retry_period(outage):
    clock = Clock()
    guard = RedisGuard(retry_s=2.0, clock=clock)
    assert guard.available
    with pytest.raises(RedisUnavailable) as refused, guard.using():
        raise outage
    assert refused.value.__cause__ is outage and refused.value.retry_after_s == 2.0
    assert not guard.available
    ran = []
    with pytest.raises(RedisUnavailable), guard.using():
        ran.append("asked Redis")  # not reached: the guard refuses before the body
    assert ran == []
    clock.now += 1.5
    assert not guard.available and guard.retry_after_s == pytest.approx(0.5)
    clock.now += 0.5
    assert guard.available
    with guard.using():  # asked again, and it answers
        ran.append("asked Redis")
    assert ran == ["asked Redis"] and guard.available


def test_a_response_error_is_not_an_outage():
    guard = RedisGuard(retry_s=2.0, clock=Clock())
    with pytest.raises(redis.exceptions.ResponseError), guard.using():
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert guard.available


def test_a_failure_while_retrying_starts_the_period_again():
    clock = Clock()
    guard = RedisGuard(retry_s=2.0, clock=clock)
    with pytest.raises(RedisUnavailable), guard.using():
        raise redis.exceptions.TimeoutError()
    clock.now += 2.0
    with pytest.raises(RedisUnavailable), guard.using():
        raise redis.exceptions.TimeoutError()
    clock.now += 1.9
    assert not guard.available


def test_local_windows_count_per_window_and_start_over_at_their_bound():
    windows = LocalWindows(max_keys=2)
    at = 1_800_000_030.0  # half way through a minute
    assert windows.count("ip", "a", at) == (1, 30) and windows.count("ip", "a", at + 1) == (2, 29)
    assert windows.count("ip", "a", at + 31)[0] == 1  # the next minute starts at one
    windows.count("ip", "b", at + 32)
    # a third source would pass the bound: the window starts over rather than grow
    assert windows.count("ip", "c", at + 33)[0] == 1 and windows.counts == {("ip", "c"): 1}


def test_a_count_goes_on_over_the_answers_redis_missed_and_starts_over_with_the_window():
    windows, now = LocalWindows(), 1_800_000_030.0
    # Redis counts 1 and 2; misses the third (counted here alone); counts 3 for the fourth, which is
    # the fourth; misses the fifth; says 4 for the sixth, which is the sixth
    assert windows.after_redis("identity", 7, now, 1) == 1
    assert windows.after_redis("identity", 7, now, 2) == 2
    assert windows.without_redis("identity", 7, now)[0] == 3
    assert windows.after_redis("identity", 7, now, 3) == 4
    assert windows.without_redis("identity", 7, now)[0] == 5
    assert windows.after_redis("identity", 7, now, 4) == 6
    # with Redis answering throughout, its count is the count, in whatever order answers arrive
    assert [windows.after_redis("identity", 8, now, n) for n in (2, 1, 3)] == [2, 1, 3]
    # another who and the next window count on their own
    assert windows.without_redis("address", "198.51.100.7", now)[0] == 1
    assert windows.after_redis("identity", 7, now + 60, 1) == 1
