"""E-bills: a confirmation form (电量确认单) or a bill (电费账单) as a printable HTML page.

Owners reach the page through a signed, expiring link that notifications carry, so it needs no
login: the link itself is the right to see that one form or bill.

Links
-----
``/e/<kind>/<id>?exp=<unix seconds>&sig=<hex>`` with ``kind`` ``form`` or ``bill`` and
``sig = HMAC-SHA256(secret key, "<kind>:<id>:<exp>")``. The signature covers the kind, the id and
the expiry, so a link cannot be moved to another bill, to the form of the same id, or past its
expiry. ``lang`` is not signed: ``?lang=en`` on the same link gives the English page. Links live
30 days unless the caller says otherwise.

Pages
-----
Chinese by default, English on request; money is integer fen formatted as 元 by
:func:`settlement.money_text.format_yuan` alone; the chart of the cycle's daily generation and self-use is inline SVG
built from stored telemetry and meter readings only — a day without data is drawn as a gap and
said so, never filled in.

The signed links that open these pages are :mod:`settlement.billing.ebill_links`'.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from settlement import i18n, templating
from settlement.billing import invoices, nearby
from settlement.money_text import format_yuan
from settlement.errors import NotFound
from settlement.models import (
    Bill,
    BillState,
    ConfirmationForm,
    FormState,
    InvoiceState,
    LineKind,
    Meter,
    MeterKind,
    Payment,
    Plant,
    Reading,
    ReadingCycle,
    Refund,
    RefundState,
    TelemetryDevice,
    TelemetryGranularity,
    TelemetryRollup,
    TelemetrySample,
)
from settlement.telemetry.energy import counter_intervals
from settlement.clock import LOCAL, UTC, local_today

LANGS = ("zh", "en")

RATES = ("sharp", "peak", "flat", "valley")  # DL/T 645 rates 1-4, as on forms and bill lines
EXPORT_TOTAL = "00020000"  # reverse active total of the grid meter (DL/T 645)
# a daily freeze reading taken this close to local midnight counts as the midnight reading
MIDNIGHT_TOLERANCE = dt.timedelta(hours=1)


# --- numbers as text (money is settlement.money_text's) ----------------------------------------


def _kwh_text(value: Decimal | str | None) -> str:
    return "" if value is None else format(Decimal(value).quantize(Decimal("0.001")), ",f")


def _price_text(value: Decimal | None) -> str:
    """A unit price [yuan/kWh] as printed: at least 4 decimals, no trailing noise beyond that."""
    if value is None:
        return ""
    price = Decimal(value).normalize()
    if price.as_tuple().exponent > -4:
        price = price.quantize(Decimal("0.0001"))
    return format(price, "f")


# --- the words of the pages ------------------------------------------------------------------

# The words of the pages are the message catalogue's (templates/i18n/messages.toml), by language;
# the states' and channels' names are the ones the sandbox and the bot show too.
TEXT = {lang: i18n.section("ebill", lang) for lang in LANGS}
RATE_LABEL = {lang: i18n.section("rate", lang) for lang in LANGS}
GROUP_LABEL = {lang: i18n.section("meter_group", lang) for lang in LANGS}
REGISTER_LABEL = {lang: i18n.section("register", lang) for lang in LANGS}
FORM_STATE = {lang: i18n.section("form_state", lang) for lang in LANGS}
BILL_STATE = {lang: i18n.section("bill_state", lang) for lang in LANGS}
CHANNEL = {lang: i18n.section("channel", lang) for lang in LANGS}
LINE_KIND_EN = i18n.section("line_kind", "en")


def payment_reference(transaction_id: str, channel: str) -> str:
    """The reference a person reads: an offline payment's is stored as ``<channel>:<reference>``."""
    prefix = f"{channel}:"
    return transaction_id[len(prefix):] if transaction_id.startswith(prefix) else transaction_id


def _date_text(day: dt.date | None, lang: str) -> str:
    if day is None:
        return ""
    return f"{day.year}年{day.month}月{day.day}日" if lang == "zh" else day.isoformat()


def _time_text(when: dt.datetime | None, lang: str) -> str:
    if when is None:
        return ""
    local = when.astimezone(LOCAL)
    return f"{_date_text(local.date(), lang)} {local:%H:%M}"


def _iso_text(text: str | None, lang: str) -> str:
    """A reading time stored on a form line (``2026-10-01T00:00:00Z``) in local time."""
    if not text:
        return ""
    return _time_text(dt.datetime.fromisoformat(text.replace("Z", "+00:00")), lang)


# --- the cycle's daily energy --------------------------------------------------------------------


@dataclass
class DailySeries:
    """Daily energy of one plant over a cycle; None where nothing was measured.

    ``generation_wh`` and ``self_use_wh`` are per local day [Wh].
    """

    days: list[dt.date]
    generation_wh: list[int | None]
    self_use_wh: list[int | None]
    sources: set[str] = field(default_factory=set)


def _cycle_days(starts_at: dt.datetime, ends_at: dt.datetime) -> list[dt.date]:
    first = starts_at.astimezone(LOCAL).date()
    last = (ends_at.astimezone(LOCAL) - dt.timedelta(microseconds=1)).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


async def daily_energy(plant_id: int, starts_at: dt.datetime, ends_at: dt.datetime) -> DailySeries:
    """Daily generation and self-use of a plant in ``[starts_at, ends_at)``.

    Generation per local day comes from the plant's day rollups; a day without a rollup comes from
    the lifetime-energy counters of the plant's devices (positive differences, each interval
    labelled by its start; a drop of more than 10 % is a reset, and the interval across it is
    unknown, not negative). Self-use of a day = generation − export, where the export comes from
    the grid meter's reverse-total readings at the day's two local midnights; without them the
    day's self-use is unknown.

    Parameters
    ----------
    plant_id : int
    starts_at, ends_at : datetime (aware)
        The cycle's span (local midnights, stored in UTC).

    Returns
    -------
    DailySeries
    """
    starts_at, ends_at = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    days = _cycle_days(starts_at, ends_at)
    generation: dict[dt.date, int] = {}
    sources: set[str] = set()
    for bucket_start, energy_wh in await TelemetryRollup.filter(
            plant_id=plant_id, granularity=TelemetryGranularity.DAY, bucket_start__gte=starts_at,
            bucket_start__lt=ends_at).values_list("bucket_start", "energy_wh"):
        generation[bucket_start.astimezone(LOCAL).date()] = int(energy_wh)
        sources.add("rollup")
    if len(generation) < len(days):
        from_samples = await _sample_generation(plant_id, starts_at, ends_at)
        for day, wh in from_samples.items():
            if day not in generation:
                generation[day] = wh
                sources.add("samples")
    export = await _daily_export_wh(plant_id, days)
    gen_series = [generation.get(day) for day in days]
    self_use = [None if g is None or day not in export else max(g - export[day], 0)
                for day, g in zip(days, gen_series)]
    return DailySeries(days=days, generation_wh=gen_series, self_use_wh=self_use, sources=sources)


async def _sample_generation(plant_id: int, starts_at: dt.datetime, ends_at: dt.datetime) -> dict[dt.date, int]:
    device_ids = await TelemetryDevice.filter(plant_id=plant_id).values_list("id", flat=True)
    if not device_ids:
        return {}
    rows = await TelemetrySample.filter(device_id__in=list(device_ids), ts__gte=starts_at, ts__lte=ends_at,
                                        energy_wh__isnull=False).order_by("device_id", "ts") \
        .values_list("device_id", "ts", "energy_wh")
    per_day: dict[dt.date, int] = defaultdict(int)
    for start, wh in counter_intervals(rows):
        per_day[start.astimezone(LOCAL).date()] += wh
    return dict(per_day)


async def _daily_export_wh(plant_id: int, days: list[dt.date]) -> dict[dt.date, int]:
    """Export per local day [Wh] from the grid meters' midnight reverse-total readings."""
    if not days:
        return {}
    meters = {m.id: m for m in await Meter.filter(plant_id=plant_id, kind=MeterKind.GRID)}
    if not meters:
        return {}
    first = dt.datetime.combine(days[0], dt.time(), LOCAL) - MIDNIGHT_TOLERANCE
    last = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), LOCAL) + MIDNIGHT_TOLERANCE
    best: dict[tuple[int, dt.date], tuple[tuple, Decimal]] = {}
    for meter_id, read_at, revision, value in await Reading.filter(
            meter_id__in=list(meters), register=EXPORT_TOTAL, read_at__gte=first.astimezone(UTC),
            read_at__lte=last.astimezone(UTC)).values_list("meter_id", "read_at", "revision", "value"):
        local = read_at.astimezone(LOCAL)
        midnight_day = (local + dt.timedelta(hours=12)).date()
        distance = abs(local - dt.datetime.combine(midnight_day, dt.time(), LOCAL))
        if distance > MIDNIGHT_TOLERANCE:
            continue
        rank = (distance, -revision)  # the closest reading, and of one time the latest revision
        key = (meter_id, midnight_day)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, Decimal(value))
    export: dict[dt.date, int] = {}
    for day in days:
        total, known, partial = 0, False, False
        for meter_id, meter in meters.items():
            start, end = best.get((meter_id, day)), best.get((meter_id, day + dt.timedelta(days=1)))
            if start is None and end is None:
                continue
            if start is None or end is None or end[1] < start[1]:
                partial = True  # a meter changed or rolled over that day: the day's export is unknown
                continue
            kwh = (end[1] - start[1]) * meter.multiplier
            total += int((kwh * 1000).to_integral_value(rounding=ROUND_HALF_UP))
            known = True
        if known and not partial:
            export[day] = total
    return export


# --- the chart ---------------------------------------------------------------------------------

CHART_W, CHART_H = 720, 260
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 60, 12, 14, 40


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k not below ``value`` (a readable axis maximum)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10 ** exponent
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def chart(series: DailySeries, lang: str) -> dict:
    """The geometry of the daily bar chart, for ``templates/ebill/_chart.html`` [SVG user units].

    Pixel positions are floats (drawing, not money); the kWh shown on each bar are exact.
    """
    t = TEXT[lang]
    plot_w = CHART_W - PLOT_LEFT - PLOT_RIGHT
    plot_h = CHART_H - PLOT_TOP - PLOT_BOTTOM
    n = max(len(series.days), 1)
    slot = plot_w / n
    known = [wh for wh in series.generation_wh if wh is not None]
    top_kwh = _nice_ceiling(max(known) / 1000) if known else 1.0
    bottom = PLOT_TOP + plot_h

    def y(wh: int) -> float:
        return bottom - plot_h * (wh / 1000) / top_kwh

    def bar(cls: str, day: dt.date, wh: int, x: float, inset: float, width: float, name: str) -> dict:
        """One day's bar, ``inset`` of the slot in from its left and ``width`` of it wide."""
        kwh = _kwh_text(Decimal(wh).scaleb(-3))
        return {"cls": cls, "day": day.isoformat(), "kwh": kwh,
                "x": round(x + slot * inset, 2), "w": round(slot * width, 2),
                "y": round(y(wh), 2), "h": round(bottom - y(wh), 2),
                "title": f"{day.isoformat()} {t[name]} {kwh} kWh"}

    bars, labels = [], []
    for i, (day, gen, self_use) in enumerate(zip(series.days, series.generation_wh, series.self_use_wh)):
        x = PLOT_LEFT + i * slot
        if gen is not None:
            bars.append(bar("gen", day, gen, x, 0.15, 0.7, "generation"))
        if self_use is not None:
            bars.append(bar("self", day, self_use, x, 0.3, 0.4, "self_use"))
        if i % max(1, math.ceil(n / 10)) == 0 or i == n - 1:
            labels.append({"x": round(x + slot / 2, 2), "text": f"{day.month}/{day.day}"})
    ticks = []
    for k in range(5 if known else 0):  # no scale without data: an empty axis would suggest zeros
        value = top_kwh * k / 4
        ticks.append({"y": round(bottom - plot_h * k / 4, 2),
                      "text": f"{value:,.0f}" if top_kwh >= 4 else f"{value:,.2f}"})
    notes = []
    missing = sum(wh is None for wh in series.generation_wh)
    self_days = sum(wh is not None for wh in series.self_use_wh)
    if not known:
        notes.append(t["no_generation"])
    elif missing:
        notes.append(t["missing_days"].format(n=missing))
    if known and self_days == 0:
        notes.append(t["no_self_use"])
    elif known and self_days < len(known):
        notes.append(t["partial_self_use"].format(n=self_days, m=len(known)))
    return {"width": CHART_W, "height": CHART_H, "left": PLOT_LEFT, "right": CHART_W - PLOT_RIGHT,
            "top": PLOT_TOP, "bottom": bottom, "bars": bars, "labels": labels, "ticks": ticks,
            "notes": notes, "has_data": bool(known), "has_self_use": self_days > 0}


# --- what the pages show ----------------------------------------------------------------------


_ENV = templating.environment()


def _lang(lang: str) -> str:
    return lang if lang in LANGS else "zh"


def _header(plant: Plant, cycle: ReadingCycle, lang: str) -> dict:
    days = _cycle_days(cycle.starts_at, cycle.ends_at)
    owner = plant.owner
    return {"plant_name": plant.name, "plant_code": plant.code, "address": plant.address,
            "capacity": f"{Decimal(plant.capacity_kwp).normalize():,f} kWp", "owner_name": owner.name,
            "tax_id": owner.tax_id or "", "period": cycle.period,
            "span": f"{_date_text(days[0], lang)} – {_date_text(days[-1], lang)}", "days": len(days)}


def _form_body(form: ConfirmationForm, lang: str) -> dict:
    lines = []
    for line in form.lines:
        register = line["register"]
        lines.append({
            "group": GROUP_LABEL[lang].get(line["group"], line["group"]), "meter": line["meter"] or "",
            "register": f"{register} {REGISTER_LABEL[lang].get(register[-4:], '')}".strip(),
            "previous": line["previous"] or TEXT[lang]["none"], "previous_at": _iso_text(line["previous_at"], lang),
            "current": line["current"] or TEXT[lang]["none"], "current_at": _iso_text(line["current_at"], lang),
            "multiplier": line["multiplier"], "kwh": _kwh_text(line["kwh"])})
    energies = [{"rate": RATE_LABEL[lang][rate],
                 **{k: _kwh_text(form.periods.get(rate, {}).get(k)) for k in ("generation", "self_use", "export", "grid")}}
                for rate in RATES]
    totals = {"generation": _kwh_text(form.generation_kwh), "self_use": _kwh_text(form.self_use_kwh),
              "export": _kwh_text(form.export_kwh), "grid": _kwh_text(form.grid_kwh)}
    return {"lines": lines, "energies": energies, "totals": totals}


ENERGY_LABEL = {lang: {k: TEXT[lang][k] for k in ("generation", "export", "grid")} for lang in LANGS}


async def _adjustments(form: ConfirmationForm, lang: str) -> list[dict]:
    """The form's adjustments (settlement.cycles.forms.adjustments_of) as the pages show them."""
    # imported here: forms → cycles → outbox → ebill would be a circle at import time
    from settlement.cycles.forms import adjustments_of

    t = TEXT[lang]
    rows = []
    for a in await adjustments_of(form):
        if a.kind == "energy":
            what, _, rate = a.field.partition(".")
            item = f"{ENERGY_LABEL[lang].get(what, what)} {RATE_LABEL[lang].get(rate, rate)} (kWh)"
            before, after = _kwh_text(a.before), _kwh_text(a.after)
        elif a.field == "readings":
            item, before, after = t["adjusted_readings"], t["none"], t["none"]
        else:
            meter, register, boundary = (a.field.split(" ") + ["", "", ""])[:3]
            label = REGISTER_LABEL[lang].get(register[-4:], "")
            item = f"{meter} {register} {label} {t.get('boundary_' + boundary, boundary)}".replace("  ", " ")
            before, after = a.before or t["none"], a.after or t["none"]
        rows.append({"version": a.version, "item": item, "before": before, "after": after, "by": a.by,
                     "at": _time_text(a.at, lang), "reason": a.reason})
    return rows


async def _chart_for(cycle: ReadingCycle, lang: str) -> dict:
    return chart(await daily_energy(cycle.plant_id, cycle.starts_at, cycle.ends_at), lang)


async def form_view(form_id: int, lang: str = "zh", *, lang_urls: dict[str, str] | None = None,
                    pdf_url: str | None = None) -> dict:
    """What the page of one confirmation form version shows, as text ready to print.

    The one view-model of a form: the HTML page (:func:`render_form`) and the PDF
    (:func:`settlement.billing.ebill_pdf.render_pdf`) both draw it, so they cannot disagree.

    Raises
    ------
    NotFound
        No form ``form_id``.
    """
    lang = _lang(lang)
    form = await ConfirmationForm.get_or_none(id=form_id).prefetch_related("cycle__plant__owner")
    if form is None:
        raise NotFound(f"no form {form_id}", code="unknown_form")
    cycle = form.cycle
    t = TEXT[lang]
    context = {
        "lang": lang, "t": t, "lang_urls": lang_urls, "title": t["form_title"],
        "header": _header(cycle.plant, cycle, lang),
        "form": {"version": form.version, "state": FORM_STATE[lang].get(form.state, str(form.state)),
                 "superseded": form.state == FormState.ADJUSTED, "reader": form.reader,
                 "sent_at": _time_text(form.sent_at, lang), "answer_due": _time_text(form.answer_due_at, lang),
                 "answered_at": _time_text(form.answered_at, lang), "dispute_reason": form.dispute_reason or ""},
        "body": _form_body(form, lang), "chart": await _chart_for(cycle, lang), "pdf_url": pdf_url,
        "kind": "form", "file_stem": f"{cycle.period}-{cycle.plant.code}-v{form.version}",
        "adjustments": await _adjustments(form, lang),
    }
    return context


async def render_form(form_id: int, lang: str = "zh", *, lang_urls: dict[str, str] | None = None,
                      pdf_url: str | None = None) -> str:
    """The HTML page of one confirmation form version (:func:`form_view`)."""
    context = await form_view(form_id, lang, lang_urls=lang_urls, pdf_url=pdf_url)
    return _ENV.get_template("ebill/form.html").render(context)


def line_text(line, lang: str) -> str:
    """A bill line's description in ``lang``: the stored (Chinese) one, or its words in English.

    The e-bill and the mini-program API's bill detail (in the caller's language) both word lines with it."""
    if lang == "zh":
        return line.description
    if line.kind == LineKind.ENERGY and line.tou_period is not None and 0 <= line.tou_period < len(RATES):
        return f"{RATE_LABEL['en'][RATES[line.tou_period]]} self-use energy"
    if line.kind == LineKind.LATE_FEE and line.accrual_key:
        return f"Late fee (through {line.accrual_key})"
    fee = nearby.line_text_en(line.kind, line.description, line.kwh is not None)
    if fee is not None:
        return fee
    return LINE_KIND_EN.get(line.kind, line.description)


async def bill_view(bill_id: int, lang: str = "zh", *, lang_urls: dict[str, str] | None = None,
                    pdf_url: str | None = None, today: dt.date | None = None) -> dict:
    """What the page of one bill shows: its form's readings and energies, lines, totals and
    receipts, as text ready to print (amounts by :func:`settlement.money_text.format_yuan`).

    The one view-model of a bill: the HTML page (:func:`render_bill`) and the PDF
    (:func:`settlement.billing.ebill_pdf.render_pdf`) both draw it, so they cannot disagree.

    Parameters
    ----------
    bill_id : int
    lang : {"zh", "en"}
    lang_urls : dict, optional
        The same page in each language (the switch at the top).
    pdf_url : str, optional
        The same signed link as PDF (linked from the page).
    today : date, optional
        Local date that decides "overdue"; today in Asia/Shanghai by default.

    Raises
    ------
    NotFound
        No bill ``bill_id``.
    """
    lang = _lang(lang)
    today = today or local_today()
    bill = await Bill.get_or_none(id=bill_id).prefetch_related("cycle", "plant__owner", "form", "lines")
    if bill is None:
        raise NotFound(f"no bill {bill_id}", code="unknown_bill", params={"bill": bill_id})
    payments = await Payment.filter(bill_id=bill.id).order_by("paid_at", "id")
    # money given back shows beside the money received, so the list adds up to what is paid
    refunds = await Refund.filter(payment__bill_id=bill.id, state__in=[RefundState.PENDING, RefundState.SUCCEEDED]) \
        .order_by("created_at", "id")
    t = TEXT[lang]
    lines = sorted(bill.lines, key=lambda line: line.seq)
    charges = [line for line in lines if line.kind != LineKind.LATE_FEE]
    late = [line for line in lines if line.kind == LineKind.LATE_FEE]
    owed = bill.total_fen - bill.paid_fen - bill.credit_applied_fen
    open_states = (BillState.OPEN, BillState.PARTLY_PAID)
    overdue_days = (today - bill.due_on).days if bill.state in open_states and owed > 0 else 0
    cycle = bill.cycle
    context = {
        "lang": lang, "t": t, "lang_urls": lang_urls, "title": t["bill_title"],
        "header": _header(bill.plant, cycle, lang),
        "bill": {
            "number": bill.number, "version": bill.version, "state": BILL_STATE[lang].get(bill.state, str(bill.state)),
            "issued_at": _time_text(bill.issued_at, lang), "due_on": _date_text(bill.due_on, lang),
            "overdue": t["overdue"].format(days=overdue_days) if overdue_days > 0 else "",
            "charges": [{"description": line_text(line, lang), "kwh": _kwh_text(line.kwh),
                         "unit_price": _price_text(line.unit_price), "amount": format_yuan(line.amount_fen),
                         "tax": format_yuan(line.tax_fen)} for line in charges],
            "late_fees": [{"description": line_text(line, lang), "amount": format_yuan(line.amount_fen)}
                          for line in late],
            "energy_subtotal": format_yuan(sum(line.amount_fen for line in charges)),
            "late_fee_total": format_yuan(sum(line.amount_fen for line in late)),
            "total": format_yuan(bill.total_fen), "tax_total": format_yuan(bill.tax_fen),
            "paid": format_yuan(bill.paid_fen), "credit_applied": format_yuan(bill.credit_applied_fen),
            "owed": format_yuan(max(owed, 0)),
            "payments": [{"paid_at": _time_text(p.paid_at, lang), "channel": CHANNEL[lang].get(p.channel, str(p.channel)),
                          "reference": payment_reference(p.transaction_id, str(p.channel)), "amount": format_yuan(p.amount_fen)} for p in payments]
            + [{"paid_at": _time_text(r.settled_at or r.created_at, lang),
                "channel": t["refund_done" if r.state == RefundState.SUCCEEDED else "refund_pending"],
                "reference": r.refund_id or r.out_refund_no, "amount": "-" + format_yuan(r.amount_fen)}
               for r in refunds],
            # the e-invoices issued (requested or refused ones have no number to show)
            "invoices": [{"number": i.invoice_number,
                          "issued_on": _date_text(i.issued_at.astimezone(LOCAL).date(), lang),
                          "amount": format_yuan(i.amount_fen), "tax": format_yuan(i.tax_fen)}
                         for i in await invoices.bill_invoices(bill.id) if i.state == InvoiceState.ISSUED],
        },
        "body": _form_body(bill.form, lang), "chart": await _chart_for(cycle, lang), "pdf_url": pdf_url,
        "kind": "bill", "file_stem": bill.number,
        "adjustments": await _adjustments(bill.form, lang),
    }
    return context


async def render_bill(bill_id: int, lang: str = "zh", *, lang_urls: dict[str, str] | None = None,
                      pdf_url: str | None = None, today: dt.date | None = None) -> str:
    """The HTML page of one bill (:func:`bill_view`)."""
    context = await bill_view(bill_id, lang, lang_urls=lang_urls, pdf_url=pdf_url, today=today)
    return _ENV.get_template("ebill/bill.html").render(context)


ERRORS = {"link_invalid": ("error_invalid", "error_invalid_body"),
          "link_expired": ("error_expired", "error_expired_body"),
          404: ("error_not_found", "error_not_found_body")}


def render_error(status: int, lang: str = "zh", code: str | None = None) -> str:
    """A plain error page: what went wrong in words for the owner, nothing about the server."""
    lang = _lang(lang)
    t = TEXT[lang]
    title, body = ERRORS.get(code or "", None) or ERRORS.get(status, ("error_other", "error_other_body"))
    return _ENV.get_template("ebill/error.html").render(
        {"lang": lang, "t": t, "lang_urls": None, "title": t[title], "message": t[body], "status": status})
