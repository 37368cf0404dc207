"""The four signed things keep their wire formats: session tokens, e-bill links, report links, cursors.

The golden values below were made by the code before :mod:`settlement.signing` (main at b3ebae1,
each module's own HMAC) for the inputs written beside them. Tokens and links issued then are out
there (links for 30 days, sessions for as long as they live), so the code must still make exactly
these strings and still accept them: a change of format fails here.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from bot.report_links import report_link, report_signature, verify
from miniprogram_api.pagination import decode_cursor, encode_cursor
from settlement import signing
from settlement.billing.ebill_links import LinkRefused, ebill_link, link_signature, sign_path, verify_link
from settlement.errors import InvalidInput
from settlement.owners.sessions import InvalidToken, TokenClaims, sign_token, verify_token
from settlement.clock import UTC

KEY = "golden-secret-key-0123456789abcdef"
EXP = 1893456000  # 2030-01-01T00:00:00Z [unix s]
AT_EXP = dt.datetime.fromtimestamp(EXP, UTC)

SESSION = "v1.4711.Zq3-x_9AbCdEfGhIjKlMnOpQ.1893456000.uUPcwwMGc41VU8DbzMs2CE_9oqLY5Tx2DotGxYvhCcg"
SESSION_BENCH = "v1.1.bench.1700000000.yT8xcc1MXZx1Mm_D5M8mlR3p-kRCSScytJpJJwqDfqU"
FORM_SIG = "b2df07b9cc79383cefe3aad7cecdf14e9247efc18ca3868bf38502eb0bcb7e8e"  # form 7, EXP
BILL_SIG = "a3fabf42961e8501dacc9af85889400b6cee685220e0a7a02e217f452e21cb49"  # bill 42, EXP
REPORT_EXP = EXP + 86400  # made at EXP, living the default 24 h
REPORT_CSV_SIG = "6e58145fa6e5a3db742705facc126fd93c05c07e3f3e7c1d6e96829cf9e8ad6e"
REPORT_XLSX_SIG = "833e61d935766ce7b43c285846a3deaa85cf6c731f35351ded8b6284895f0948"
CURSOR_123456 = "MTIzNDU2LjUwOTg1MzJkYWM1MWFjZWE"  # base64url("123456.5098532dac51acea")
CURSOR_1 = "MS5lNTNjOWIwY2MyMzNhMmIz"


# --- golden values: made as before, accepted as before -------------------------------------------


def test_session_tokens_are_made_and_read_as_before():
    assert sign_token(TokenClaims(4711, "Zq3-x_9AbCdEfGhIjKlMnOpQ", EXP), KEY) == SESSION
    assert sign_token(TokenClaims(1, "bench", 1700000000), KEY) == SESSION_BENCH
    assert verify_token(SESSION, KEY, now=EXP - 1) == TokenClaims(4711, "Zq3-x_9AbCdEfGhIjKlMnOpQ", EXP)
    assert verify_token(SESSION_BENCH, KEY, now=1700000000 - 1) == TokenClaims(1, "bench", 1700000000)


def test_ebill_links_are_made_and_read_as_before():
    assert ebill_link("form", 7, AT_EXP, KEY) == f"/e/form/7?exp={EXP}&sig={FORM_SIG}"
    assert ebill_link("bill", 42, AT_EXP, KEY) == f"/e/bill/42?exp={EXP}&sig={BILL_SIG}"
    assert sign_path("/e/bill/42.pdf", KEY, AT_EXP) == f"/e/bill/42.pdf?exp={EXP}&sig={BILL_SIG}"
    assert link_signature("bill", 42, EXP, KEY) == BILL_SIG
    before = AT_EXP - dt.timedelta(days=1)
    verify_link("form", 7, str(EXP), FORM_SIG, KEY, now=before)
    verify_link("bill", 42, str(EXP), BILL_SIG, KEY, now=before)
    verify_link("bill", 42, str(EXP), BILL_SIG.upper(), KEY, now=before)  # hex in either case, as ever


def test_report_links_are_made_and_read_as_before():
    assert report_link("2026-10", "csv", KEY, now=AT_EXP) == (
        f"/wechat/report/cycle-2026-10.csv?exp={REPORT_EXP}&sig={REPORT_CSV_SIG}",
        AT_EXP + dt.timedelta(hours=24))
    assert report_link("2026-10", "xlsx", KEY, now=AT_EXP)[0] == \
        f"/wechat/report/cycle-2026-10.xlsx?exp={REPORT_EXP}&sig={REPORT_XLSX_SIG}"
    assert report_signature("2026-10", "csv", REPORT_EXP, KEY) == REPORT_CSV_SIG
    assert verify("cycle-2026-10.csv", str(REPORT_EXP), REPORT_CSV_SIG, KEY, now=EXP) == ("2026-10", "csv")
    assert verify("cycle-2026-10.xlsx", str(REPORT_EXP), REPORT_XLSX_SIG.upper(), KEY, now=EXP) == ("2026-10", "xlsx")


def test_cursors_are_made_and_read_as_before():
    assert encode_cursor(123456, KEY) == CURSOR_123456
    assert encode_cursor(1, KEY) == CURSOR_1
    assert decode_cursor(CURSOR_123456, KEY) == 123456
    assert decode_cursor(CURSOR_1, KEY) == 1
    assert decode_cursor(None, KEY) is None and decode_cursor("", KEY) is None


# --- expiry: where each scheme's last second has always been -------------------------------------


def test_a_session_ends_at_its_expiry_and_links_after_it():
    verify_token(SESSION, KEY, now=EXP - 0.5)
    with pytest.raises(InvalidToken) as refused:
        verify_token(SESSION, KEY, now=EXP)
    assert refused.value.code == "token_expired"

    verify_link("form", 7, str(EXP), FORM_SIG, KEY, now=AT_EXP)
    with pytest.raises(LinkRefused) as refused:
        verify_link("form", 7, str(EXP), FORM_SIG, KEY, now=AT_EXP + dt.timedelta(seconds=1))
    assert refused.value.code == "link_expired"

    verify("cycle-2026-10.csv", str(REPORT_EXP), REPORT_CSV_SIG, KEY, now=REPORT_EXP)
    with pytest.raises(PermissionError, match="expired link"):
        verify("cycle-2026-10.csv", str(REPORT_EXP), REPORT_CSV_SIG, KEY, now=REPORT_EXP + 0.5)


# --- hostile input ---------------------------------------------------------------------------------


def _flip(text: str, at: int) -> str:
    """``text`` with the character at ``at`` replaced by another of the same alphabet."""
    return text[:at] + ("b" if text[at] == "a" else "a") + text[at + 1:]


@pytest.mark.parametrize("token", [
    _flip(SESSION, len(SESSION) - 5),                                      # forged signature
    SESSION.replace(".4711.", ".4712."),                                   # another identity
    SESSION.replace("Zq3-x_9", "Zq3-x_8"),                                 # another session
    SESSION.replace(".1893456000.", ".1893456001."),                       # a later expiry
    SESSION.replace("v1.", "v2.", 1),                                      # another version
    sign_token(TokenClaims(4711, "Zq3-x_9AbCdEfGhIjKlMnOpQ", EXP), "k" * 40),  # another key
    "", "v1", "v1....", "v1.4711.Zq3.1893456000",                          # malformed
    SESSION + ".extra", "v1.-1.s.1893456000." + "A" * 43,
    "v1.4711.sess:ion.1893456000." + "A" * 43, "v1.4711.---.1893456000." + "A" * 43,
    "v1.1234567890123.s.1893456000." + "A" * 43, "v1.4711.s.1234567890123." + "A" * 43,
    "v1.٤٧١١.s.1893456000." + "A" * 43,                                    # Arabic-Indic digits
    "v1.4711." + "s" * 200 + ".1893456000." + "A" * 43,                    # too long
    SESSION[:-1] + "=",                                                    # not base64url
])
def test_a_forged_tampered_or_malformed_session_token_is_refused(token):
    with pytest.raises(InvalidToken) as refused:
        verify_token(token, KEY, now=EXP - 1)
    assert refused.value.code == "invalid_token"


def test_a_session_token_needs_a_key():
    with pytest.raises(InvalidToken):
        verify_token(SESSION, "", now=EXP - 1)
    with pytest.raises(ValueError, match="32"):
        sign_token(TokenClaims(1, "s", EXP), "short")


@pytest.mark.parametrize(("kind", "ident", "exp", "sig"), [
    ("form", 7, str(EXP), _flip(FORM_SIG, 0)),             # forged
    ("form", 8, str(EXP), FORM_SIG),                       # another form
    ("bill", 7, str(EXP), FORM_SIG),                       # the form's signature on a bill
    ("form", 7, str(EXP + 86400), FORM_SIG),               # a later expiry
    ("form", 7, str(EXP), FORM_SIG[:-1]),                  # too short
    ("form", 7, str(EXP), FORM_SIG + "0"),                 # too long
    ("form", 7, str(EXP), "g" * 64),                       # not hex
    ("form", 7, str(EXP), "é" * 64),
    ("form", 7, str(EXP), ""),
    ("form", 7, "", FORM_SIG),
    ("form", 7, "1893456000.0", FORM_SIG),
    ("form", 7, "-1893456000", FORM_SIG),
    ("form", 7, "1" * 13, FORM_SIG),
    ("form", 7, "١٨٩٣٤٥٦٠٠٠", FORM_SIG),                  # Arabic-Indic digits
    ("invoice", 7, str(EXP), FORM_SIG),                    # not a kind
])
def test_a_forged_tampered_or_malformed_ebill_link_is_refused(kind, ident, exp, sig):
    with pytest.raises(LinkRefused) as refused:
        verify_link(kind, ident, exp, sig, KEY, now=AT_EXP - dt.timedelta(days=1))
    assert refused.value.code == "link_invalid"


def test_an_ebill_link_needs_a_key_and_a_kind():
    with pytest.raises(LinkRefused):
        verify_link("form", 7, str(EXP), FORM_SIG, "", now=AT_EXP)
    with pytest.raises(InvalidInput) as refused:
        link_signature("form", 7, EXP, "")
    assert refused.value.code == "no_secret_key"
    with pytest.raises(InvalidInput) as refused:
        ebill_link("invoice", 7, AT_EXP, KEY)
    assert refused.value.code == "bad_kind"


def test_a_forged_link_is_refused_as_invalid_even_when_expired():
    """The signature is looked at first: a forger does not learn whether an expiry would pass."""
    with pytest.raises(LinkRefused) as refused:
        verify_link("form", 7, "1", _flip(FORM_SIG, 3), KEY, now=AT_EXP)
    assert refused.value.code == "link_invalid"
    with pytest.raises(InvalidToken) as refused:
        verify_token(_flip(SESSION, len(SESSION) - 5), KEY, now=EXP + 1)
    assert refused.value.code == "invalid_token"
    with pytest.raises(PermissionError, match="invalid link"):
        verify("cycle-2026-10.csv", str(REPORT_EXP), _flip(REPORT_CSV_SIG, 0), KEY, now=REPORT_EXP + 1)


@pytest.mark.parametrize(("name", "exp", "sig"), [
    ("cycle-2026-10.csv", str(REPORT_EXP), _flip(REPORT_CSV_SIG, 0)),    # forged
    ("cycle-2026-09.csv", str(REPORT_EXP), REPORT_CSV_SIG),              # another month
    ("cycle-2026-10.xlsx", str(REPORT_EXP), REPORT_CSV_SIG),             # another format
    ("cycle-2026-10.csv", str(REPORT_EXP + 1), REPORT_CSV_SIG),          # a later expiry
    ("cycle-2026-13.csv", str(REPORT_EXP), REPORT_CSV_SIG),              # not a month
    ("cycle-2026-10.pdf", str(REPORT_EXP), REPORT_CSV_SIG),
    ("cycle-2026-10.csv", "", REPORT_CSV_SIG),
    ("cycle-2026-10.csv", "1" * 13, REPORT_CSV_SIG),
    ("cycle-2026-10.csv", str(REPORT_EXP), REPORT_CSV_SIG[:63]),
    ("cycle-2026-10.csv", str(REPORT_EXP), "z" * 64),
])
def test_a_forged_tampered_or_malformed_report_link_is_refused(name, exp, sig):
    with pytest.raises(PermissionError, match="invalid link"):
        verify(name, exp, sig, KEY, now=EXP)


def test_a_report_link_needs_a_key():
    with pytest.raises(PermissionError):
        verify("cycle-2026-10.csv", str(REPORT_EXP), REPORT_CSV_SIG, "", now=EXP)
    with pytest.raises(ValueError):
        report_signature("2026-10", "csv", REPORT_EXP, "")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("cursor", [
    _b64("123457.5098532dac51acea"),          # another id under the same tag
    _b64("123456.5098532dac51aceb"),          # forged tag
    _b64("123456.5098532DAC51ACEA"),          # the tag in upper case: cursors never took that
    _b64("123456.5098532dac51ace"),           # short tag
    _b64("123456"), _b64("123456."), _b64(".5098532dac51acea"),
    _b64("1234567890123.5098532dac51acea"),   # 13 digits
    _b64("-1.5098532dac51acea"),
    "not base64!", "é", "MTIzNDU2LjUwOTg1MzJkYWM1MWFjZW",  # one character short
])
def test_a_forged_tampered_or_malformed_cursor_is_refused(cursor):
    with pytest.raises(InvalidInput) as refused:
        decode_cursor(cursor, KEY)
    assert refused.value.code == "invalid_cursor"


# --- one scheme's signature does not pass for another's ------------------------------------------


def test_a_signature_of_one_scheme_does_not_pass_as_another():
    """Same key everywhere: each scheme's message starts with its own purpose, so none answers for
    another, even for the same numbers."""
    session_sig = SESSION.rsplit(".", 1)[1]
    report_for_bill = report_signature("2026-10", "csv", EXP, KEY)
    cursor_tag = base64.urlsafe_b64decode(CURSOR_123456 + "=").decode().partition(".")[2]
    for sig in (session_sig, report_for_bill, cursor_tag, cursor_tag + FORM_SIG[16:]):
        with pytest.raises(LinkRefused):
            verify_link("bill", 42, str(EXP), sig, KEY, now=AT_EXP)
    with pytest.raises(PermissionError):
        verify("cycle-2026-10.csv", str(REPORT_EXP), BILL_SIG, KEY, now=EXP)
    with pytest.raises(InvalidToken):
        verify_token(f"v1.42.s.{EXP}.{session_sig}", KEY, now=EXP - 1)
    ebill_tag = link_signature("bill", 123456, EXP, KEY)[:16]
    with pytest.raises(InvalidInput):
        decode_cursor(_b64(f"123456.{ebill_tag}"), KEY)


# --- the shared module itself ----------------------------------------------------------------------


def test_the_schemes_write_what_the_old_code_wrote():
    assert signing.SESSION_TOKEN.sign(KEY, 4711, "Zq3-x_9AbCdEfGhIjKlMnOpQ", EXP) == SESSION.rsplit(".", 1)[1]
    assert signing.EBILL_LINK["form"].sign(KEY, 7, EXP) == FORM_SIG
    assert signing.REPORT_LINK.sign(KEY, "2026-10", "csv", REPORT_EXP) == REPORT_CSV_SIG
    assert signing.CURSOR.sign(KEY, 123456) == "5098532dac51acea"


def test_a_malformed_signature_is_refused_before_any_hmac(monkeypatch):
    def no_crypto(*args, **kwargs):
        raise AssertionError("an HMAC was computed for a malformed signature")

    monkeypatch.setattr(signing.hmac, "new", no_crypto)
    for scheme, sig in ((signing.EBILL_LINK["bill"], "g" * 64), (signing.EBILL_LINK["bill"], BILL_SIG[:-1]),
                        (signing.SESSION_TOKEN, "=" * 43), (signing.CURSOR, "5098532DAC51ACEA"),
                        (signing.REPORT_LINK, "é" * 64)):
        assert not scheme.matches(sig, KEY, 1, 2)


def test_a_field_with_a_colon_is_refused_so_that_messages_stay_apart():
    # "report:cycle" + ("2026-10:csv", exp) would otherwise read as ("2026-10", "csv:<exp>")
    with pytest.raises(ValueError, match="':'"):
        signing.REPORT_LINK.sign(KEY, "2026-10:csv", EXP)


def test_no_purpose_is_another_or_opens_another():
    signing._apart(signing.SCHEMES)
    with pytest.raises(ValueError, match="could pass"):
        signing._apart((signing.REPORT_LINK, signing.Scheme("report", "hex", 64)))
    with pytest.raises(ValueError, match="could pass"):
        signing._apart((signing.CURSOR, signing.Scheme("cursor", "base64url", 43)))


@pytest.mark.parametrize(("text", "number"), [
    ("0", 0), ("1893456000", 1893456000), ("999999999999", 999999999999),
    ("", None), ("1" * 13, None), ("-1", None), ("+1", None), (" 1", None), ("1.0", None), ("١", None), ("²", None),
])
def test_whole_numbers_are_ascii_digits_up_to_twelve(text, number):
    assert signing.whole_number(text) == number


@pytest.mark.parametrize(("now", "expired"), [
    (EXP - 1, False), (EXP, False), (EXP + 0.5, True), (AT_EXP, False), (AT_EXP + dt.timedelta(seconds=1), True),
])
def test_links_open_through_their_expiry_second(now, expired):
    assert signing.REPORT_LINK.expired(EXP, now) is expired


def test_sessions_end_at_their_expiry_and_none_means_the_clock():
    assert not signing.SESSION_TOKEN.expired(EXP, EXP - 0.001)
    assert signing.SESSION_TOKEN.expired(EXP, EXP)
    assert signing.SESSION_TOKEN.expired(EXP, AT_EXP)
    assert signing.SESSION_TOKEN.expired(1, None) and not signing.SESSION_TOKEN.expired(EXP, None)
