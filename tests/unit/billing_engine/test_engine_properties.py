"""Invariants, tried by hypothesis on many inputs.

* no reading sequence — rollovers, replacements, drops, NaN, absurd values — gives negative
  (or non-finite) energy;
* bill lines sum to the totals;
* billing a span split at any point (interval data) or at an intermediate reading (a register
  cycle) equals billing it whole when the tariff does not change, up to the per-line rounding
  (half a fen per rounded amount on a line);
* multipliers commute with differencing.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from billing_engine import ContractTerms, MeterReplacement, bill, example, loads, price_cycle, \
    register_energy, summary
from billing_engine.pricing import LineKind
from billing_engine.registers import RegisterFlag

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

readings = st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.just(float("nan")),
                     st.just(float("inf")), st.integers(0, 10**6).map(float),
                     st.sampled_from([0.0, 999_999.99, 1e6, 99_999_999.0]))


@st.composite
def reading_cycles(draw):
    meters = draw(st.integers(1, 6))
    regs = draw(st.integers(1, 5))
    shape = (meters, regs)
    prev = draw(arrays(np.float64, shape, elements=readings))
    cur = draw(arrays(np.float64, shape, elements=readings))
    mult = draw(arrays(np.float64, (meters,), elements=st.floats(1e-3, 1e5)))
    cap = draw(st.sampled_from([None, 1e4, 1e6, 1e8]))
    replacement = None
    if draw(st.booleans()):
        replacement = MeterReplacement(
            replaced=draw(arrays(bool, (meters,))),
            old_final=draw(arrays(np.float64, shape, elements=readings)),
            new_initial=draw(arrays(np.float64, shape, elements=readings)),
            new_multiplier=draw(arrays(np.float64, (meters,), elements=st.floats(1e-3, 1e5))),
            new_rollover_at=draw(st.sampled_from([None, 1e5, 1e6])))
    return prev, cur, mult, cap, replacement


@SETTINGS
@given(reading_cycles())
def test_no_negative_energy_from_any_readings(cycle) -> None:
    prev, cur, mult, cap, replacement = cycle
    out = register_energy(prev, cur, mult, rollover_at=cap, replacement=replacement,
                          capacity_kw=100.0, hours=720)
    assert np.all(np.isfinite(out.kwh))
    assert np.all(out.kwh >= 0)
    assert out.flags.dtype == np.uint16 and out.flags.shape == (prev.shape[0],)


@SETTINGS
@given(st.integers(0, 10**8 - 1), st.lists(st.integers(0, 9 * 10**4), min_size=1, max_size=30),
       st.integers(1, 500), st.sampled_from([10**5, 10**6, 10**8]))
def test_a_wrapping_sequence_bills_exactly_what_was_consumed(start, steps, mult, cap) -> None:
    # Whole-kWh dial readings of a register that wraps at `cap`; each cycle consumes < 10 % of it.
    steps = [s % (cap // 10) for s in steps]
    consumed = np.cumsum([0] + steps)
    dial = ((start + consumed) % cap).astype(np.float64)
    out = register_energy(dial[:-1, None], dial[1:, None], float(mult), rollover_at=float(cap))
    assert np.all(out.kwh >= 0)
    assert out.kwh[:, 0].tolist() == [float(s * mult) for s in steps]
    assert not out.has(RegisterFlag.NEGATIVE_REFUSED).any()


@SETTINGS
@given(arrays(np.int64, (4, 3), elements=st.integers(0, 10**6 - 1)),
       arrays(np.int64, (4, 3), elements=st.integers(0, 10**6 - 1)),
       arrays(np.int64, (4,), elements=st.integers(1, 4000)),
       st.booleans())
def test_multipliers_commute_with_differencing(prev, cur, mult, replaced_first) -> None:
    # Integer dial readings and multipliers keep every product exact, so equality is exact.
    cap = 1e6
    rep = MeterReplacement(replaced=np.array([replaced_first, False, False, False]),
                           old_final=prev + 7, new_initial=np.zeros_like(prev))
    scaled_rep = MeterReplacement(replaced=rep.replaced, old_final=(prev + 7) * mult[:, None],
                                  new_initial=np.zeros_like(prev),
                                  new_rollover_at=cap * mult)
    a = register_energy(prev, cur, mult, rollover_at=cap, replacement=rep, total_column=None)
    b = register_energy(prev * mult[:, None], cur * mult[:, None], 1.0, rollover_at=cap * mult,
                        replacement=scaled_rep, total_column=None)
    c = register_energy(prev, cur, 1.0, rollover_at=cap, replacement=rep, total_column=None)
    assert a.kwh.tolist() == b.kwh.tolist()
    assert a.kwh.tolist() == (c.kwh * mult[:, None]).tolist()
    assert a.flags.tolist() == b.flags.tolist() == c.flags.tolist()


prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=4).map(str)


@st.composite
def contracts(draw):
    model = draw(st.sampled_from(["discount", "grid", "fixed", "tiered"]))
    kwargs = {"model": model, "vat_rate": draw(st.sampled_from(["0", "0.06", "0.13"])),
              "prices_include_vat": draw(st.booleans()),
              "fixed_monthly": draw(st.sampled_from(["0", "12.34"])),
              "feed_in_price": draw(st.sampled_from([None, "0.391"]))}
    if model == "discount":
        kwargs["discount"] = str(draw(st.decimals(Decimal("0.5"), Decimal("1"), places=2)))
        if draw(st.booleans()):
            kwargs["floor_price"], kwargs["cap_price"] = "0.2", "0.9"
    if model == "fixed":
        kwargs["fixed_price"] = draw(prices)
    if model == "tiered":
        kwargs["tiers"] = ((100, draw(prices)), (1000, draw(prices)), (None, draw(prices)))
        kwargs["tier_basis"] = draw(st.sampled_from(["cycle", "annual"]))
    return ContractTerms(**kwargs)


@SETTINGS
@given(contracts(), st.integers(1, 20), st.integers(1, 5), st.data())
def test_cycle_lines_sum_to_totals(terms, plants, periods, data) -> None:
    self_use = data.draw(arrays(np.float64, (plants, periods), elements=st.floats(0, 1e6)))
    export = data.draw(arrays(np.float64, (plants, periods), elements=st.floats(0, 1e5)))
    grid = data.draw(arrays(np.int64, (plants, periods), elements=st.integers(0, 3_000_000)))
    ytd = data.draw(arrays(np.float64, (plants,), elements=st.floats(0, 1e5)))
    cycle = price_cycle(terms, grid, self_use, export_kwh=export, ytd_self_use_kwh=ytd)
    counted = ~cycle.informational
    assert cycle.amount_fen.dtype == np.int64 and cycle.total_fen.dtype == np.int64
    assert cycle.total_fen.tolist() == cycle.amount_fen[:, counted].sum(axis=1).tolist()
    assert cycle.tax_total_fen.tolist() == cycle.tax_fen[:, counted].sum(axis=1).tolist()
    assert np.all(cycle.amount_fen >= 0) and np.all(cycle.tax_fen <= cycle.amount_fen)
    for p in range(plants):
        lines = cycle.lines(p)
        assert sum(ln.amount_fen for ln in lines if not ln.informational) == cycle.total_fen[p]
        assert all(isinstance(ln.amount_fen, int) for ln in lines)
    # Self-use kWh billed is the self-use given (to the Wh), whatever the model.
    self_cols = cycle.kind == LineKind.SELF_USE
    np.testing.assert_allclose(cycle.wh[:, self_cols].sum(axis=1) / 1000, self_use.sum(axis=1),
                               atol=periods * 0.0005 + 1e-9)


def _tariff_with_fixed_charge():
    obj = json.loads((Path(__file__).resolve().parents[3] / "billing_engine" / "tariffs" /
                      "zhejiang-2024.json").read_text("utf-8"))
    obj["versions"][0]["fixed_monthly"] = "25.00"
    obj["versions"][0]["prices_include_vat"] = False
    return loads(json.dumps(obj))


TARIFF = _tariff_with_fixed_charge()


@SETTINGS
@given(st.sampled_from([15, 30, 60]), st.integers(2, 50), st.integers(0, 400), st.data())
def test_split_anywhere_equals_whole(step, days, start_day, data) -> None:
    per_day = 24 * 60 // step
    n = days * per_day
    start = np.datetime64("2024-01-01T00:00") + np.timedelta64(start_day, "D")
    kwh = np.round(data.draw(arrays(np.float64, (2, n), elements=st.floats(0, 5))), 3)
    cut = data.draw(st.integers(1, n - 1))
    whole = bill(TARIFF, kwh, start, step)
    first = bill(TARIFF, kwh[:, :cut], start, step)
    second = bill(TARIFF, kwh[:, cut:], start + cut * np.timedelta64(step, "m"), step)
    lines = first.kind.size + second.kind.size + whole.kind.size
    diff = np.abs(first.total_fen + second.total_fen - whole.total_fen)
    # The tariff's prices exclude VAT: each line carries two rounded amounts, net and tax.
    assert np.all(diff <= lines * 1.13), (diff, lines)
    # Energy per (month, period) is the same to the Wh.
    for m in range(2):
        a, b, w = (summary(r, m) for r in (first, second, whole))
        kwh_w = {(x["month"], p["period"]): p["kwh"] for x in w["months"] for p in x["periods"]}
        kwh_s: dict = {}
        for part in (a, b):
            for x in part["months"]:
                for p in x["periods"]:
                    key = (x["month"], p["period"])
                    kwh_s[key] = kwh_s.get(key, 0.0) + p["kwh"]
        assert kwh_s.keys() == kwh_w.keys()
        for key in kwh_w:
            assert abs(kwh_s[key] - kwh_w[key]) <= 0.0021


@SETTINGS
@given(st.sampled_from(["jiangsu-2025", "zhejiang-2024"]), st.integers(1, 40), st.data())
def test_interval_bill_lines_sum_to_totals(name, days, data) -> None:
    tariff = example(name)
    kwh = data.draw(arrays(np.float64, (3, days * 96), elements=st.floats(0, 10)))
    result = bill(tariff, kwh, tariff.versions[0].effective_from.isoformat() + "T00:00", 15)
    assert result.total_fen.tolist() == result.amount_fen.sum(axis=1).tolist()
    for m in range(3):
        out = summary(result, m)
        assert out["total_fen"] == int(result.total_fen[m]) == sum(x["total_fen"] for x in out["months"])
        for month in out["months"]:
            assert month["total_fen"] == month["energy_fen"] + month["fixed_fen"]
            assert month["energy_fen"] == sum(p["amount_fen"] for p in month["periods"])


@SETTINGS
@given(contracts(), st.integers(1, 10), st.data())
def test_a_register_cycle_split_at_a_reading_prices_like_the_whole(terms, plants, data) -> None:
    # Readings at the start, at some date inside the cycle, and at the end (whole 0.01 kWh).
    start = data.draw(arrays(np.int64, (plants, 5), elements=st.integers(0, 10**8)))
    first = data.draw(arrays(np.int64, (plants, 5), elements=st.integers(0, 10**6)))
    second = data.draw(arrays(np.int64, (plants, 5), elements=st.integers(0, 10**6)))
    r0, r1, r2 = start / 100, (start + first) / 100, (start + first + second) / 100
    mult = data.draw(arrays(np.float64, (plants,), elements=st.sampled_from([1.0, 20.0, 60.0])))
    a = register_energy(r0, r1, mult, total_column=None)
    b = register_energy(r1, r2, mult, total_column=None)
    whole = register_energy(r0, r2, mult, total_column=None)
    np.testing.assert_allclose(a.kwh + b.kwh, whole.kwh, rtol=1e-9, atol=1e-6)
    # Price the TOU registers (columns 1-4) as self-use; per-cycle charges and per-cycle tier
    # blocks are per call by definition, so they are left out; annual tiers carry the year.
    if terms.model == "tiered" and terms.tier_basis == "cycle":
        return
    grid = data.draw(arrays(np.int64, (4,), elements=st.integers(0, 2_000_000)))
    kwargs = dict(model=terms.model, discount=terms.discount, floor_price=terms.floor_price,
                  cap_price=terms.cap_price, fixed_price=terms.fixed_price, tiers=terms.tiers,
                  tier_basis=terms.tier_basis, vat_rate=terms.vat_rate,
                  prices_include_vat=terms.prices_include_vat)
    terms = ContractTerms(**kwargs)
    ytd = np.zeros(plants)
    pa = price_cycle(terms, grid, a.kwh[:, 1:], ytd_self_use_kwh=ytd)
    pb = price_cycle(terms, grid, b.kwh[:, 1:], ytd_self_use_kwh=ytd + np.round(a.kwh[:, 1:], 3).sum(1))
    pw = price_cycle(terms, grid, whole.kwh[:, 1:], ytd_self_use_kwh=ytd)
    lines = pa.kind.size + pb.kind.size + pw.kind.size
    # Half a fen per line; when VAT is added, the tax is a second rounded amount on the line
    # (half a fen more, plus the VAT on the first half); a Wh of quantization adds < 1 fen.
    per_line = 0.5 if terms.prices_include_vat else 1.1
    assert np.all(np.abs(pa.total_fen + pb.total_fen - pw.total_fen) <= lines * per_line + 1)
