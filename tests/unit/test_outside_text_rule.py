"""settlement.text, the rule for text from outside, and the request types of /api/v1 built on it (no I/O)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import ValidationError

from settlement import text


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\x7f", "\x80", "\x85",
                                  "\x9f", "\ud800", "\udfff"])
def test_control_characters_and_lone_surrogates_are_refused(char):
    assert text.problem(f"ab{char}c") is not None
    with pytest.raises(text.InvalidText) as caught:
        text.check("reason", f"ab{char}c")
    assert caught.value.code == "invalid_text"
    assert caught.value.message.startswith("reason holds ")
    assert f"U+{ord(char):04X}) at position 2" in caught.value.message


@pytest.mark.parametrize("value", ["", "逆变器报警", "line\r\nnext\ttab", "€ 𐀀 \u00a0 \u2028 \ufeff"])
def test_ordinary_text_tabs_and_newlines_are_kept(value):
    assert text.problem(value) is None and text.check("text", value) == value


def test_a_document_names_the_first_refused_string_by_its_path_keys_included():
    assert text.first_refused({"a": [1, {"b": "ok"}], "c": {"d": "x\x00"}}).startswith("c.d holds NUL (U+0000)")
    refused = text.first_refused({"a": {"k\x01": 1}})
    assert refused.startswith("a.k\\u0001 (a key) holds a control character (U+0001)")
    assert "\x01" not in refused  # the message itself can be logged, stored and sent
    assert text.first_refused({"a": ["fine", 1.5, None, True]}) is None


def test_the_json_schema_pattern_says_the_same_as_the_rule_for_every_scalar_value():
    pattern = re.compile(text.JSON_SCHEMA_PATTERN)
    for point in [*range(0x00, 0x100), 0x2028, 0xFEFF, 0x10000, 0x10FFFF]:
        char = chr(point)
        assert bool(pattern.match(char)) == (text.problem(char) is None), hex(point)


def test_amounts_take_json_integers_written_with_a_zero_fraction_and_nothing_else():
    from miniprogram_api.views_prepaid import TopUpIn

    assert TopUpIn.model_validate_json('{"amount_fen": 39.0}').amount_fen == 39
    for body in ('{"amount_fen": 39.5}', '{"amount_fen": "39"}', '{"amount_fen": true}', '{"amount_fen": 0}',
                 '{"amount_fen": 1e300}'):
        with pytest.raises(ValidationError):
            TopUpIn.model_validate_json(body)


def test_the_history_at_pattern_is_exactly_the_calendar_from_2000_to_2099():
    from miniprogram_api.schemas import AT_PATTERN

    pattern = re.compile(AT_PATTERN)
    day = dt.date(2000, 1, 1)
    while day.year < 2100:
        assert pattern.match(day.isoformat()) and pattern.match(day.isoformat()[:7]), day
        day += dt.timedelta(days=1)
    for wrong in ("2026-02-29", "2100-01-01", "1999-12-31", "2026-04-31", "2026-13", "2026-7", "٢٠٢٦"):
        assert not pattern.match(wrong), wrong
    assert pattern.match("2024-02-29") and pattern.match("2000-02-29")


@pytest.mark.parametrize("bad", ["\x00", "\x7f", "\x85", "\x9f", "\ud800"])
def test_wechat_pay_answers_meet_the_same_rule(bad):
    # a queried order or refund (reconciliation) is read by ports.pay's shapes, not at /pay/notify:
    # what the outside-text rule refuses is refused there too, DEL and C1 included
    from settlement.ports.pay import unreadable_text

    problem = unreadable_text({"out_trade_no": "PV1", "attach": {"note": f"月结{bad}"}})
    assert problem is not None and f"U+{ord(bad):04X}" in problem
    assert unreadable_text({"out_trade_no": "PV1", "attach": "月结\t\r\n"}) is None
