"""Property: over random sequences of top-ups, daily usage, late and corrected readings and
refunds (some of which WeChat Pay closes, giving the money back), Σ top-ups − Σ refunds −
Σ charges = available balance, to the fen, at every step; and each day is charged
billing_engine's figure for the usage finally received."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pay_support import admin, fake_pay, pay_port  # noqa: F401
from prepaid_support import (
    charged_by_day,
    day_rows,
    device,  # noqa: F401
    expected_daily_fen,
    ledger_sum,
    local,
    notify,
    prepaid_site,
    top_up,
)

from settlement.pay import payments
from settlement.prepaid import accounts as prepaid
from settlement import models as m
from settlement.errors import Conflict

FIRST = dt.date(2026, 3, 2)
STEP = st.one_of(
    st.tuples(st.just("topup"), st.integers(1, 200000)),  # [fen]
    st.tuples(st.just("usage"), st.integers(0, 7), st.integers(0, 3000)),  # (day, Wh per interval)
    st.tuples(st.just("late"), st.integers(0, 7), st.integers(0, 95), st.integers(0, 5000)),  # one interval
    st.tuples(st.just("refund"), st.integers(0, 5), st.one_of(st.integers(1, 3000), st.integers(1, 200000))),
    st.tuples(st.just("refund_closed"), st.integers(0, 5)),  # WeChat Pay closes a pending refund
)
_example = itertools.count()


@given(steps=st.lists(STEP, min_size=1, max_size=14))
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_top_ups_less_refunds_less_charges_is_the_balance(settings, device, pay_port, fake_pay,  # noqa: F811
                                                            notify_apps, steps):
    site = await prepaid_site(settings, device)
    account, service = site["account"], site["service"]
    staff = await admin()
    profiles: dict[dt.date, np.ndarray] = {}  # [Wh per interval] as last sent
    topups: list[tuple[int, int]] = []  # (payment id, fen)
    refunded: dict[int, int] = {}
    pending: list[m.Refund] = []
    now = local(2026, 3, 20, 10) + dt.timedelta(hours=next(_example))
    for step in steps:
        now += dt.timedelta(minutes=1)
        if step[0] == "topup":
            no, note = await top_up(pay_port, fake_pay, account, site["identity"], step[1], now)
            assert (await notify(pay_port, note, now, apps=notify_apps)).status == 204
            topups.append(((await m.Payment.get(out_trade_no=no)).id, step[1]))
        elif step[0] in ("usage", "late"):
            day = FIRST + dt.timedelta(days=step[1])
            profile = profiles.get(day, np.zeros(96, dtype=np.int64)).copy()
            if step[0] == "usage":
                profile[:] = step[2]
                rows = day_rows(day, profile / 1000)
            else:
                profile[step[2]] = step[3]
                rows = day_rows(day, profile / 1000)[step[2]:step[2] + 1]
            result = await prepaid.record_usage(service.id, rows, now=now, apps=notify_apps)
            if result.changed:
                event("a reading corrected")
            profiles[day] = profile
        elif step[0] == "refund_closed":
            if pending:
                refund = pending.pop(step[1] % len(pending))
                fake_pay.settle_refund(refund.out_refund_no, "CLOSED")
                note = fake_pay.refund_notification(refund.out_refund_no, timestamp=int(now.timestamp()))
                assert (await notify(pay_port, note, now, apps=notify_apps)).status == 204
                refunded[refund.payment_id] -= refund.amount_fen
                event("a refund closed and returned")
        elif topups:
            payment_id, paid = topups[step[1] % len(topups)]
            available = (await m.PrepaidAccount.get(id=account.id)).available_fen
            allowed = min(paid - refunded.get(payment_id, 0), available)
            try:
                refund = await payments.refund_topup(payment_id, step[2], "多充退回", staff, pay=pay_port, now=now,
                                                     apps=notify_apps)
            except Conflict:
                assert step[2] > allowed
            else:
                assert step[2] <= allowed
                event("a refund taken")
                if refund.state == m.RefundState.PENDING:
                    pending.append(refund)
                refunded[payment_id] = refunded.get(payment_id, 0) + step[2]

        acc = await m.PrepaidAccount.get(id=account.id)
        expected = expected_daily_fen(list(profiles), {d: p / 1000 for d, p in profiles.items()})
        charged = await charged_by_day(acc)
        assert {d: charged.get(d, 0) for d in expected} == expected and set(charged) <= set(expected)
        assert acc.available_fen == await ledger_sum(acc) == \
            sum(a for _, a in topups) - sum(refunded.values()) - sum(expected.values())
        summary = await prepaid.balance(acc.id)
        assert summary["balance_fen"] == sum(a for _, a in topups) - sum(refunded.values())
        assert summary["charges_fen"] == sum(expected.values())
        # the thresholds follow the balance once money moved (a new account waits for its first top-up)
        if not await m.PrepaidEntry.filter(account_id=acc.id).exists():
            assert acc.alert_state == m.AlertState.NORMAL
        elif acc.available_fen > acc.warning_fen:
            assert acc.alert_state == m.AlertState.NORMAL
        elif acc.available_fen > 0:
            assert acc.alert_state == m.AlertState.WARNED
        else:
            assert acc.alert_state in (m.AlertState.CUTOFF_PENDING, m.AlertState.CUT_OFF)
