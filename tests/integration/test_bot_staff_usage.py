"""A staff command's usage is staff knowledge: whoever may not give the command is told so (not
staff, or the role it needs) whatever its arguments, and never shown how to write it."""

from __future__ import annotations

import pytest

from bot.commands import SPECS, Spec
from bot.replies import render
from settlement import models as m
from tests.integration.bot_support import *  # noqa: F403
from tests.integration.bot_support import OPERATOR, OWNER, STRANGER, VIEWER, Bot

STAFF_SPECS = [spec for spec in SPECS if spec.role is not None]


def wrong_texts(spec: Spec) -> list[str]:
    """Each way of writing the command wrongly, with every word that calls it."""
    texts = []
    for word in spec.words:
        texts += [" ".join([word] + ["X"] * n) for n in range(spec.least)]  # too few, none at all
        if spec.most is not None:
            texts.append(f"{word} {' '.join(['X'] * (spec.most + 1))}")  # too many
        if spec.reason == "required":
            texts.append(f"{word} {' '.join(['X'] * spec.least)}")  # no reason
        if spec.reason != "none":
            texts.append(f"{word} {' '.join(['X'] * spec.least)} 原因")  # an empty reason
        if not word.isascii() and spec.least > 1:
            texts.append(f"{word}X")  # glued to its first argument, the others missing
    return texts


def usage_of(spec: Spec) -> str:
    return render("malformed", name=spec.name, problem="")


def test_the_wrong_texts_are_malformed_commands():
    """What the tests below send is each a malformed staff command, not some other message."""
    from bot.commands import Malformed, parse

    for spec in STAFF_SPECS:
        assert wrong_texts(spec)
        for text in wrong_texts(spec):
            with pytest.raises(Malformed) as raised:
                parse(text)
            assert raised.value.spec is spec, text


@pytest.mark.parametrize("who", [STRANGER, OWNER], ids=["stranger", "owner"])
async def test_someone_not_staff_gets_not_staff_never_the_usage(bot: Bot, people, who):
    before = await m.AuditEvent.all().count()
    for spec in STAFF_SPECS:
        expected = render("not_staff", word=spec.words[0])
        for text in wrong_texts(spec):
            reply = (await bot.say(who, text)).text
            assert reply == expected, text
            assert "用法" not in reply and usage_of(spec) not in reply, text
    assert await m.AuditEvent.all().count() == before


@pytest.mark.parametrize(("who", "has"), [(VIEWER, m.StaffRole.VIEWER), (OPERATOR, m.StaffRole.OPERATOR)],
                         ids=["viewer", "operator"])
async def test_staff_of_too_low_a_role_get_role_required_never_the_usage(bot: Bot, people, who, has):
    from bot.commands import may

    above = [spec for spec in STAFF_SPECS if not may(has, spec.role)]
    assert above  # a viewer meets the operator and admin commands, an operator 退款
    for spec in above:
        expected = render("role_required", word=spec.words[0], needs=spec.role.value, has=has.value)
        for text in wrong_texts(spec):
            reply = (await bot.say(who, text)).text
            assert reply == expected, text
            assert "用法" not in reply, text


async def test_staff_with_the_role_still_get_the_usage(bot: Bot, people):
    reply = (await bot.say(OPERATOR, "抄表 PV-E1")).text
    assert "用法" in reply and "抄表 <电站>" in reply
    reply = (await bot.say(VIEWER, "电站")).text
    assert "用法" in reply and "电站 <电站>" in reply
