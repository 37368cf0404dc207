"""Fixtures for the prepaid tests: a prepaid site under the Jiangsu TOU tariff and a discount
contract, its switch in the device simulator, top-ups through real signed WeChat Pay
notifications, and an independent computation of what each day should cost.

The expected figures are worked out here from billing_engine alone (the tariff's calendar,
``price_cycle`` on the cumulative self-use per DL/T 645 rate), not through settlement.prepaid.accounts.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import billing_engine
from billing_engine import tou
from billing_engine.pricing import ContractTerms, price_cycle
from settlement import models as m
from settlement.notify.outbox import NotifyApps
from settlement.pay import payments
from settlement.prepaid import accounts as prepaid
from settlement.fakes.device_simulator import DeviceSimulator
from settlement.clock import LOCAL, UTC

TARIFF_DOC = json.loads((Path(billing_engine.__file__).parent / "tariffs" / "jiangsu-2025.json").read_text())
TARIFF = billing_engine.parse_tariff(TARIFF_DOC)
TERMS = ContractTerms(model="discount", discount="0.85")
RATES = ("sharp", "peak", "flat", "valley")


@pytest.fixture
def device():
    return DeviceSimulator()


_seq = iter(range(1, 10**9))


async def prepaid_site(settings, device: DeviceSimulator, *, reading_day: int = 1, **terms) -> dict:
    """An owner (bound in the mini-program), an operator bound in the official account (alarms),
    a plant under a 0.85 discount contract on the Jiangsu tariff, and its prepaid account with
    one electricity service that follows the contract."""
    n = next(_seq)
    owner = await m.Owner.create(name=f"预付业主{n}")
    identity = await m.WechatIdentity.create(app_id=settings.mp_appid, openid=f"o-prepaid-{n}-{secrets.token_hex(3)}",
                                             owner=owner)
    staff = await m.Staff.create(name=f"值班{n}", role=m.StaffRole.OPERATOR)
    await m.WechatIdentity.create(app_id=settings.oa_appid, openid=f"o-staff-{n}-{secrets.token_hex(3)}", staff=staff)
    if not await m.Tariff.filter(code="js-2025").exists():
        await m.Tariff.create(code="js-2025", name="Jiangsu", effective_from=dt.date(2025, 6, 1), document=TARIFF_DOC)
    plant = await m.Plant.create(code=f"PP{n:05d}", name=f"预付屋顶{n}", owner=owner, capacity_kwp=Decimal("100"),
                                 reading_day=reading_day)
    await m.Contract.create(plant=plant, effective_from=dt.date(2025, 6, 1), tariff_code="js-2025",
                            pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"))
    meter = await m.Meter.create(plant=plant, serial=f"SW{n:06d}", kind=m.MeterKind.GRID, registers=["00010000"],
                                 installed_on=dt.date(2025, 1, 1))
    device.add(meter.serial)
    account = await prepaid.open_account(owner.id, f"预付屋顶{n}", meter.serial, plant_id=plant.id, **terms)
    service = await prepaid.add_service(account.id, "电", m.Utility.ELECTRICITY, "kWh", follows_contract=True,
                                        meter_id=meter.id)
    return {"owner": owner, "identity": identity, "staff": staff, "plant": plant, "meter": meter,
            "account": account, "service": service}


async def top_up(pay_port, fake_pay, account: m.PrepaidAccount, identity: m.WechatIdentity, amount_fen: int,
                 now: dt.datetime) -> tuple[str, tuple[dict, bytes]]:
    """A top-up order paid at the fake; returns its out_trade_no and the signed notification
    (signed at ``now``), which the caller hands to payments.handle_notification (once or more)."""
    start = await prepaid.start_topup(pay_port, account.number, identity.id, amount_fen, now=now)
    fake_pay.pay_order(start.out_trade_no, at=now)
    return start.out_trade_no, fake_pay.payment_notification(start.out_trade_no, timestamp=int(now.timestamp()))


async def notify(pay_port, notification, now: dt.datetime, *, apps: NotifyApps) -> payments.Handled:
    return await payments.handle_notification(pay_port, *notification, now=now, apps=apps)


def day_rows(day: dt.date, kwh: np.ndarray) -> list[tuple[dt.datetime, str]]:
    """(start, kWh) rows of one local day's 96 intervals, kWh to the Wh."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=LOCAL)
    return [(start + dt.timedelta(minutes=15 * i), f"{float(q):.3f}") for i, q in enumerate(kwh)]


def _rate_index(period: str) -> int:
    # DL/T 645 rates registered by the meter: deep valley counts as valley
    return RATES.index("valley") if period == "deep_valley" else RATES.index(period)


def rate_prices(last_day: dt.date) -> np.ndarray:
    """Grid price per DL/T 645 rate on the cycle's last day [µyuan/kWh], VAT included."""
    version = TARIFF.version_at(last_day)
    return np.array([version.price_micro[last_day.month - 1, TARIFF.periods.index(r)] for r in RATES],
                    dtype=np.int64)


def kwh_per_rate(day: dt.date, kwh: np.ndarray) -> np.ndarray:
    """One day's interval kWh summed per DL/T 645 rate under the tariff's calendar [kWh]."""
    slots = np.datetime64(day.isoformat(), "m") + np.arange(96) * np.timedelta64(15, "m")
    periods = tou.classify(TARIFF, slots).period
    out = np.zeros(len(RATES))
    for i, p in enumerate(periods):
        out[_rate_index(TARIFF.periods[int(p)])] += round(float(kwh[i]), 3)
    return out


def expected_daily_fen(days: list[dt.date], profiles: dict[dt.date, np.ndarray], reading_day: int = 1
                       ) -> dict[dt.date, int]:
    """What each day should cost: C(d) − C(d−1), C = price_cycle on the cycle's cumulative
    self-use per rate at the grid prices of the cycle's last day [fen]."""
    out = {}
    cumulative, total_before, cycle = np.zeros(len(RATES)), 0, None
    for day in sorted(days):
        first = day.replace(day=reading_day) if day.day >= reading_day else \
            (day.replace(day=1) - dt.timedelta(days=1)).replace(day=reading_day)
        if first != cycle:
            cycle, cumulative, total_before = first, np.zeros(len(RATES)), 0
        end = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=reading_day)
        cumulative = cumulative + kwh_per_rate(day, profiles[day])
        total = int(price_cycle(TERMS, rate_prices(end - dt.timedelta(days=1)), [cumulative]).total_fen[0])
        out[day] = total - total_before
        total_before = total
    return out


async def charged_by_day(account: m.PrepaidAccount) -> dict[dt.date, int]:
    """Net charges posted per day [fen, positive = money taken]."""
    out: dict[dt.date, int] = {}
    for day, amount in await m.PrepaidEntry.filter(account_id=account.id, kind=m.EntryKind.CHARGE) \
            .values_list("day", "amount_fen"):
        out[day] = out.get(day, 0) - amount
    return out


async def ledger_sum(account: m.PrepaidAccount) -> int:
    return int(sum(await m.PrepaidEntry.filter(account_id=account.id).values_list("amount_fen", flat=True)))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=LOCAL).astimezone(UTC)
