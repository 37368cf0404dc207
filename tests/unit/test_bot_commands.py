"""The bot's command grammar, without I/O: words and aliases, full-width text, blanks, reasons,
arguments counted, amounts of 元 to exact fen, and every command having its usage text."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import commands, replies
from bot.commands import Malformed, UnknownCommand, amount_fen, parse
from bot.protocol import cdata_safe
from settlement.models import StaffRole


@pytest.mark.parametrize(("text", "name", "args"), [
    ("绑定 ABCDE23456", "bind", ("ABCDE23456",)),
    ("绑定ABCDE23456", "bind", ("ABCDE23456",)),
    ("BIND abcde 23456", "bind", ("abcde", "23456")),
    ("发电", "gen", ()),
    ("gen PV-E1", "gen", ("PV-E1",)),
    ("ｇｅｎ　ＰＶ－Ｅ１", "gen", ("PV-E1",)),
    ("  账单 ", "bills", ()),
    ("？", "help", ()),
    ("抄表　ＰＶ－Ｅ１　０００１００００　１２３４．５", "reading", ("PV-E1", "00010000", "1234.5")),
    ("抄表 PV-E1 00010000 1234.5 2026-10-01 08:00", "reading",
     ("PV-E1", "00010000", "1234.5", "2026-10-01", "08:00")),
    ("收款 202610-PV-E1-1 ¥1,234.50 转账", "collect", ("202610-PV-E1-1", "¥1,234.50", "转账")),
    ("欠费", "arrears", ()),
    ("欠费 30", "arrears", ("30",)),
    ("report 2026-10", "report", ("2026-10",)),
])
def test_words_aliases_full_width_and_blanks(text: str, name: str, args: tuple):
    cmd = parse(text)
    assert cmd.spec.name == name and cmd.args == args


@pytest.mark.parametrize(("text", "args", "reason"), [
    ("调整 PV-E1 M1 00010000 1700 原因 表计翻转误读", ("PV-E1", "M1", "00010000", "1700"), "表计翻转误读"),
    ("调整 PV-E1 M1 00010000 1700 原因：表计故障，已更换", ("PV-E1", "M1", "00010000", "1700"), "表计故障，已更换"),
    ("调整 PV-E1 M1 00010000 1700 原因表计故障", ("PV-E1", "M1", "00010000", "1700"), "表计故障"),
    ("adjust PV-E1 M1 00010000 1700 reason: misread  dial", ("PV-E1", "M1", "00010000", "1700"), "misread  dial"),
    ("adjust PV-E1 M1 00010000 1700 ＲＥＡＳＯＮ misread", ("PV-E1", "M1", "00010000", "1700"), "misread"),
    ("确认 12", ("12",), None),
    ("确认 #12 原因 业主 10-05 邮件确认", ("#12",), "业主 10-05 邮件确认"),
])
def test_the_reason_is_everything_after_its_word_as_typed(text: str, args: tuple, reason: str | None):
    cmd = parse(text)
    assert cmd.args == args and cmd.reason == reason


def test_free_text_is_kept_as_typed():
    cmd = parse("报修 逆变器显示 E21 故障，屋顶有焦味！")
    assert cmd.spec.name == "repair" and cmd.text == "逆变器显示 E21 故障，屋顶有焦味！"


@pytest.mark.parametrize(("text", "name"), [
    ("绑定 A B C D E", "bind"), ("账单 2026", "bills"), ("调整 PV-E1 M1 00010000 1700", "adjust"),
    ("调整 PV-E1 M1 00010000 1700 原因", "adjust"), ("重发 PV-E1", "reissue"), ("收款 B1 100", "collect"),
    ("电站", "plant"), ("报表", "report"), ("欠费 1 2", "arrears"), ("报修", "repair"),
])
def test_wrong_arguments_name_the_command_whose_usage_to_show(text: str, name: str):
    # (绑定 alone parses: bound, it asks for a mini-program link code; unbound, the handler shows the usage)
    with pytest.raises(Malformed) as caught:
        parse(text)
    assert caught.value.spec.name == name


@pytest.mark.parametrize("text", ["", "   ", "你好", "billsfoo", "{0.__class__}", "%s%s%n", "'; DROP TABLE plant; --"])
def test_anything_else_is_no_command(text: str):
    with pytest.raises(UnknownCommand):
        parse(text)


@pytest.mark.parametrize(("text", "fen"), [
    ("1234.5", 123450), ("1,234.50", 123450), ("¥12", 1200), ("￥12", 1200), ("0.01元", 1), ("１２．３４", 1234),
    ("1,000,000", 100_000_000), ("0", 0), ("7659.67", 765967),
])
def test_amounts_of_yuan_become_exact_fen(text: str, fen: int):
    assert amount_fen(text) == fen


@pytest.mark.parametrize("text", ["1.234", "-5", "1e3", "1,23", "12,3456", "NaN", "inf", "1.", ".5", "0x10", "", "1 2",
                                  "12345678901234"])
def test_other_amounts_are_refused(text: str):
    with pytest.raises(ValueError):
        amount_fen(text)


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_every_fen_amount_written_in_yuan_reads_back_exactly(fen: int):
    text = f"{fen // 100}.{fen % 100:02d}"
    assert amount_fen(text) == fen
    assert amount_fen(f"{Decimal(fen) / 100:,.2f}") == fen


def test_roles_rank_viewer_operator_admin():
    assert commands.may(StaffRole.ADMIN, StaffRole.OPERATOR)
    assert commands.may(StaffRole.OPERATOR, StaffRole.VIEWER)
    assert not commands.may(StaffRole.VIEWER, StaffRole.OPERATOR)
    assert not commands.may(None, StaffRole.VIEWER)


def test_every_command_has_its_usage_and_is_in_the_help_of_those_who_may_give_it():
    for spec in commands.SPECS:
        usage = replies.render("malformed", name=spec.name, problem="")
        assert spec.words[0] in usage, spec.name
    for role in (None, *StaffRole):
        text = replies._ENV.get_template("bot/help.txt").render(specs=commands.SPECS, role=role,
                                                                   may=commands.may, owner=None)
        for spec in commands.SPECS:
            shown = spec.role is None or commands.may(role, spec.role)
            assert (f"· {spec.words[0]} " in text) == shown, (role, spec.name)


def test_every_command_word_is_in_the_documented_grammar():
    for spec in commands.SPECS:
        for word in spec.words:
            assert word in commands.__doc__, word


def test_replies_are_cut_to_what_wechat_takes():
    long = "\n".join(f"第 {i} 行：欠费账单" for i in range(500))
    cut = replies.cut(long)
    assert len(cut.encode()) <= replies.MAX_REPLY_BYTES and cut.endswith("已截断）")


@pytest.mark.parametrize("text", ["a]]>b", "]]>]]>", "x\x00y\x08z", "<![CDATA[ ]]>"])
def test_cdata_safe_text_reads_back_as_written(text: str):
    import xml.etree.ElementTree as ET

    xml = f"<xml><Content><![CDATA[{cdata_safe(text)}]]></Content></xml>"
    expected = "".join(c for c in text if c not in "\x00\x08")
    assert ET.fromstring(xml).findtext("Content") == expected
