"""The bot's command language: one grammar for owners and O&M staff, parsed without I/O.

Grammar
-------
::

    message     = command *( blank argument ) [ blank reason-word blank reason ]
    command     = a command word or an alias from the table below, case-blind
    argument    = a run of characters without blanks
    blank       = one or more spaces, tabs or line breaks (full-width spaces count)
    reason-word = "原因" | "reason" | "because"   (case-blind, full-width too; "原因:", "原因：",
                                                  and 原因 glued to the reason as well)
    reason      = the rest of the message, blanks and all

The command word and every argument are NFKC-normalised: full-width letters, digits and
punctuation become their ASCII forms, so ``抄表　ＰＶ－Ｅ１　０００１００００　１２３４．５`` reads as
``抄表 PV-E1 00010000 1234.5``; leading and trailing blanks are dropped. A Chinese command word
may be glued to its first argument (``绑定ABCD234567``); an English one needs a blank. Free text
(报修's description, a reason) is kept exactly as typed, full-width punctuation and all.

Values
------
==========  =====================================================================================
plant       a plant code (``PV-E1``), case-blind
meter       a meter serial of that plant
register    a DL/T 645 register id, 8 hex digits: ``00010000`` forward active total,
            ``00010100``–``00010400`` its rates 1–4, ``00020000``… reverse (export)
value       a reading in meter units (before the multiplier), at most 4 decimals
time        local time (Asia/Shanghai), ISO 8601: ``2026-10-01 08:00`` or ``2026-10-01T08:00``;
            an explicit offset (``+08:00``, ``Z``) is honoured; default now
period      ``YYYY-MM``
amount      元 with at most 2 decimals, e.g. ``1234.5``, ``1,234.50``, ``¥1234.50``,
            ``1234.50元`` — converted to fen exactly, never through a float
channel     ``bank`` (转账, 银行), ``counter`` (柜台, 现金), ``other`` (其他)
form        a confirmation form's id (shown in replies as 确认单 #id)
fault       a fault report's id (shown in replies as 报修 #id; ``#12`` and ``F12`` read as 12)
payment     a payment's id or its transaction id (WeChat Pay's, or ``bank_transfer:<reference>``)
bill        a bill's number (``202610-PV-E1-1``) or its id
days        a whole number of days ≥ 0
==========  =====================================================================================

Commands
--------
Owners (a WeChat user bound to an owner account; 绑定 and 帮助 work for anyone):

==========================  =====================  ========================================================
command                     aliases                does
==========================  =====================  ========================================================
绑定 <code>                  bind                   bind this WeChat user to the owner the invitation (or the
                                                    mini-program's link code) is for; 绑定 alone, when bound:
                                                    a link code for the mini-program
发电 [plant]                 gen, generation        live power, today's and lifetime energy per plant
账单                         bills, bill            open bills with what is owed, and e-bill links
缴费                         pay                    a link into the mini-program's bill page
报修 [plant] <text>          repair                 report a fault (the plant may be left out with one plant)
帮助                         help, ?                this list (staff also see theirs)
==========================  =====================  ========================================================

Staff, by role (viewer < operator < admin; a role may do everything the lower ones may):

=======================================================  ========  ===============================================
command                                                  role      does
=======================================================  ========  ===============================================
抄表 <plant> [meter] <register> <value> [time]             operator  record a manual reading (meter may be left out
                                                                   when one meter of the plant has the register)
调整 <plant> <meter> <register> <value> 原因 <reason>      operator  correct the current reading of the plant's latest
                                                                   cycle: the form gets a new version
调整 <plant> 电量 <energy> <rate> <kWh> 原因 <reason>      operator  set an energy of the latest cycle's form directly;
                                                                   energy generation|export|grid (发电|上网|下网),
                                                                   rate sharp|peak|flat|valley (尖|峰|平|谷)
重发 <plant> <period>                                      operator  send the period's draft form to the owner, or
                                                                   notify the owner again of a sent one (both
                                                                   through the notification outbox)
确认 <form> [原因 <note>]                                  operator  confirm a form on the owner's written word
收款 <bill> <amount> <channel> [reference]                 operator  record an offline payment (reference defaults to
                                                                   this message's id, so a repeat is not recorded twice)
邀请 <plant>                                              operator  an invitation code for the plant's owner to bind
退款 <payment> <amount> 原因 <reason>                      admin     refund (part of) a payment: a WeChat Pay one
                                                                   through WeChat Pay, an offline one as paid
                                                                   back by finance; the bill owes it again
工单 <fault> <state> [note]                                operator  move an owner's fault report (报修) on: state 受理 or
                                                                   处理中 (in_progress), 已修复 or 已解决 (resolved);
                                                                   the note (free text) is shown to the owner, who
                                                                   is told of each step through the outbox
开票 <bill>                                               operator  ask for a paid bill's e-invoice now, the owner's
                                                                   name and tax id on file as the buyer (asking
                                                                   again answers the request there is)
欠费 [days]                                               viewer    bills unpaid ≥ days past their due date (default 1)
电站 <plant>                                              viewer    capacity, live state, latest telemetry, open faults
报表 <period>                                             viewer    the cycle report's figures and a signed link to
                                                                   its CSV file (valid 24 h)
通知 <bill>                                               viewer    the bill's latest notifications in the outbox
                                                                   and where each stands (pending, sent, failed)
=======================================================  ========  ===============================================

English aliases: read (抄表), adjust (调整), reissue/resend (重发), confirm (确认), collect/receive
(收款), invite (邀请), refund (退款), fault (工单), invoice (开票), arrears (欠费), plant/station (电站), report (报表),
notice/delivery (通知).

A message that is not a command is answered with a pointer to 帮助; a command with the wrong
arguments with its usage; a command the sender may not give with the reason (not staff, or the
role it needs).

Exceptions::

    CommandError             the message cannot be run as written
    ├── UnknownCommand       the first word is no command
    └── Malformed            the command's arguments do not fit its usage (``spec`` says which)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from settlement.models import StaffRole

#: Order of the staff roles: a role may do what any lower one may.
ROLE_RANK = {StaffRole.VIEWER: 1, StaffRole.OPERATOR: 2, StaffRole.ADMIN: 3}

#: Menu buttons (CLICK events) and the owner command each one runs.
MENU = {"MY_GENERATION": "gen", "MY_BILLS": "bills", "PAY": "pay"}

REASON_WORDS = ("原因", "reason", "because")
_REASON = re.compile(r"(?:^|\s)(?:原因[:：]?|(?:reason|because|ｒｅａｓｏｎ|ｂｅｃａｕｓｅ)(?:[:：]|\s|$))\s*(.*)\Z",
                     re.S | re.I)
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_AMOUNT = re.compile(r"^(\d{1,3}(?:,\d{3})+|\d{1,12})(?:\.(\d{1,2}))?$")
_REGISTER = re.compile(r"^[0-9A-Fa-f]{8}$")
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Spec:
    """One command: its name (also the name of its usage in templates/bot/_usage.txt), the words
    that call it, the staff role it needs (None: an owner command), how many arguments it takes
    before the reason (``most`` None: free text), whether a reason is required, allowed or not,
    and whether it always runs in the background (acknowledged at once, answered by a
    customer-service message)."""

    name: str
    words: tuple[str, ...]
    role: StaffRole | None
    least: int
    most: int | None
    reason: str = "none"  # none | optional | required
    background: bool = False


SPECS: tuple[Spec, ...] = (
    Spec("bind", ("绑定", "bind"), None, 0, 4),
    Spec("gen", ("发电", "gen", "generation"), None, 0, 1),
    Spec("bills", ("账单", "bills", "bill"), None, 0, 0),
    Spec("pay", ("缴费", "pay"), None, 0, 0),
    Spec("repair", ("报修", "repair"), None, 1, None),
    Spec("help", ("帮助", "help", "?"), None, 0, None),
    Spec("reading", ("抄表", "read"), StaffRole.OPERATOR, 3, 6),
    Spec("adjust", ("调整", "adjust"), StaffRole.OPERATOR, 4, 5, reason="required"),
    Spec("reissue", ("重发", "reissue", "resend"), StaffRole.OPERATOR, 2, 2, background=True),
    Spec("confirm", ("确认", "confirm"), StaffRole.OPERATOR, 1, 1, reason="optional"),
    Spec("collect", ("收款", "collect", "receive"), StaffRole.OPERATOR, 3, 4),
    Spec("invite", ("邀请", "invite"), StaffRole.OPERATOR, 1, 1),
    Spec("refund", ("退款", "refund"), StaffRole.ADMIN, 2, 2, reason="required", background=True),
    Spec("fault", ("工单", "fault"), StaffRole.OPERATOR, 2, None),
    Spec("invoice", ("开票", "invoice"), StaffRole.OPERATOR, 1, 1),
    Spec("arrears", ("欠费", "arrears"), StaffRole.VIEWER, 0, 1),
    Spec("plant", ("电站", "plant", "station"), StaffRole.VIEWER, 1, 1),
    Spec("report", ("报表", "report"), StaffRole.VIEWER, 1, 1, background=True),
    Spec("notice", ("通知", "notice", "delivery"), StaffRole.VIEWER, 1, 1),
)
BY_NAME = {spec.name: spec for spec in SPECS}
BY_WORD = {word.lower(): spec for spec in SPECS for word in spec.words}
# Chinese words may be glued to their first argument; longest first so no word shadows another
_GLUED = sorted((w for w in BY_WORD if _HAN.match(w)), key=len, reverse=True)


class CommandError(Exception):
    pass


class UnknownCommand(CommandError):
    def __init__(self, word: str):
        super().__init__(f"unknown command {word!r}")
        self.word = word


class Malformed(CommandError):
    """The arguments do not fit; ``problem`` says how (for the reply), ``spec`` whose usage to show."""

    def __init__(self, spec: Spec, problem: str = ""):
        super().__init__(f"{spec.name}: {problem or 'wrong arguments'}")
        self.spec = spec
        self.problem = problem


@dataclass(frozen=True)
class Command:
    """A parsed command: its spec, the (normalised) arguments before the reason, the reason as
    typed, and ``text``, everything after the command word as typed (free text for 报修)."""

    spec: Spec
    args: tuple[str, ...]
    reason: str | None
    text: str


def normalize(text: str) -> str:
    """NFKC (full-width to ASCII), blanks of any kind as they are, ends stripped."""
    return unicodedata.normalize("NFKC", text or "").strip()


def parse(text: str) -> Command:
    """Parse one message into a command (grammar in the module docstring).

    Raises
    ------
    UnknownCommand
        The first word is no command (also for an empty message).
    Malformed
        The command takes other arguments.
    """
    original = (text or "").strip()
    head = original.split(None, 1)  # str.split knows full-width and other Unicode blanks
    first = head[0] if head else ""
    rest = head[1] if len(head) > 1 else ""
    spec = BY_WORD.get(normalize(first).lower())
    if spec is None:
        # Chinese words are the same after NFKC, so the glued argument starts right after them
        glued = next((w for w in _GLUED if first.startswith(w)), None)
        if glued is None:
            raise UnknownCommand(normalize(first)[:20])
        spec = BY_WORD[glued]
        rest = (first[len(glued):] + " " + rest).strip()
    reason: str | None = None
    before = rest
    if spec.reason != "none":
        match = _REASON.search(rest)
        if match:
            reason = match.group(1).strip()
            before = rest[:match.start()]
            if not reason:
                raise Malformed(spec, "原因不能为空")
    if spec.reason == "required" and reason is None:
        raise Malformed(spec, "缺少「原因」")
    args = tuple(normalize(a) for a in before.split())
    if len(args) < spec.least:
        raise Malformed(spec, "参数不足")
    if spec.most is not None and len(args) > spec.most:
        raise Malformed(spec, "参数过多")
    return Command(spec=spec, args=args, reason=reason, text=rest)


# --- values ------------------------------------------------------------------------------------


def amount_fen(text: str) -> int:
    """An amount of 元 as written by staff, in exact integer fen.

    ``1234.5`` → 123450, ``1,234.50`` → 123450, ``¥12`` → 1200, ``0.01元`` → 1. At most 2
    decimals; thousands separators only in groups of three; never through a float.

    Raises
    ------
    ValueError
        Anything else (negative, more decimals, exponents, letters).
    """
    value = normalize(text).removeprefix("¥").removesuffix("元").strip()
    match = _AMOUNT.match(value)
    if not match:
        raise ValueError(f"not an amount of 元 with at most 2 decimals: {text!r}")
    whole = int(match.group(1).replace(",", ""))
    cents = int((match.group(2) or "").ljust(2, "0"))
    return whole * 100 + cents


def period(text: str) -> str:
    """A period ``YYYY-MM`` (``2026-1`` is not one); raises ValueError."""
    if not _PERIOD.match(text):
        raise ValueError(f"not a period YYYY-MM: {text!r}")
    return text


def register(text: str) -> str:
    """A DL/T 645 register id, upper-case; raises ValueError."""
    if not _REGISTER.match(text):
        raise ValueError(f"not a register id of 8 hex digits: {text!r}")
    return text.upper()


def whole_days(text: str) -> int:
    """Days ≥ 0 (at most 3650); raises ValueError."""
    if not (text.isascii() and text.isdigit()) or int(text) > 3650:
        raise ValueError(f"not a number of days: {text!r}")
    return int(text)


def may(role: StaffRole | None, needs: StaffRole) -> bool:
    """Whether a staff member of ``role`` may give a command that needs ``needs``."""
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needs]
