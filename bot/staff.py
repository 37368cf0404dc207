"""Staff commands: the dispatcher has checked the role before any of these runs.

Each command calls the settlement service that owns the change, and that service writes the audit
event in the change's transaction (RecordManualReading, AdjustReading/AdjustForm, AdjustEnergy,
SendForm, ConfirmForm, RecordPayment, IssueInvitation, RequestRefund, ChangeFaultState, RequestInvoice). What no service audits,
the bot does: notifying an owner of a form again (NotifyForm, with the outbox rows it queued), the
owner's written word behind a confirmation (RecordOwnerWord), the arrears list, a plant's status
and a bill's notifications looked at (ListArrears, ViewPlant, ViewDelivery) and a report link
handed out (IssueReportLink). Owners are notified through the notification outbox
(:mod:`settlement.notify.outbox`), never directly from here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from decimal import Decimal

from tortoise.transactions import in_transaction

from bot import commands
from bot.commands import Command, Malformed
from bot.context import Caller, Env, Later
from bot.owner import live_state, power_w
from bot.replies import render
from bot.report_links import report_link
from settlement.billing import arrears as arrears_service
from settlement import audit
from settlement.billing import bills
from settlement.billing import invoices
from settlement.owners import bindings
from settlement.owners import faults
from settlement.cycles import forms
from settlement.telemetry import generation
from settlement.telemetry import live
from settlement.notify import outbox
from settlement.pay import payments
from settlement.readings import ingest as readings
from settlement.errors import Conflict, InvalidInput, NotFound
from settlement.i18n import Ref
from settlement.models import (
    Bill,
    FaultReport,
    FaultState,
    FormState,
    Meter,
    OutboxMessage,
    Owner,
    Payment,
    PaymentChannel,
    Plant,
    PlantOutage,
    ReadingCycle,
    ReadingSource,
    Staff,
    TelemetrySample,
)
from settlement.billing.reports import cycle_report
from webapp.settings import energy_limits
from settlement.clock import LOCAL

log = logging.getLogger("pvsettle.bot")

CHANNELS = {"bank": PaymentChannel.BANK_TRANSFER, "bank_transfer": PaymentChannel.BANK_TRANSFER,
            "转账": PaymentChannel.BANK_TRANSFER, "银行": PaymentChannel.BANK_TRANSFER,
            "counter": PaymentChannel.COUNTER, "cash": PaymentChannel.COUNTER, "柜台": PaymentChannel.COUNTER,
            "现金": PaymentChannel.COUNTER, "other": PaymentChannel.OTHER, "其他": PaymentChannel.OTHER}
WECHAT_WORDS = ("wechat", "微信", "weixin")
ENERGIES = {"generation": "generation", "发电": "generation", "export": "export", "上网": "export",
            "grid": "grid", "下网": "grid"}
RATES = {"sharp": "sharp", "尖": "sharp", "peak": "peak", "峰": "peak", "flat": "flat", "平": "flat",
         "valley": "valley", "谷": "valley"}
ENERGY_WORDS = ("电量", "energy")
#: Bills shown in the arrears list (the rest are counted).
ARREARS_LISTED = 20
#: Notifications of a bill shown, newest first.
NOTICES_LISTED = 10


def _staff(caller: Caller) -> Staff:
    assert caller.staff is not None  # the dispatcher lets only staff reach these
    return caller.staff


def _malformed(cmd: Command, problem: str) -> Malformed:
    return Malformed(cmd.spec, problem)


async def plant_by_code(code: str) -> Plant:
    """The plant of this code, case-blind; NotFound (``unknown_plant``) otherwise."""
    plant = await Plant.get_or_none(code=code)
    if plant is None:
        matches = await Plant.filter(code__iexact=code).limit(2)
        plant = matches[0] if len(matches) == 1 else None
    if plant is None:
        raise NotFound(f"no plant {code!r}", code="unknown_plant", params={"plant": code})
    return plant


async def bill_by_ref(ref: str) -> Bill:
    """A bill by its number (case-blind) or its id; NotFound (``unknown_bill``) otherwise."""
    bill = await Bill.get_or_none(number=ref)
    if bill is None:
        matches = await Bill.filter(number__iexact=ref).limit(2)
        bill = matches[0] if len(matches) == 1 else None
    if bill is None and ref.isascii() and ref.isdigit() and len(ref) <= 12:
        bill = await Bill.get_or_none(id=int(ref))
    if bill is None:
        raise NotFound(f"no bill {ref!r}", code="unknown_bill", params={"bill": ref})
    return bill


def _meter_of(meters: list[Meter], serial: str) -> Meter | None:
    return next((m for m in meters if m.serial == serial), None) or \
        next((m for m in meters if m.serial.lower() == serial.lower()), None)


def _local(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=LOCAL)


async def reading(cmd: Command, caller: Caller, env: Env) -> str:
    """抄表 <plant> [meter] <register> <value> [time]"""
    staff = _staff(caller)
    plant = await plant_by_code(cmd.args[0])
    meters = await Meter.filter(plant_id=plant.id).order_by("serial")
    rest = list(cmd.args[1:])
    meter = _meter_of(meters, rest[0])
    if meter is not None:
        rest = rest[1:]
    if len(rest) < 2:
        raise _malformed(cmd, "缺少寄存器或读数")
    try:
        register = commands.register(rest[0])
    except ValueError:
        raise _malformed(cmd, f"「{rest[0][:20]}」不是电表编号，也不是 8 位寄存器编码") from None
    value = rest[1]
    read_at = env.now
    if rest[2:]:
        try:
            read_at = _local(dt.datetime.fromisoformat(" ".join(rest[2:])))
        except ValueError:
            raise _malformed(cmd, "时间格式应为 2026-10-01 08:00") from None
    if meter is None:
        candidates = [m for m in meters if register in {str(r).upper() for r in m.registers} and m.removed_on is None]
        if not candidates:
            raise NotFound(f"plant {plant.code} has no meter in service reporting register {register}",
                           code="unknown_register")
        if len(candidates) > 1:
            raise _malformed(cmd, "多块电表有此寄存器，请写明电表编号：" + "、".join(m.serial for m in candidates))
        meter = candidates[0]
    result = await readings.ingest_readings(
        [{"meter": meter.serial, "register": register, "read_at": read_at, "value": value}],
        source=ReadingSource.MANUAL, received_from=f"staff:{staff.id}", staff=staff, row_names=["抄表"],
        limits=energy_limits(env.settings))
    row = result.results[0]
    return render("reading", status=str(row.status), error=row.error, flag=row.flag, plant=plant, meter=meter,
                  register=register, value=value, read_at=read_at)


async def _latest_cycle(plant: Plant) -> ReadingCycle:
    cycle = await ReadingCycle.filter(plant_id=plant.id).order_by("-period").first()
    if cycle is None:
        raise NotFound(f"plant {plant.code} has no reading cycle yet", code="unknown_cycle")
    return cycle


async def adjust(cmd: Command, caller: Caller, env: Env) -> str:
    """调整 <plant> <meter> <register> <value> 原因 <reason> | 调整 <plant> 电量 <energy> <rate> <kWh> 原因 …"""
    staff = _staff(caller)
    plant = await plant_by_code(cmd.args[0])
    if cmd.args[1].lower() in ENERGY_WORDS:
        if len(cmd.args) != 5:
            raise _malformed(cmd, "电量调整需要：能量类别、时段、电量")
        what, rate = ENERGIES.get(cmd.args[2].lower()), RATES.get(cmd.args[3].lower())
        if what is None or rate is None:
            raise _malformed(cmd, "能量类别为 发电/上网/下网，时段为 尖/峰/平/谷")
        cycle = await _latest_cycle(plant)
        form = await forms.adjust_energy(plant.code, cycle.period, what, rate, cmd.args[4], cmd.reason or "", staff,
                                         now=env.now, apps=env.notify)
        return render("adjust", form=form, plant=plant, period=cycle.period, energy=what, rate=rate,
                      value=cmd.args[4], reason=cmd.reason)
    if len(cmd.args) != 4:
        raise _malformed(cmd, "读数调整需要：电表、寄存器、读数")
    meter = _meter_of(await Meter.filter(plant_id=plant.id), cmd.args[1])
    if meter is None:
        raise NotFound(f"plant {plant.code} has no meter {cmd.args[1]!r}", code="unknown_meter")
    try:
        register = commands.register(cmd.args[2])
    except ValueError:
        raise _malformed(cmd, f"「{cmd.args[2][:20]}」不是 8 位寄存器编码") from None
    cycle = await _latest_cycle(plant)
    form = await forms.adjust_reading(plant.code, cycle.period, meter.serial, register, cmd.args[3],
                                      cmd.reason or "", staff, now=env.now, apps=env.notify)
    return render("adjust", form=form, plant=plant, period=cycle.period, meter=meter, register=register,
                  value=cmd.args[3], reason=cmd.reason, energy=None, rate=None)


async def reissue(cmd: Command, caller: Caller, env: Env) -> Later:
    """重发 <plant> <period>: a draft is sent (send_form, whose transaction queues FormSent in the
    notification outbox); a sent or disputed form gets a new FormSent message in the outbox,
    with the bot's NotifyForm audit event in the same transaction. Acknowledged at once."""
    staff = _staff(caller)
    plant = await plant_by_code(cmd.args[0])
    try:
        period = commands.period(cmd.args[1])
    except ValueError:
        raise _malformed(cmd, "期间格式应为 YYYY-MM") from None
    cycle = await ReadingCycle.get_or_none(plant_id=plant.id, period=period)
    if cycle is None:
        raise NotFound(f"plant {plant.code} has no cycle {period}", code="unknown_cycle")

    async def run() -> str:
        form = await forms.latest_form(cycle.id)
        if form.state == FormState.DRAFT:
            form = await forms.send_form(form.id, staff, now=env.now, apps=env.notify)
            rows = await OutboxMessage.filter(dedupe_key__startswith=f"form:{form.id}:FormSent:")
            return render("reissue", plant=plant, period=period, form=form, sent=True, rows=rows)
        if form.state not in (FormState.SENT, FormState.DISPUTED):
            raise Conflict(f"the latest form (#{form.id}) is {form.state.value}: there is nothing to send again",
                           code="bad_state", params={"state": Ref(f"form_state.{form.state.value}")})
        payload = {"plant_name": plant.name, "period": period, "self_use_kwh": f"{form.self_use_kwh:.3f}",
                   "answer_by": form.answer_due_at or env.now, "form_id": form.id}
        async with in_transaction() as conn:
            # keyed by this message: WeChat's retry of it queues nothing twice
            rows = await outbox.notify_owner("FormSent", plant.owner_id, "form_sent", payload,
                                             f"form:{form.id}:Reissue:{env.msg_id}", using_db=conn, apps=env.notify,
                                             now=env.now)
            await audit.record(audit.actor_of(staff), "NotifyForm", "form", form.id,
                               after={"outbox": [row.id for row in rows]}, using_db=conn)
        return render("reissue", plant=plant, period=period, form=form, sent=False, rows=rows)

    return Later(run=run, ack=render("busy", what="重发确认单"))


def _form_id(cmd: Command) -> int:
    ref = cmd.args[0].removeprefix("#")
    if not (ref.isascii() and ref.isdigit() and len(ref) <= 12):
        raise _malformed(cmd, "确认单编号是数字，例如 #12")
    return int(ref)


async def confirm(cmd: Command, caller: Caller, env: Env) -> str:
    """确认 <form> [原因 <note>]"""
    staff = _staff(caller)
    form = await forms.confirm_form(_form_id(cmd), staff=staff, now=env.now)
    if cmd.reason:
        await audit.record(audit.actor_of(staff), "RecordOwnerWord", "form", form.id,
                           after={"state": form.state}, reason=cmd.reason[:500])
    cycle = await ReadingCycle.get(id=form.cycle_id).prefetch_related("plant")
    return render("confirm", form=form, plant=cycle.plant, period=cycle.period, note=cmd.reason)


async def collect(cmd: Command, caller: Caller, env: Env) -> str:
    """收款 <bill> <amount> <channel> [reference]"""
    staff = _staff(caller)
    bill = await bill_by_ref(cmd.args[0])
    try:
        fen = commands.amount_fen(cmd.args[1])
    except ValueError:
        raise _malformed(cmd, f"金额「{cmd.args[1][:20]}」应为元，最多两位小数") from None
    word = cmd.args[2].lower()
    if word in WECHAT_WORDS:
        raise InvalidInput("WeChat Pay payments are recorded from WeChat Pay's own notification",
                           code="wechat_channel")
    channel = CHANNELS.get(word)
    if channel is None:
        raise _malformed(cmd, "收款方式为 转账/柜台/其他")
    reference = cmd.args[3] if len(cmd.args) == 4 else f"bot-{env.msg_id}"
    transaction_id = f"{channel.value}:{reference}"
    repeated = await Payment.exists(transaction_id=transaction_id)
    owed_before = bills.owed_fen(bill)
    payment = await bills.record_payment(bill.id, fen, channel, reference, apps=env.notify, staff=staff,
                                         paid_at=env.now)
    bill = await Bill.get(id=bill.id).prefetch_related("plant")
    to_credit = 0 if repeated else max(payment.amount_fen - owed_before, 0)
    return render("collect", payment=payment, bill=bill, owed_fen=bills.owed_fen(bill), repeated=repeated,
                  channel=channel, reference=reference, to_credit_fen=to_credit)


async def invite(cmd: Command, caller: Caller, env: Env) -> str:
    """邀请 <plant>: an invitation code for the plant's owner."""
    staff = _staff(caller)
    plant = await plant_by_code(cmd.args[0])
    code, invitation = await bindings.issue_invitation(plant.owner_id, staff, now=env.now)
    owner = await Owner.get(id=plant.owner_id)
    return render("invite", code=code, invitation=invitation, plant=plant, owner=owner)


async def payment_by_ref(ref: str) -> Payment:
    """A payment by its id or its transaction id (WeChat Pay's, or ``channel:reference`` offline)."""
    payment = await Payment.get_or_none(transaction_id=ref)
    if payment is None and ref.isascii() and ref.isdigit() and len(ref) <= 12:
        payment = await Payment.get_or_none(id=int(ref))
    if payment is None:
        raise NotFound(f"no payment {ref!r}", code="unknown_payment")
    return payment


async def refund(cmd: Command, caller: Caller, env: Env) -> Later:
    """退款 <payment> <amount> 原因 <reason> (admin): settlement.pay.payments.request_refund, in the
    background (a WeChat Pay refund calls WeChat Pay)."""
    staff = _staff(caller)
    if len(cmd.args) != 2 or not cmd.reason:
        raise _malformed(cmd, "退款需要：付款编号、金额和原因")
    payment = await payment_by_ref(cmd.args[0])
    try:
        fen = commands.amount_fen(cmd.args[1])
    except ValueError:
        raise _malformed(cmd, f"金额「{cmd.args[1][:20]}」应为元，最多两位小数") from None

    async def run() -> str:
        done = await payments.request_refund(payment.id, fen, cmd.reason or "", staff, apps=env.notify, pay=env.pay,
                                             now=env.now)
        bill = await Bill.get_or_none(id=payment.bill_id).prefetch_related("plant") if payment.bill_id else None
        return render("refund", refund=done, payment=payment, bill=bill,
                      owed_fen=bills.owed_fen(bill) if bill else None)

    return Later(run=run, ack=render("busy", what="退款"))


def _fault_id(cmd: Command) -> int:
    ref = cmd.args[0].removeprefix("#").removeprefix("F").removeprefix("f")
    if not (ref.isascii() and ref.isdigit() and len(ref) <= 12):
        raise _malformed(cmd, "报修编号是数字，例如 #12")
    return int(ref)


async def fault(cmd: Command, caller: Caller, env: Env) -> str:
    """工单 <fault> <state> [note]: settlement.owners.faults.set_fault_state (audit and the owner's
    notice are its own)."""
    staff = _staff(caller)
    report_id = _fault_id(cmd)
    try:
        state = faults.state_of_word(cmd.args[1])
    except InvalidInput:
        raise _malformed(cmd, f"状态「{cmd.args[1][:20]}」应为 受理、处理中 或 已修复") from None
    parts = cmd.text.split(None, 2)  # the note as typed, full-width punctuation and all
    note = parts[2].strip() if len(parts) > 2 else None
    report = await faults.set_fault_state(report_id, state, staff, note, apps=env.notify, now=env.now)
    plant = await Plant.get(id=report.plant_id)
    return render("fault", report=report, plant=plant)


async def invoice(cmd: Command, caller: Caller, env: Env) -> str:
    """开票 <bill>: settlement.billing.invoices.request_for_bill, the rule the mini-program and the
    CLI use too (its audit, RequestInvoice, is its own); the scheduler's invoices job hands the
    request to the tax system."""
    staff = _staff(caller)
    bill = await bill_by_ref(cmd.args[0])
    asked, made = await invoices.request_for_bill(bill.id, staff=staff)
    return render("invoice", bill=bill, request=asked, made=made)


async def arrears(cmd: Command, caller: Caller, env: Env) -> str:
    """欠费 [days]"""
    staff = _staff(caller)
    try:
        days = commands.whole_days(cmd.args[0]) if cmd.args else 1
    except ValueError:
        raise _malformed(cmd, "天数应为 0 到 3650 的整数") from None
    found = await arrears_service.arrears(days, today=env.now.astimezone(LOCAL).date(), limit=ARREARS_LISTED)
    await audit.record(audit.actor_of(staff), "ListArrears", "arrears", f"{days}d",
                       after={"count": found.count, "owed_fen": found.owed_fen})
    return render("arrears", found=found)


async def _fetch(query):
    """A query as a coroutine, for a task group (tortoise querysets are awaitable, not coroutines)."""
    return await query


async def plant_status(cmd: Command, caller: Caller, env: Env) -> str:
    """电站 <plant>"""
    staff = _staff(caller)
    plant = await plant_by_code(cmd.args[0])

    async def today() -> tuple[dict | None, int | None]:
        state = live_state(await env.redis.get(live.channel(env.ns, plant.id)))
        wh = generation.live_today_wh(state, env.now)
        return state, wh if wh is not None else await generation.today_wh(plant.id, env.now)

    # independent reads at once: the reply waits for the longest, not for their sum
    async with asyncio.TaskGroup() as group:
        owner = group.create_task(_fetch(Owner.get(id=plant.owner_id)))
        live_now = group.create_task(today())
        sample = group.create_task(_fetch(TelemetrySample.filter(device__plant_id=plant.id).order_by("-ts").first()))
        outages = group.create_task(_fetch(
            PlantOutage.filter(plant_id=plant.id, ended_at__isnull=True).order_by("started_at").limit(5)))
        faults = group.create_task(_fetch(
            FaultReport.filter(plant_id=plant.id, state__in=[FaultState.OPEN, FaultState.IN_PROGRESS]).count()))
    state, today_wh = live_now.result()
    await audit.record(audit.actor_of(staff), "ViewPlant", "plant", plant.id)
    return render("plant", plant=plant, owner=owner.result(), status=generation.status_of(state, env.now),
                  power_w=power_w(state), today_wh=today_wh, sample=sample.result(), outages=outages.result(),
                  faults=faults.result(), capacity=Decimal(plant.capacity_kwp))


async def report(cmd: Command, caller: Caller, env: Env) -> Later:
    """报表 <period>: the figures and a signed CSV link, made in the background."""
    staff = _staff(caller)
    try:
        period = commands.period(cmd.args[0])
    except ValueError:
        raise _malformed(cmd, "期间格式应为 YYYY-MM") from None

    async def run() -> str:
        made = await cycle_report(period, as_of=env.now.astimezone(LOCAL).date())
        path, expires = report_link(period, "csv", env.settings.secret_key, now=env.now)
        await audit.record(audit.actor_of(staff), "IssueReportLink", "report", f"cycle:{period}",
                           after={"format": "csv", "expires_at": expires, "rows": len(made.rows)})
        return render("report", period=period, rows=len(made.rows), totals=made.totals or {},
                      link=env.public_url + path, expires=expires)

    return Later(run=run, ack=render("busy", what=f"{period} 报表"))


async def notice(cmd: Command, caller: Caller, env: Env) -> str:
    """通知 <bill>: the latest notifications about the bill from the outbox, and where each stands."""
    staff = _staff(caller)
    bill = await bill_by_ref(cmd.args[0])
    rows = await outbox.delivery_state(bill_id=bill.id, limit=NOTICES_LISTED)
    await audit.record(audit.actor_of(staff), "ViewDelivery", "bill", bill.id, after={"messages": len(rows)})
    return render("notice", bill=bill, rows=rows)


HANDLERS = {"reading": reading, "adjust": adjust, "reissue": reissue, "confirm": confirm, "collect": collect,
            "invite": invite, "refund": refund, "fault": fault, "invoice": invoice, "arrears": arrears, "plant": plant_status,
            "report": report, "notice": notice}
