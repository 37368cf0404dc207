"""A minimal but complete object graph: one of every model, linked as in production."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from settlement import models as m
from settlement.clock import UTC



async def one_of_everything() -> dict[str, object]:
    now = dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
    owner = await m.Owner.create(code="OW-1", name="张三", kind=m.OwnerKind.COMMERCIAL, phone="13800000000")
    staff = await m.Staff.create(code="S-1", name="李四", role=m.StaffRole.OPERATOR)
    identity = await m.WechatIdentity.create(app_id="wxmp", openid="o-owner", owner=owner)
    plant = await m.Plant.create(code="P0001", name="厂房屋顶", owner=owner, capacity_kwp=Decimal("512.400"),
                                 reading_day=25)
    access = await m.PlantAccess.create(plant=plant, identity=identity, right=m.PlantRight.PAY)
    tariff = await m.Tariff.create(code="js-2025", name="Jiangsu", effective_from=dt.date(2025, 6, 1),
                                   document={"periods": ["peak", "flat", "valley"]})
    contract = await m.Contract.create(plant=plant, effective_from=dt.date(2025, 6, 1), tariff_code="js-2025",
                                       pricing_model=m.PricingModel.GRID_DISCOUNT, discount=Decimal("0.85"))
    meter = await m.Meter.create(plant=plant, serial="M0001", kind=m.MeterKind.GRID, multiplier=80,
                                 registers=["00010000", "00020000"], installed_on=dt.date(2025, 1, 1))
    reading = await m.Reading.create(meter=meter, register="00010000", read_at=now, value=Decimal("1234.5600"),
                                     source=m.ReadingSource.AMI)
    cycle = await m.ReadingCycle.create(plant=plant, period="2026-10", starts_at=now - dt.timedelta(days=30),
                                        ends_at=now)
    form = await m.ConfirmationForm.create(cycle=cycle, lines=[], periods={}, generation_kwh=Decimal("1"),
                                           self_use_kwh=Decimal("1"), export_kwh=Decimal("0"),
                                           grid_kwh=Decimal("0"))
    bill = await m.Bill.create(number="B202610-0001", cycle=cycle, form=form, plant=plant, owner=owner,
                               issued_at=now, due_on=dt.date(2026, 11, 9), total_fen=10000, tax_fen=1150)
    line = await m.BillLine.create(bill=bill, seq=1, kind=m.LineKind.LATE_FEE, description="违约金",
                                   amount_fen=100, accrual_key="2026-11-20")
    payment = await m.Payment.create(transaction_id="4200000001", out_trade_no="B1-1", channel=m.PaymentChannel.WECHAT,
                                     bill=bill, owner=owner, amount_fen=10000, paid_at=now)
    refund = await m.Refund.create(payment=payment, out_refund_no="R1", refund_id="5030000001", amount_fen=100,
                                   reason="overpaid")
    credit = await m.CreditEntry.create(owner=owner, amount_fen=100, reason="overpayment", payment=payment)
    outbox = await m.OutboxMessage.create(dedupe_key="BillIssued:1:o-owner", event="BillIssued", channel="subscribe",
                                          recipient="o-owner", app_id="wxmp", template="bill_issued",
                                          payload={}, not_before=now)
    device = await m.TelemetryDevice.create(plant=plant, serial="INV-1")
    sample = await m.TelemetrySample.create(device=device, ts=now, received_at=now, power_w=1000, energy_wh=5)
    rollup = await m.TelemetryRollup.create(plant=plant, granularity=m.TelemetryGranularity.DAY, bucket_start=now)
    collector = await m.Collector.create(name="head-end", key_sha256="0" * 64)
    device_status = await m.FieldDeviceStatus.create(collector=collector, device="INV-1", kind="inverter",
                                                     state="offline", code="timeout", observed_at=now, since=now,
                                                     received_at=now)
    outage = await m.PlantOutage.create(plant=plant, cause=m.OutageCause.SILENT, started_at=now, detected_at=now)
    nearby = await m.NearbyConsumptionTerms.create(
        plant=plant, effective_from=dt.date(2025, 10, 1), voltage_level="10kV", td_price=Decimal("0.1987"),
        average_load_rate=Decimal("0.4321"), connection_kva=Decimal("630.5"), current_capacity_charge=Decimal("9456.00"),
        system_operation_fee=Decimal("0.0275"), wire_loss_price=Decimal("0.0123"))
    audit = await m.AuditEvent.create(actor="system", action="Seed", entity="plant", entity_id=str(plant.id))
    invitation = await m.OwnerInvitation.create(code_sha256="1" * 64, owner=owner, issued_by=staff,
                                                expires_at=now + dt.timedelta(days=7))
    share = await m.PlantShare.create(code_sha256="2" * 64, plant=plant, right=m.PlantRight.VIEW,
                                      created_by=identity, expires_at=now + dt.timedelta(days=1))
    subscription = await m.SubscribeAcceptance.create(identity=identity, template_id="tmpl-bill",
                                                      answer=m.SubscribeAnswer.ACCEPT, accepts=1)
    fault = await m.FaultReport.create(plant=plant, reported_by=identity, text="逆变器报警")
    attachment = await m.Attachment.create(storage_key="ab/cdef.jpg", content_type="image/jpeg", size_bytes=10,
                                           sha256="3" * 64, uploaded_by=identity, fault=fault)
    mp_session = await m.MiniProgramSession.create(session_id="s" * 24, identity=identity, expires_at=now)
    trip_episode = await m.TripEpisode.create(plant=plant, started_at=now, first_trip_at=now, last_trip_at=now,
                                              trips=3, ends_at=now, threshold=3, window_s=7 * 86400, detected_at=now)
    pay_order = await m.PayOrder.create(out_trade_no="261025B1N1", bill=bill, attempt=1, amount_fen=10000,
                                        payer=identity, payer_openid="o-owner", expires_at=now)
    pay_notification = await m.PayNotification.create(outcome=m.NotificationOutcome.ACCEPTED, status=204,
                                                      out_trade_no="261025B1N1", headers={}, body="{}")
    trade_bill = await m.TradeBillReport.create(bill_date=dt.date(2026, 10, 24), checked_at=now, trades_there=1,
                                                trades_here=1, paid_there_fen=10000, paid_here_fen=10000,
                                                refunded_there_fen=0, refunded_here_fen=0, mismatch_count=0,
                                                mismatches=[])
    dunning_plan = await m.DunningPlan.create(contract=contract, offsets=[-3, 0, 7, 15, 30], escalate_after=30)
    prepaid = await m.PrepaidAccount.create(number="PA00000001", owner=owner, plant=plant, name="厂房预付费",
                                            switch_serial="M0001")
    prepaid_service = await m.PrepaidService.create(account=prepaid, name="电", utility=m.Utility.ELECTRICITY,
                                                    unit="kWh", follows_contract=True, meter=meter)
    prepaid_usage = await m.PrepaidUsage.create(service=prepaid_service, interval_start=now, quantity_milli=1500,
                                                received_at=now)
    prepaid_entry = await m.PrepaidEntry.create(account=prepaid, key="topup:4200000009", kind=m.EntryKind.TOPUP,
                                                amount_fen=10000, available_after_fen=10000, posted_at=now)
    topup_order = await m.TopUpOrder.create(out_trade_no="T1N1", account=prepaid, attempt=1, amount_fen=10000,
                                            payer=identity, payer_openid="o-owner", expires_at=now)
    supply_command = await m.SupplyCommand.create(command_id="PA00000001-C1", account=prepaid,
                                                  kind=m.CommandKind.CUT_OFF, target_serial="M0001",
                                                  next_attempt_at=now, created_at=now)
    invoice = await m.InvoiceRequest.create(request_key="payment:1", owner=owner, payment=payment,
                                            buyer_name="张三", buyer_tax_id="91320000000000000X",
                                            amount_fen=10000, tax_fen=1150)
    curve = await m.PriceCurve.create(node="JS-1", market=m.PriceMarket.DAY_AHEAD, source="江苏电力交易中心",
                                      version="v1", unit="yuan/MWh", step_minutes=60, file_name="prices.csv")
    price_day = await m.PriceDay.create(curve=curve, day=dt.date(2026, 10, 25), prices_micro=[385600] * 24,
                                        file_name="prices.csv")
    return {
        "Owner": owner, "Staff": staff, "WechatIdentity": identity, "Plant": plant, "PlantAccess": access,
        "Tariff": tariff, "Contract": contract, "Meter": meter, "Reading": reading, "ReadingCycle": cycle,
        "ConfirmationForm": form, "Bill": bill, "BillLine": line, "Payment": payment, "Refund": refund,
        "CreditEntry": credit, "OutboxMessage": outbox, "TelemetryDevice": device, "TelemetrySample": sample,
        "TelemetryRollup": rollup, "PlantOutage": outage, "AuditEvent": audit, "Collector": collector,
        "NearbyConsumptionTerms": nearby, "OwnerInvitation": invitation, "PlantShare": share,
        "SubscribeAcceptance": subscription, "FaultReport": fault, "Attachment": attachment,
        "PayOrder": pay_order, "PayNotification": pay_notification, "TradeBillReport": trade_bill,
        "DunningPlan": dunning_plan, "MiniProgramSession": mp_session,
        "TripEpisode": trip_episode,
        "PrepaidAccount": prepaid, "PrepaidService": prepaid_service, "PrepaidUsage": prepaid_usage,
        "PrepaidEntry": prepaid_entry, "TopUpOrder": topup_order, "SupplyCommand": supply_command,
        "InvoiceRequest": invoice, "FieldDeviceStatus": device_status, "PriceCurve": curve, "PriceDay": price_day,
    }
