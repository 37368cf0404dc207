"""Message and page templates (jinja2): bot replies, notifications, e-bills, invoices.

A package only so that they ship in the wheel beside the code that renders them (settlement,
bot); it has no code. :mod:`settlement.templating` finds them, next to the settlement package,
which is the same place in a checkout, an editable install and a regular one, and sets jinja2 up
for every renderer.
"""
