"""E-bills and confirmation forms as PDF, drawn from the very view-model of the HTML page.

:func:`settlement.billing.ebill.bill_view` and :func:`settlement.billing.ebill.form_view` say what a page shows,
as text ready to print (amounts already formatted by :func:`settlement.money_text.format_yuan`);
:func:`render_pdf` lays that out on A4 with reportlab. Owners forward these files and finance
archives them, so they hold the same facts as the page: header, bill lines and totals or the
form's state, receipts, readings, energies and the daily chart (from the same geometry as the
page's SVG), plus the page's notes.

Chinese is set in STSong-Light, one of the CID fonts every PDF reader is required to supply
(Adobe-GB1, encoding UniGB-UCS2-H): reportlab knows its metrics and needs no font file or system
package, so the quick start stays pip-only. The font is referenced, not embedded — readers bring
their own glyphs for it (Acrobat, pdf.js, Chrome, Preview, WeChat's viewer do); the text layer is
Unicode, so the file can be searched and its text extracted.

Rendering is pure CPU on data already loaded: the handler runs it in an executor.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))  # a name in reportlab's registry; idempotent

INK = colors.HexColor("#1f2328")
MUTED = colors.HexColor("#59636e")
LINE = colors.HexColor("#d0d7de")
HEAD = colors.HexColor("#f0f3f6")
TOTAL = colors.HexColor("#f6f8fa")
ACCENT = colors.HexColor("#0a7d3b")
SELF = colors.HexColor("#e3a21a")
WARN = colors.HexColor("#b42318")

MARGIN_X, MARGIN_Y = 12 * mm, 14 * mm  # as the page's @page rule
WIDTH = A4[0] - 2 * MARGIN_X  # [pt] the text block

_BODY = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12, textColor=INK)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=8.5, leading=11)
_NOTE = ParagraphStyle("note", parent=_BODY, fontSize=8, leading=11, textColor=MUTED)
_WARN = ParagraphStyle("warn", parent=_BODY, textColor=WARN)
_H1 = ParagraphStyle("h1", parent=_BODY, fontSize=17, leading=22, alignment=TA_CENTER, spaceAfter=8)
_H2 = ParagraphStyle("h2", parent=_BODY, fontSize=11.5, leading=15, spaceBefore=10, spaceAfter=4,
                     textColor=ACCENT)


def _p(text: Any, style: ParagraphStyle = _CELL) -> Paragraph:
    # Paragraph reads a little markup: names from outside are text, never tags
    return Paragraph(escape(str(text)), style)


def _table(rows: Sequence[Sequence[Any]], widths: Sequence[float], *, numeric_from: int | None = None,
           header: bool = True, total_rows: Sequence[int] = ()) -> Table:
    """A ruled table; columns from ``numeric_from`` on are right-aligned (amounts, kWh)."""
    style = [("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
             ("TEXTCOLOR", (0, 0), (-1, -1), INK), ("GRID", (0, 0), (-1, -1), 0.5, LINE),
             ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 2.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEAD))
    if numeric_from is not None:
        style.append(("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"))
    for row in total_rows:
        style += [("BACKGROUND", (0, row), (-1, row), TOTAL), ("FONTSIZE", (0, row), (-1, row), 9)]
    table = Table([list(r) for r in rows], colWidths=list(widths), repeatRows=1 if header else 0,
                  hAlign="LEFT")
    table.setStyle(TableStyle(style))
    return table


def _facts(pairs: Sequence[tuple[str, Any]]) -> Table:
    """Label–value pairs two to a row, as the page's ``dl.facts`` grid."""
    cells = [(_p(label, _NOTE), _p(value)) for label, value in pairs]
    rows = []
    for i in range(0, len(cells), 2):
        left = cells[i]
        right = cells[i + 1] if i + 1 < len(cells) else ("", "")
        rows.append([*left, *right])
    table = Table(rows, colWidths=[0.14 * WIDTH, 0.36 * WIDTH, 0.14 * WIDTH, 0.36 * WIDTH], hAlign="LEFT")
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT), ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 1), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return table


def _header(view: Mapping[str, Any]) -> list:
    t, h = view["t"], view["header"]
    return [_facts([(t["plant"], h["plant_name"]), (t["plant_code"], h["plant_code"]),
                    (t["owner"], h["owner_name"]), (t["tax_id"], h["tax_id"] or t["none"]),
                    (t["address"], h["address"] or t["none"]), (t["capacity"], h["capacity"]),
                    (t["period"], h["period"]), (t["span"], f"{h['span']} ({h['days']} {t['days']})")])]


def _bill_part(view: Mapping[str, Any]) -> list:
    t, bill = view["t"], view["bill"]
    number = bill["number"] + (f" (v{bill['version']})" if bill["version"] > 1 else "")
    state = bill["state"] + (f"  {bill['overdue']}" if bill["overdue"] else "")
    parts: list = [Spacer(0, 4), _facts([(t["bill_no"], number), (t["state"], state),
                                         (t["issued_at"], bill["issued_at"]), (t["due_on"], bill["due_on"])])]
    parts.append(_p(t["lines"], _H2))
    rows = [[t["description"], t["kwh"], t["unit_price"], t["amount"], t["tax"]]]
    rows += [[_p(line["description"]), line["kwh"], line["unit_price"], line["amount"], line["tax"]]
             for line in bill["charges"]]
    rows.append([t["energy_subtotal"], "", "", bill["energy_subtotal"], bill["tax_total"]])
    table = _table(rows, [0.36 * WIDTH, 0.14 * WIDTH, 0.18 * WIDTH, 0.16 * WIDTH, 0.16 * WIDTH],
                   numeric_from=1, total_rows=[len(rows) - 1])
    table.setStyle(TableStyle([("SPAN", (0, len(rows) - 1), (2, len(rows) - 1))]))
    parts.append(table)
    if bill["late_fees"]:
        parts.append(_p(t["late_fees"], _H2))
        rows = [[t["description"], t["amount"]]] + [[_p(line["description"]), line["amount"]]
                                                    for line in bill["late_fees"]]
        rows.append([t["late_fee_total"], bill["late_fee_total"]])
        parts.append(_table(rows, [0.7 * WIDTH, 0.3 * WIDTH], numeric_from=1, total_rows=[len(rows) - 1]))
    parts.append(_p(t["total"], _H2))
    yuan = t["yuan"]
    rows = [[t["bill_total"], f"{bill['total']} {yuan}"], [t["tax_total"], f"{bill['tax_total']} {yuan}"],
            [t["paid"], f"{bill['paid']} {yuan}"], [t["credit_applied"], f"{bill['credit_applied']} {yuan}"],
            [t["owed"], f"{bill['owed']} {yuan}"]]
    totals = _table(rows, [0.5 * WIDTH, 0.5 * WIDTH], numeric_from=1, header=False, total_rows=[4])
    totals.setStyle(TableStyle([("BACKGROUND", (0, 0), (0, -1), HEAD), ("FONTSIZE", (0, 4), (-1, 4), 11)]))
    parts.append(totals)
    parts.append(_p(t["receipts"], _H2))
    if bill["payments"]:
        rows = [[t["paid_at"], t["channel"], t["reference"], t["amount"]]]
        rows += [[p["paid_at"], _p(p["channel"]), _p(p["reference"]), p["amount"]] for p in bill["payments"]]
        parts.append(_table(rows, [0.24 * WIDTH, 0.18 * WIDTH, 0.40 * WIDTH, 0.18 * WIDTH], numeric_from=3))
    else:
        parts.append(_p(t["no_payments"], _NOTE))
    if bill["invoices"]:
        parts.append(_p(t["invoices"], _H2))
        rows = [[t["invoice_number"], t["invoice_issued_on"], t["invoice_amount"], t["invoice_tax"]]]
        rows += [[i["number"], i["issued_on"], i["amount"], i["tax"]] for i in bill["invoices"]]
        parts.append(_table(rows, [0.40 * WIDTH, 0.24 * WIDTH, 0.18 * WIDTH, 0.18 * WIDTH], numeric_from=2))
    return parts


def _form_part(view: Mapping[str, Any]) -> list:
    t, form = view["t"], view["form"]
    parts: list = [Spacer(0, 4), _facts([
        (t["version"], f"v{form['version']}"), (t["state"], form["state"]), (t["reader"], form["reader"]),
        (t["sent_at"], form["sent_at"] or t["none"]), (t["answer_due"], form["answer_due"] or t["none"]),
        (t["answered_at"], form["answered_at"] or t["none"])])]
    if form["superseded"]:
        parts.append(_p(t["superseded"], _WARN))
    if form["dispute_reason"]:
        parts.append(_p(f"{t['dispute_reason']}：{form['dispute_reason']}", _BODY))
    return parts


def _readings(view: Mapping[str, Any]) -> list:
    t, body = view["t"], view["body"]
    rows = [[t["group"], t["meter"], t["register"], t["previous"], t["current"], t["multiplier"], t["kwh"]]]
    rows += [[_p(line["group"]), _p(line["meter"]), _p(line["register"]), line["previous"], line["current"],
              line["multiplier"], line["kwh"]] for line in body["lines"]]
    parts = [_p(t["readings"], _H2),
             _table(rows, [0.15 * WIDTH, 0.13 * WIDTH, 0.16 * WIDTH, 0.15 * WIDTH, 0.15 * WIDTH, 0.09 * WIDTH,
                           0.17 * WIDTH], numeric_from=3)]
    keys = ("generation", "self_use", "export", "grid")
    rows = [[t["rate"], *(t[k] for k in keys)]]
    rows += [[row["rate"], *(row[k] for k in keys)] for row in body["energies"]]
    rows.append([t["total"], *(body["totals"][k] for k in keys)])
    parts += [_p(t["energies"], _H2),
              _table(rows, [0.2 * WIDTH] * 5, numeric_from=1, total_rows=[len(rows) - 1])]
    return parts


class _DailyChart(Flowable):
    """The page's daily bar chart, redrawn from its SVG geometry (y grows downwards there)."""

    def __init__(self, chart: Mapping[str, Any], t: Mapping[str, str]):
        super().__init__()
        self.c, self.t = chart, t
        self.scale = WIDTH / chart["width"]

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return WIDTH, self.c["height"] * self.scale

    def draw(self) -> None:
        c, t, canvas, height = self.c, self.t, self.canv, self.c["height"]
        canvas.scale(self.scale, self.scale)
        canvas.setFont(FONT, 11)  # as the SVG's text

        def text(x: float, y: float, value: str, anchor: str = "start") -> None:
            draw = {"start": canvas.drawString, "middle": canvas.drawCentredString,
                    "end": canvas.drawRightString}[anchor]
            canvas.setFillColor(MUTED)
            draw(x, height - y, value)

        canvas.setStrokeColor(LINE)
        for tick in c["ticks"]:
            canvas.line(c["left"], height - tick["y"], c["right"], height - tick["y"])
            text(c["left"] - 6, tick["y"] + 4, tick["text"], "end")
        for bar in c["bars"]:
            canvas.setFillColor(ACCENT if bar["cls"] == "gen" else SELF)
            canvas.rect(bar["x"], height - bar["y"] - bar["h"], bar["w"], bar["h"], stroke=0, fill=1)
        for label in c["labels"]:
            text(label["x"], c["bottom"] + 16, label["text"], "middle")
        text(c["left"], height - 4, "kWh")
        legend = [(c["right"] - 250, ACCENT, t["chart_gen"])]
        if c["has_self_use"]:
            legend.append((c["right"] - 120, SELF, t["chart_self"]))
        for x, colour, label in legend:
            canvas.setFillColor(colour)
            canvas.rect(x, 4, 10, 10, stroke=0, fill=1)
            text(x + 14, height - 5, label)


def _chart(view: Mapping[str, Any]) -> list:
    t, c = view["t"], view["chart"]
    return [KeepTogether([_p(t["chart"], _H2), _DailyChart(c, t), *(_p(note, _NOTE) for note in c["notes"])])]


def _adjustments(view: Mapping[str, Any]) -> list:
    """What staff changed on the form, who, when and why: the page's adjustments block."""
    t, rows_in = view["t"], view.get("adjustments") or []
    if not rows_in:
        return []
    rows = [[t["version"], t["adjusted_item"], t["adjusted_before"], t["adjusted_after"], t["adjusted_by"],
             t["adjusted_at"], t["adjusted_reason"]]]
    rows += [[f"v{a['version']}", _p(a["item"]), _p(a["before"]), _p(a["after"]), _p(a["by"]), _p(a["at"]),
              _p(a["reason"])] for a in rows_in]
    return [_p(t["adjustments"], _H2), _p(t["adjustments_note"], _WARN),
            _table(rows, [0.07 * WIDTH, 0.22 * WIDTH, 0.11 * WIDTH, 0.11 * WIDTH, 0.12 * WIDTH, 0.15 * WIDTH,
                          0.22 * WIDTH])]


def render_pdf(view: Mapping[str, Any]) -> bytes:
    """One e-bill or confirmation form as an A4 PDF.

    Parameters
    ----------
    view : mapping
        :func:`settlement.billing.ebill.bill_view` or :func:`settlement.billing.ebill.form_view` (``kind`` says
        which).

    Returns
    -------
    bytes
        The PDF file; its title is the page's title with the bill number (or the form's file stem).
    """
    t = view["t"]
    story: list = [_p(view["title"], _H1), *_header(view)]
    story += _bill_part(view) if view["kind"] == "bill" else _form_part(view)
    story += _readings(view)
    story += _adjustments(view)
    story += _chart(view)
    story.append(Spacer(0, 10))
    story.append(_p(t["footer"], _NOTE))

    def page_number(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.setFillColor(MUTED)
        canvas.drawRightString(A4[0] - MARGIN_X, MARGIN_Y / 2, f"{view['file_stem']} · {doc.page}")
        canvas.restoreState()

    out = io.BytesIO()
    header = view["header"]
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_Y,
                            bottomMargin=MARGIN_Y, title=f"{view['title']} {view['file_stem']}",
                            subject=f"{header['plant_name']} {header['period']}", author="pvsettle",
                            creator="pvsettle", lang="zh-CN" if view["lang"] == "zh" else "en",
                            initialFontName=FONT)  # else every page also names Helvetica
    doc.build(story, onFirstPage=page_number, onLaterPages=page_number)
    return out.getvalue()
