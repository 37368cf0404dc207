"""Which subscribe-message templates a WeChat user accepted, so notifications know whom they may reach.

The mini-program calls wx.requestSubscribeMessage and reports its result, ``{template_id:
"accept" | "reject" | "ban"}`` (:func:`record_answers`). A one-time subscribe message may be
sent once per accept, so accepts are counted; :func:`may_send` says whether one is left and
:func:`use_one` spends it (the notification sender calls it when WeChat took the message).
"""

from __future__ import annotations

import re

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from settlement.errors import InvalidInput
from settlement.models import SubscribeAcceptance, SubscribeAnswer

# WeChat template ids are 43 characters of base64url; allow some room, nothing else
TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
MAX_TEMPLATES_PER_REPORT = 20  # wx.requestSubscribeMessage takes at most 3 (or 5) at once


async def record_answers(identity_id: int, answers: dict[str, str]) -> list[SubscribeAcceptance]:
    """Store the user's answer per template; an accept adds one message they may receive."""
    if not answers or len(answers) > MAX_TEMPLATES_PER_REPORT:
        raise InvalidInput(f"report 1 to {MAX_TEMPLATES_PER_REPORT} templates", code="bad_templates")
    parsed: dict[str, SubscribeAnswer] = {}
    for template_id, answer in answers.items():
        if not TEMPLATE_ID.match(template_id):
            raise InvalidInput(f"{template_id[:70]!r} is not a template id", code="bad_template_id")
        try:
            parsed[template_id] = SubscribeAnswer(answer)
        except ValueError:
            raise InvalidInput(f"{answer!r} is not accept, reject or ban", code="bad_answer") from None
    rows = []
    async with in_transaction() as conn:
        for template_id, answer in sorted(parsed.items()):
            row, created = await SubscribeAcceptance.get_or_create(
                identity_id=identity_id, template_id=template_id,
                defaults={"answer": answer, "accepts": 1 if answer == SubscribeAnswer.ACCEPT else 0},
                using_db=conn)
            if not created:
                await SubscribeAcceptance.filter(id=row.id).using_db(conn).update(
                    answer=answer, accepts=F("accepts") + (1 if answer == SubscribeAnswer.ACCEPT else 0))
                row = await SubscribeAcceptance.get(id=row.id).using_db(conn)
            rows.append(row)
    return rows


async def may_send(identity_id: int, template_id: str) -> bool:
    row = await SubscribeAcceptance.get_or_none(identity_id=identity_id, template_id=template_id)
    return row is not None and row.answer == SubscribeAnswer.ACCEPT and row.accepts > row.used


async def use_one(identity_id: int, template_id: str) -> bool:
    """Spend one accepted message; False when none is left (guarded, so two senders never spend one twice)."""
    return await SubscribeAcceptance.filter(identity_id=identity_id, template_id=template_id,
                                            answer=SubscribeAnswer.ACCEPT, accepts__gt=F("used")) \
        .update(used=F("used") + 1) == 1
