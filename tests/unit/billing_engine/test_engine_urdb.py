"""OpenEI URDB records: read into the engine's tariffs; demand charges refused, never ignored.

A tiered record's bill against PySAM's is in test_pysam_oracle.py, with the other oracle checks."""

from __future__ import annotations

import copy
import json

import pytest

from billing_engine import TariffError, UnsupportedTariffError, from_urdb, loads
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
