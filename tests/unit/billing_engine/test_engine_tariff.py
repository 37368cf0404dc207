"""Tariff files: the shipped example shapes, validation errors that name the place, versions."""

from __future__ import annotations

import copy
import datetime as dt
import json

import numpy as np
import pytest

from billing_engine import TariffError, example, loads, parse_tariff
from billing_engine.tariff import HOLIDAY, WEEKDAY, WEEKEND

SHARP, PEAK, FLAT, VALLEY, DEEP = range(5)


def _hours(spec: dict[int, list[tuple[float, float]]]) -> np.ndarray:
    """{period: [(from_hour, to_hour)]} → period per 15-minute slot; wraps past midnight."""
    slots = np.full(96, -1)
    for period, ranges in spec.items():
        for a, b in ranges:
            i, j = int(a * 4), int(b * 4)
            idx = np.arange(i, j) if j > i else np.concatenate([np.arange(i, 96), np.arange(0, j)])
            assert (slots[idx] == -1).all()
            slots[idx] = period
    assert (slots >= 0).all()
    return slots


# DOMAIN.md, written out again independently of the shipped file.
JIANGSU_SUMMER_WINTER = {PEAK: [(14, 22)], FLAT: [(6, 11), (13, 14), (22, 24)],
                         VALLEY: [(0, 6), (11, 13)]}
JIANGSU_SPRING_AUTUMN = {PEAK: [(15, 22)], FLAT: [(6, 10), (14, 15), (22, 2)],
                         VALLEY: [(2, 6), (10, 14)]}
JIANGSU_JUL_AUG = {SHARP: [(14, 15), (19.5, 21.5)], PEAK: [(15, 19.5), (21.5, 22)],
                   FLAT: [(6, 11), (13, 14), (22, 24)], VALLEY: [(0, 6), (11, 13)]}
JIANGSU_DEC_JAN = {SHARP: [(18, 20)], PEAK: [(14, 18), (20, 22)],
                   FLAT: [(6, 11), (13, 14), (22, 24)], VALLEY: [(0, 6), (11, 13)]}
ZHEJIANG_ORDINARY = {PEAK: [(8, 11), (13, 17)], FLAT: [(17, 24)], VALLEY: [(0, 8), (11, 13)]}
ZHEJIANG_SHARP = {SHARP: [(9, 11), (15, 17)], PEAK: [(8, 9), (17, 23)], FLAT: [(13, 15), (23, 24)],
                  VALLEY: [(0, 8), (11, 13)]}


@pytest.mark.parametrize("month", range(1, 13))
def test_jiangsu_2025_shape_is_the_published_one(month: int) -> None:
    tariff = example("jiangsu-2025")
    assert tariff.periods == ("sharp", "peak", "flat", "valley", "deep_valley")
    version = tariff.versions[0]
    assert version.effective_from == dt.date(2025, 6, 1)
    spec = {7: JIANGSU_JUL_AUG, 8: JIANGSU_JUL_AUG, 12: JIANGSU_DEC_JAN, 1: JIANGSU_DEC_JAN,
            6: JIANGSU_SUMMER_WINTER, 2: JIANGSU_SUMMER_WINTER}.get(month, JIANGSU_SPRING_AUTUMN)
    expected = _hours(spec)
    assert version.slot_period[month - 1, WEEKDAY].tolist() == expected.tolist()
    assert version.slot_period[month - 1, WEEKEND].tolist() == expected.tolist()
    holiday = expected.copy()
    holiday[40:56] = DEEP  # holiday deep valley 10–14
    assert version.slot_period[month - 1, HOLIDAY].tolist() == holiday.tolist()


@pytest.mark.parametrize("month", range(1, 13))
def test_zhejiang_2024_shape_is_the_published_one(month: int) -> None:
    version = example("zhejiang-2024").versions[0]
    expected = _hours(ZHEJIANG_SHARP if month in (1, 7, 8, 12) else ZHEJIANG_ORDINARY)
    assert version.slot_period[month - 1, WEEKDAY].tolist() == expected.tolist()
    holiday = expected.copy()
    holiday[40:56] = DEEP
    assert version.slot_period[month - 1, HOLIDAY].tolist() == holiday.tolist()


@pytest.mark.parametrize("name", ["jiangsu-2025", "zhejiang-2024"])
def test_examples_say_their_prices_are_illustrative(name: str) -> None:
    tariff = example(name)
    assert "ILLUSTRATIVE" in tariff.note
    version = tariff.versions[0]
    price = dict(zip(tariff.periods, version.price_micro[0]))
    assert price["sharp"] > price["peak"] > price["flat"] > price["valley"] > price["deep_valley"] > 0
    assert version.vat_ppm == 130_000 and version.prices_include_vat


def _minimal() -> dict:
    return {
        "format": "pvsettle-tariff/1",
        "name": "test",
        "periods": ["peak", "flat", "valley"],
        "versions": [{
            "effective_from": "2025-01-01",
            "seasons": [{"name": "all", "months": list(range(1, 13)), "weekday": "day"}],
            "day_schedules": {"day": [["00:00", "08:00", "valley"], ["08:00", "19:30", "flat"],
                                      ["19:30", "24:00", "peak"]]},
            "prices": {"peak": "1.2", "flat": "0.7", "valley": "0.3"},
        }],
    }


def test_half_hour_boundaries_are_accepted() -> None:
    version = parse_tariff(_minimal()).versions[0]
    assert version.slot_period[0, WEEKDAY, 77] == 1 and version.slot_period[0, WEEKDAY, 78] == 0


def _error(obj: dict) -> str:
    with pytest.raises(TariffError) as info:
        parse_tariff(obj)
    return str(info.value)


def test_schedule_leaving_hours_without_a_period_names_the_hours() -> None:
    obj = _minimal()
    obj["versions"][0]["day_schedules"]["day"] = [["00:00", "02:00", "valley"],
                                                   ["06:00", "24:00", "flat"]]
    assert _error(obj) == "versions[0].day_schedules.day: 02:00-06:00 has no period"


def test_schedule_with_two_gaps_names_both() -> None:
    obj = _minimal()
    obj["versions"][0]["day_schedules"]["day"] = [["01:00", "12:00", "valley"],
                                                   ["12:30", "23:45", "flat"]]
    msg = _error(obj)
    assert "00:00-01:00, 12:00-12:30, 23:45-24:00 has no period" in msg


def test_negative_price_names_the_field() -> None:
    obj = _minimal()
    obj["versions"][0]["prices"]["peak"] = "-0.1"
    msg = _error(obj)
    assert msg.startswith("versions[0].prices.peak: ") and "≥ 0" in msg


@pytest.mark.parametrize("mutate, expected", [
    (lambda o: o["versions"][0]["day_schedules"]["day"].append(["07:00", "09:00", "peak"]),
     "versions[0].day_schedules.day[3]: 07:00-09:00 is given more than one period"),
    (lambda o: o["versions"][0]["day_schedules"]["day"].__setitem__(0, ["00:00", "08:10", "valley"]),
     "versions[0].day_schedules.day[0]: 08:10 is not on a 15-minute boundary"),
    (lambda o: o["versions"][0]["day_schedules"]["day"].__setitem__(0, ["00:00", "08:00", "night"]),
     "versions[0].day_schedules.day[0]: unknown period 'night'"),
    (lambda o: o["versions"][0]["seasons"][0].__setitem__("months", [1, 2, 3]),
     "versions[0].seasons: months [4, 5, 6, 7, 8, 9, 10, 11, 12] belong to no season"),
    (lambda o: o["versions"][0]["prices"].pop("flat"),
     "versions[0].prices: no price for period 'flat'"),
    (lambda o: o["versions"][0]["prices"].__setitem__("flat", "0.1234567"),
     "versions[0].prices.flat: price 0.1234567 has more decimals"),
    (lambda o: o["versions"][0]["seasons"][0].__setitem__("weekday", "nope"),
     "versions[0].seasons[0].weekday: unknown day schedule 'nope'"),
    (lambda o: o.__setitem__("format", "other"), "format: format must be"),
    (lambda o: o["versions"].append(copy.deepcopy(o["versions"][0])),
     "versions[1].effective_from: versions must be in increasing effective_from order"),
    (lambda o: o["versions"][0].__setitem__("effective_from", "2025-13-01"),
     "versions[0].effective_from: date must be"),
    (lambda o: o["versions"][0].__setitem__("tiers", {"basis": "weekly", "blocks": []}),
     "versions[0].tiers.basis:"),
    (lambda o: o["versions"][0].__setitem__("tiers", {"basis": "monthly", "blocks": [
        {"up_to_kwh": 200, "adder": "0"}, {"up_to_kwh": 100, "adder": "0.1"},
        {"up_to_kwh": None, "adder": "0.2"}]}),
     "versions[0].tiers.blocks[1].up_to_kwh: block bounds must increase"),
    (lambda o: o["versions"][0].__setitem__("fixed_monthly", "1.234"),
     "versions[0].fixed_monthly: fixed monthly charge 1.234 has more decimals"),
])
def test_invalid_tariffs_name_the_place(mutate, expected) -> None:
    obj = _minimal()
    mutate(obj)
    assert expected in _error(obj)


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(TariffError, match=r"line 3 column 1: invalid JSON"):
        loads('{\n"format": "pvsettle-tariff/1",\n}')


def test_prices_read_exactly_from_json_numbers() -> None:
    text = json.dumps(_minimal()).replace('"0.7"', "0.7000001")
    with pytest.raises(TariffError, match="versions.0..prices.flat: price 0.7000001 has more"):
        loads(text)
    text = json.dumps(_minimal()).replace('"0.3"', "0.1")
    assert loads(text).versions[0].price_micro[0, 2] == 100_000


def test_seasons_prices_tiers_fixed_vat_and_late_fee_are_read() -> None:
    obj = _minimal()
    v = obj["versions"][0]
    v["seasons"] = [
        {"name": "summer", "months": [6, 7, 8], "weekday": "day", "prices": {"peak": "1.5"}},
        {"name": "rest", "months": [1, 2, 3, 4, 5, 9, 10, 11, 12], "weekday": "day",
         "weekend": "flat_day"},
    ]
    v["day_schedules"]["flat_day"] = [["00:00", "24:00", "flat"]]
    v["tiers"] = {"basis": "annual", "blocks": [{"up_to_kwh": 2760, "adder": "0"},
                                                {"up_to_kwh": 4800, "adder": "0.05"},
                                                {"up_to_kwh": None, "adder": "0.3"}]}
    v["fixed_monthly"] = "12.50"
    v["vat_rate"] = "0.13"
    v["prices_include_vat"] = False
    v["late_fee"] = {"residential": "0.0015"}
    version = parse_tariff(obj).versions[0]
    assert version.price_micro[6].tolist() == [1_500_000, 700_000, 300_000]
    assert version.price_micro[0].tolist() == [1_200_000, 700_000, 300_000]
    assert (version.slot_period[0, WEEKEND] == 1).all()
    assert version.slot_period[6, WEEKEND].tolist() == version.slot_period[6, WEEKDAY].tolist()
    assert version.tiers.basis == "annual"
    assert version.tiers.upper_wh.tolist() == [2_760_000, 4_800_000]
    assert version.tiers.adder_micro.tolist() == [0, 50_000, 300_000]
    assert version.fixed_monthly_fen == 1250
    assert version.vat_ppm == 130_000 and version.prices_include_vat is False
    assert version.late_fee.residential_ppm == 1500 and version.late_fee.current_year_ppm == 2000


def test_versions_by_effective_date() -> None:
    obj = _minimal()
    later = copy.deepcopy(obj["versions"][0])
    later["effective_from"] = "2025-07-01"
    later["prices"]["peak"] = "1.3"
    obj["versions"].append(later)
    tariff = parse_tariff(obj)
    assert tariff.version_at(dt.date(2025, 6, 30)).price_micro[0, 0] == 1_200_000
    assert tariff.version_at(dt.date(2025, 7, 1)).price_micro[0, 0] == 1_300_000
    assert tariff.version_index(np.array(["2024-12-31", "2025-01-01"], dtype="datetime64[D]")
                                ).tolist() == [-1, 0]
    with pytest.raises(TariffError, match="no version in force on 2024-12-31"):
        tariff.version_at(dt.date(2024, 12, 31))


def test_holiday_schedule_and_weekend_days() -> None:
    obj = _minimal()
    v = obj["versions"][0]
    v["day_schedules"]["off"] = [["00:00", "24:00", "valley"]]
    v["seasons"][0]["holiday"] = "off"
    v["weekend_days"] = ["sun"]
    v["holidays"] = {"dates": ["2025-10-01"]}
    version = parse_tariff(obj).versions[0]
    assert version.weekend_days == (6,)
    assert (version.slot_period[:, HOLIDAY] == 2).all()
    assert version.holidays.tolist() == [dt.date(2025, 10, 1)]
