"""The one jinja2 set-up (settlement.templating): where the templates are, escaping by extension,
money filters shared by every renderer."""

from __future__ import annotations

import jinja2
import pytest

from settlement import templating


def test_the_templates_are_found_once_and_every_kind_is_there():
    kinds = {p.name for p in templating.TEMPLATES.iterdir() if p.is_dir()}
    assert {"bot", "notify", "ebill", "invoice", "i18n"} <= kinds


def test_html_is_escaped_and_plain_text_is_not():
    env = templating.environment()
    assert env.autoescape("ebill/bill.html") and env.autoescape("invoice/e_invoice.html")
    assert not env.autoescape("bot/help.txt") and not env.autoescape("notify/bill_issued.txt")
    assert env.autoescape("somewhere/new.xml")  # an unknown kind errs on the safe side


def test_money_filters_mean_the_same_in_every_template():
    env = templating.environment(filters={"shout": str.upper})
    template = env.from_string("{{ fen | yuan }} {{ fen | wechat_amount }} {{ 'x' | shout }}")
    assert template.render(fen=740350) == "7,403.50 ¥7403.50 X"
    with pytest.raises(ValueError, match="yuan"):
        templating.environment(filters={"yuan": str})


def test_a_missing_value_is_an_error_not_an_empty_text():
    with pytest.raises(jinja2.UndefinedError):
        templating.environment().from_string("{{ plant_name }}").render()
    with pytest.raises(TypeError):  # the money filters take integer fen only, never the undefined
        templating.environment().from_string("{{ owed_fen | yuan }}").render()
