"""Message and page templates (jinja2): bot replies, notifications, e-bills, invoices.

A package only so that they ship in the wheel beside the code that renders them (settlement,
bot); it has no code. The renderers find them next to their own package, which is the same
place in a checkout, an editable install and a regular one.
"""
