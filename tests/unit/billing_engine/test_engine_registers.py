"""Register readings → energy: multipliers, rollover, replacement, TOU check, flags."""

from __future__ import annotations

import numpy as np
import pytest

from billing_engine import MeterReplacement, ReadingError, RegisterFlag, register_energy, \
    self_consumption
from billing_engine.registers import flag_names

F = RegisterFlag


def test_plain_difference_times_multiplier() -> None:
    # total, sharp, peak, flat, valley; CT 200/5 × PT 10/0.1 → multiplier 4000 would be large,
    # use 40: 12.34 dial kWh → 493.6 kWh.
    prev = [[1000.00, 100.00, 300.00, 400.00, 200.00]]
    cur = [[1012.34, 101.00, 305.00, 404.00, 202.34]]
    out = register_energy(prev, cur, 40)
    np.testing.assert_allclose(out.kwh, [[493.6, 40.0, 200.0, 160.0, 93.6]], rtol=1e-12)
    assert out.flags.tolist() == [0]


def test_rollover_at_register_capacity() -> None:
    # A 6-digit register: 999 990 → 000 015 is 25 kWh across the wrap.
    out = register_energy([[999_990.0]], [[15.0]], 2, rollover_at=1e6)
    assert out.kwh.tolist() == [[50.0]]
    assert flag_names(out.flags[0]) == ["ROLLOVER"]


def test_a_drop_that_is_no_wrap_is_refused_not_negative() -> None:
    # 5000 → 4990: wrapping would mean 999 990 kWh in a month, so it is a bad reading.
    out = register_energy([[5000.0], [10.0]], [[4990.0], [5.0]], 1, rollover_at=1e6)
    assert out.kwh.tolist() == [[0.0], [0.0]]
    assert out.has(F.NEGATIVE_REFUSED).tolist() == [True, True]
    # Without a known capacity every drop is refused.
    out = register_energy([[999_990.0]], [[15.0]], 1)
    assert out.kwh.tolist() == [[0.0]] and out.has(F.NEGATIVE_REFUSED).all()


def test_meter_replaced_mid_cycle_with_a_new_multiplier() -> None:
    # Old meter: 1200 → 1250 (×20 = 1000 kWh); new meter 0 → 30 (×30 = 900 kWh).
    rep = MeterReplacement(replaced=[True, False], old_final=[[1250.0], [0.0]],
                           new_initial=[[0.0], [0.0]], new_multiplier=[30.0, 20.0])
    out = register_energy([[1200.0], [500.0]], [[30.0], [510.0]], [20.0, 20.0], replacement=rep,
                          rollover_at=1e6)
    assert out.kwh.tolist() == [[1900.0], [200.0]]
    assert flag_names(out.flags[0]) == ["REPLACED"] and out.flags[1] == 0


def test_replaced_meter_parts_are_each_checked() -> None:
    rep = MeterReplacement(replaced=[True], old_final=[[1190.0]], new_initial=[[0.0]])
    out = register_energy([[1200.0]], [[30.0]], 1.0, replacement=rep)
    # The old meter's final reading is below its previous one: that part is refused.
    assert out.kwh.tolist() == [[30.0]]
    assert set(flag_names(out.flags[0])) == {"REPLACED", "NEGATIVE_REFUSED"}


def test_tou_registers_against_the_total() -> None:
    prev = np.zeros((3, 5))
    cur = np.array([[10.0, 2.0, 3.0, 4.0, 1.0],      # adds up
                    [10.0, 2.0, 3.0, 4.0, 1.04],     # 0.04 off: within 0.05
                    [10.0, 2.0, 3.0, 4.0, 1.5]])     # 0.5 off
    out = register_energy(prev, cur, [1.0, 1.0, 100.0])
    assert out.has(F.TOU_MISMATCH).tolist() == [False, False, True]
    # The tolerance is in dial units, so it scales with the multiplier.
    out = register_energy(prev[1:2], cur[1:2], 1000.0)
    assert not out.has(F.TOU_MISMATCH).any()


def test_implausible_energy_and_readings() -> None:
    # 30 kWp over 720 h can make at most 30 × 720 × 1.2 = 25 920 kWh.
    out = register_energy([[0.0], [0.0], [-5.0]], [[20_000.0], [30_000.0], [10.0]], 1.0,
                          capacity_kw=[30.0, 30.0, 30.0], hours=720, rollover_at=1e6)
    assert out.has(F.IMPLAUSIBLE).tolist() == [False, True, True]
    out = register_energy([[0.0]], [[2e6]], 1.0, rollover_at=1e6)
    assert out.has(F.IMPLAUSIBLE).tolist() == [True]


def test_missing_reading_gives_zero_and_a_flag() -> None:
    out = register_energy([[1.0, np.nan]], [[3.0, 4.0]], 1.0, total_column=None)
    assert out.kwh.tolist() == [[2.0, 0.0]]
    assert flag_names(out.flags[0]) == ["MISSING"]


@pytest.mark.parametrize("kwargs, where", [
    ({"multiplier": 0.0}, "multiplier"),
    ({"multiplier": [1.0, 2.0, 3.0]}, "multiplier"),
    ({"rollover_at": -1.0}, "rollover_at"),
    ({"current": [[1.0, 2.0, 3.0]]}, "current"),
])
def test_misuse_raises_reading_error(kwargs, where) -> None:
    args = {"previous": [[0.0, 0.0]], "current": [[1.0, 1.0]], "multiplier": 1.0}
    args.update(kwargs)
    with pytest.raises(ReadingError) as info:
        register_energy(**args)
    assert info.value.where == where


def test_self_consumption_never_negative_and_flagged() -> None:
    gen = [[10.0, 20.0, 5.0], [10.0, 10.0, 10.0]]
    exp = [[4.0, 25.0, 5.0], [1.0, 2.0, 3.0]]
    self_use, flags = self_consumption(gen, exp)
    assert self_use.tolist() == [[6.0, 0.0, 0.0], [9.0, 8.0, 7.0]]
    assert [flag_names(f) for f in flags] == [["EXPORT_EXCEEDS_GENERATION"], []]
    _, flags = self_consumption(gen, exp, tolerance_kwh=10.0)
    assert flags.tolist() == [0, 0]
