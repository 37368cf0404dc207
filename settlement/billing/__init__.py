"""Bills and what follows them: amounts from confirmed forms, credit, late fees, arrears,
dunning, e-invoices, e-bills and staff reports. Every amount is integer fen.

Public: :mod:`.bills` — ``issue_bills``, ``record_payment``, ``apply_payment``, ``write_off``;
:mod:`.late_fees` — ``accrue_late_fees``, ``late_fee_to_date``; :mod:`.arrears` — ``arrears``;
:mod:`.dunning` — ``run``, ``stale_reasons``; :mod:`.invoices`; :mod:`.ebill` — ``render_bill``,
``render_form``, ``ebill_link``, ``verify_link``; :mod:`.ebill_pdf` — ``render_pdf``;
:mod:`.reports` — ``cycle_report``, ``nearby_report``, ``write_report``.
"""
