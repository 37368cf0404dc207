"""OpenEI URDB records: read into the engine's tariffs; demand charges refused, never ignored."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from billing_engine import TariffError, UnsupportedTariffError, bill, from_urdb, loads
from billing_engine.pricing import LineKind
from billing_engine.urdb import DEMAND_KEYS

WEEKDAY = [[0] * 8 + [1] * 12 + [0] * 4 for _ in range(12)]
WEEKEND = [[0] * 24 for _ in range(12)]


def _record(**extra) -> dict:
    record = {
        "label": "5b0f0c2e5457a3a76f7c9a1e", "name": "TOU-A", "utility": "Example Utility",
        "energyratestructure": [[{"rate": 0.08, "adj": 0.01, "unit": "kWh"}],
                                [{"rate": 0.21, "unit": "kWh"}]],
        "energyweekdayschedule": copy.deepcopy(WEEKDAY),
        "energyweekendschedule": copy.deepcopy(WEEKEND),
        "fixedchargefirstmeter": 9.5, "fixedchargeunits": "$/month",
    }
    record.update(extra)
    return record


def test_record_is_read_into_the_internal_form() -> None:
    tariff = loads(json.dumps(_record()))
    version = tariff.versions[0]
    assert tariff.periods == ("period 0", "period 1")
    assert version.price_micro[0].tolist() == [90_000, 210_000]  # rate + adj
    assert version.fixed_monthly_fen == 950
    assert version.slot_period[3, 0, 8 * 4 - 1] == 0 and version.slot_period[3, 0, 8 * 4] == 1
    assert (version.slot_period[:, 1] == 0).all() and (version.slot_period[:, 2] == 0).all()
    assert tariff.name == "Example Utility / TOU-A"


def test_api_answer_with_items_is_accepted() -> None:
    tariff = loads(json.dumps({"items": [_record()]}))
    assert len(tariff.periods) == 2


@pytest.mark.parametrize("key", DEMAND_KEYS)
def test_demand_charges_are_refused_naming_the_key(key: str) -> None:
    value = [[{"rate": 10.0}]] if key.endswith("structure") else [[0] * 24] * 12
    with pytest.raises(UnsupportedTariffError) as info:
        from_urdb(_record(**{key: value}))
    assert info.value.where == key
    assert str(info.value) == f"{key}: demand charges are not supported (refused, not ignored)"


def test_empty_demand_keys_are_not_demand_charges() -> None:
    from_urdb(_record(demandratestructure=[], flatdemandstructure=None))


@pytest.mark.parametrize("extra, where, message", [
    ({"mincharge": 5.0}, "mincharge", "minimum charges"),
    ({"fixedchargeunits": "$/day"}, "fixedchargeunits", "fixed charge units '$/day'"),
    ({"energyratestructure": [[{"rate": 0.1, "max": 10, "unit": "kWh daily"}, {"rate": 0.2}],
                              [{"rate": 0.3}]]},
     "energyratestructure[0][0].unit", "tier unit 'kWh daily'"),
    ({"energyratestructure": [[{"rate": 0.1, "max": 100}, {"rate": 0.2}],
                              [{"rate": 0.3, "max": 200}, {"rate": 0.4}]]},
     "energyratestructure[1]", "tiers that differ between periods"),
])
def test_unsupported_features_are_refused(extra, where, message) -> None:
    with pytest.raises(UnsupportedTariffError) as info:
        from_urdb(_record(**extra))
    assert info.value.where == where and message in info.value.message


def test_schedule_hour_without_a_period_names_month_and_hour() -> None:
    record = _record()
    record["energyweekdayschedule"][6][17] = 2
    with pytest.raises(TariffError) as info:
        from_urdb(record)
    assert str(info.value).startswith(
        "energyweekdayschedule[6][17]: hour 17:00-18:00 of month 7 has no period")
    record["energyweekdayschedule"][6][17] = None
    with pytest.raises(TariffError, match="of month 7 has no period"):
        from_urdb(record)


@pytest.mark.parametrize("extra, where", [
    ({"energyratestructure": [[{"rate": -0.1}], [{"rate": 0.2}]]}, "energyratestructure[0][0].rate"),
    ({"energyweekendschedule": [[0] * 24] * 11}, "energyweekendschedule"),
    ({"energyratestructure": []}, "energyratestructure"),
])
def test_malformed_records_name_the_key(extra, where) -> None:
    with pytest.raises(TariffError) as info:
        from_urdb(_record(**extra))
    assert info.value.where == where


def test_uniform_tiers_become_tier_blocks() -> None:
    record = _record(energyratestructure=[
        [{"rate": 0.10, "max": 100}, {"rate": 0.15, "max": 300}, {"rate": 0.30}],
        [{"rate": 0.20, "max": 100}, {"rate": 0.25, "max": 300}, {"rate": 0.40}]])
    version = from_urdb(record).versions[0]
    assert version.price_micro[0].tolist() == [100_000, 200_000]
    assert version.tiers.basis == "monthly"
    assert version.tiers.upper_wh.tolist() == [100_000, 300_000]
    assert version.tiers.adder_micro.tolist() == [0, 50_000, 200_000]


def test_startdate_is_the_effective_date() -> None:
    version = from_urdb(_record(startdate=1735689600)).versions[0]  # 2025-01-01T00:00Z
    assert str(version.effective_from) == "2025-01-01"


def test_tiered_rates_agree_with_pysam_month_totals() -> None:
    """SAM applies tiers to the month's total kWh and spreads each tier over the periods in
    proportion; with the same step between tiers in every period that is the engine's
    "period price + block adder", so month totals must agree (within half a fen per line)."""
    try:
        import PySAM.Utilityrate5 as ur5
    except ImportError as exc:  # pragma: no cover - nrel-pysam is a declared test dependency
        pytest.fail(f"PySAM is not importable, so this oracle check did NOT run: {exc}")
    tiers = [[{"rate": 0.10, "max": 300}, {"rate": 0.13, "max": 700}, {"rate": 0.22}],
             [{"rate": 0.25, "max": 300}, {"rate": 0.28, "max": 700}, {"rate": 0.37}]]
    record = _record(energyratestructure=tiers, fixedchargefirstmeter=0)
    rng = np.random.default_rng(11)
    kwh = np.round(rng.uniform(0, 2.5, 8760), 3)
    result = bill(from_urdb(record), kwh, "2018-01-01T00:00", 60)

    m = ur5.new()
    er = m.ElectricityRates
    er.en_electricity_rates = 1
    er.ur_metering_option = 0
    er.ur_dc_enable = 0
    er.ur_en_ts_sell_rate = 0
    er.ur_en_ts_buy_rate = 0
    er.ur_ec_sched_weekday = [[p + 1 for p in row] for row in WEEKDAY]
    er.ur_ec_sched_weekend = [[p + 1 for p in row] for row in WEEKEND]
    er.ur_ec_tou_mat = [[p + 1, t + 1, tier.get("max", 1e38), 0, tier["rate"], 0.0]
                        for p, period in enumerate(tiers) for t, tier in enumerate(period)]
    er.rate_escalation = [0]
    m.Lifetime.analysis_period = 1
    m.Lifetime.inflation_rate = 0
    m.Lifetime.system_use_lifetime_output = 0
    m.Load.load = kwh.tolist()
    m.Load.load_escalation = [0]
    m.SystemOutput.gen = [0.0] * 8760
    m.SystemOutput.degradation = [0]
    m.execute(0)
    pysam_months = np.array(m.Outputs.year1_monthly_ec_charge_without_system) * 100
    tier_used = 0
    for i, month in enumerate(np.unique(result.month)):
        cols = result.month == month
        ours = int(result.amount_fen[0, cols].sum())
        assert abs(ours - pysam_months[i]) <= cols.sum() / 2 + 1e-6
        tier_used += int(result.wh[0, cols & (result.kind == LineKind.TIER)].sum())
    assert tier_used > 0
