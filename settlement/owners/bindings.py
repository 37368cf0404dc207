"""Binding a WeChat user of the mini-program to an owner's account, and unbinding.

Two ways in:

* an **invitation code** staff issue for one owner (:func:`issue_invitation`, called by the bot):
  10 characters from an alphabet without look-alikes, used once, expiring; only its SHA-256 is
  stored;
* the **phone number** WeChat vouches for (a getPhoneNumber code, exchanged by the API) that
  equals the phone on file of exactly one owner.

A user bound to an owner must unbind before binding to another. Every binding, unbinding and
issued invitation writes an audit event.

**One WeChat user is one person.** The mini-program and the official account know the same
person under two openids (two WechatIdentity rows). Binding one binds the other:

* by **unionid**, where WeChat gives it (code2session and the official account's user/info both
  do when the two apps are bound to one open-platform account): every binding, and every time a
  unionid is learned (:func:`link_by_unionid`), binds the person's identities in the other apps
  that are bound to nobody to the same owner; unbinding unbinds them together. Identities bound
  to different owners are left alone: nothing says which one is right.
* by a **link code** otherwise (:func:`issue_link_code`): the bound user asks for one in one app
  and redeems it in the other — in the official account by sending ``绑定 <code>``, in the
  mini-program as an invitation code (the bot's reply carries a page path with it). A link code is
  used once, expires after 10 minutes, works only in an app other than its maker's, not for a user
  whose unionid differs from the maker's, not once the maker left the owner, and never rebinds a
  user bound to another owner.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from tortoise.transactions import in_transaction

from settlement import audit
from settlement.errors import Conflict, Forbidden, InvalidInput, NotFound
from settlement.models import Owner, OwnerInvitation, Staff, StaffRole, WechatIdentity
from settlement.clock import UTC, utc_now

# no 0/O, 1/I/L: the code is read out or typed from a chat message
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
DEFAULT_INVITATION_TTL = dt.timedelta(days=7)
MAX_INVITATION_TTL = dt.timedelta(days=30)
#: A link code is typed by its maker into their other app at once; a short life keeps a code seen
#: over someone's shoulder from being any use later.
LINK_CODE_TTL = dt.timedelta(minutes=10)


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def normalize_code(code: str) -> str:
    """Codes are case-blind and may be typed with spaces or dashes."""
    return re.sub(r"[\s\-]", "", code or "").upper()


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


async def issue_invitation(owner_id: int, staff: Staff, ttl: dt.timedelta = DEFAULT_INVITATION_TTL, *,
                           now: dt.datetime | None = None) -> tuple[str, OwnerInvitation]:
    """Make an invitation code for one owner; the code is returned once and stored only hashed.

    Parameters
    ----------
    owner_id : int
    staff : Staff
        Operator or admin issuing it.
    ttl : timedelta
        How long the code works, at most 30 days.

    Returns
    -------
    (code, invitation)
    """
    if not staff.active or staff.role not in (StaffRole.OPERATOR, StaffRole.ADMIN):
        raise Forbidden("issuing an invitation needs the operator or admin role", code="role_required")
    if not dt.timedelta(minutes=1) <= ttl <= MAX_INVITATION_TTL:
        raise InvalidInput("an invitation lives from 1 minute to 30 days", code="bad_ttl")
    if not await Owner.exists(id=owner_id):
        raise NotFound(f"no owner {owner_id}", code="unknown_owner")
    now = (now or utc_now()).astimezone(UTC)
    code = new_code()
    async with in_transaction() as conn:
        invitation = await OwnerInvitation.create(code_sha256=code_hash(code), owner_id=owner_id,
                                                  issued_by_id=staff.id, expires_at=now + ttl, using_db=conn)
        await audit.record(audit.actor_of(staff), "IssueInvitation", "owner", owner_id,
                           after={"invitation": invitation.id, "expires_at": invitation.expires_at},
                           using_db=conn)
    return code, invitation


async def bind_with_invitation(identity_id: int, code: str, *, now: dt.datetime | None = None) -> Owner:
    """Bind the user to the owner the invitation (or link code) is for, using it up.

    Unknown, used and expired codes get the same answer, so guessing learns nothing.
    """
    owner, _ = await bind_with_code(identity_id, code, now=now)
    return owner


async def bind_with_code(identity_id: int, code: str, *, now: dt.datetime | None = None) -> tuple[Owner, str]:
    """:func:`bind_with_invitation`, also saying how: ``invitation`` or ``link`` (a link code)."""
    now = (now or utc_now()).astimezone(UTC)  # SQLite compares stored UTC text
    code = normalize_code(code)
    if not code or len(code) > 32:
        raise InvalidInput("an invitation code is needed", code="invalid_invitation")
    async with in_transaction() as conn:
        identity = await WechatIdentity.filter(id=identity_id).using_db(conn).select_for_update().first()
        if identity is None:
            raise NotFound("no such user", code="not_found")
        invitation = await OwnerInvitation.filter(code_sha256=code_hash(code)).using_db(conn) \
            .select_for_update().first()
        if invitation is None or invitation.used_at is not None or invitation.expires_at <= now:
            raise InvalidInput("this invitation code is unknown, used or expired", code="invalid_invitation")
        how = "invitation"
        if invitation.linked_from_id is not None:
            await _check_link(invitation, identity, conn)
            how = "link"
        _check_unbound(identity, invitation.owner_id)
        # guarded update: two users racing for one code, only one gets it
        taken = await OwnerInvitation.filter(id=invitation.id, used_at__isnull=True).using_db(conn) \
            .update(used_at=now, used_by_id=identity.id)
        if taken != 1:
            raise InvalidInput("this invitation code is unknown, used or expired", code="invalid_invitation")
        await _bind(identity, invitation.owner_id, how, conn)
    return await Owner.get(id=invitation.owner_id), how


async def _check_link(invitation: OwnerInvitation, identity: WechatIdentity, conn) -> None:
    """A link code binds its maker's other app only (see the module docstring)."""
    maker = await WechatIdentity.get_or_none(id=invitation.linked_from_id).using_db(conn)
    if maker is None or maker.owner_id != invitation.owner_id:
        raise InvalidInput("this invitation code is unknown, used or expired", code="invalid_invitation")
    if maker.app_id == identity.app_id:
        raise InvalidInput("a link code is redeemed in your other app: the official account if it was made in "
                           "the mini-program, the mini-program if it was made in the official account",
                           code="link_same_app")
    if maker.unionid and identity.unionid and maker.unionid != identity.unionid:
        # WeChat says these are two people: the code was passed on
        raise InvalidInput("this invitation code is unknown, used or expired", code="invalid_invitation")


async def issue_link_code(identity_id: int, *, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """A link code for the owner this (bound) user is bound to, to bind the same person in the
    other app; any earlier unused link code of theirs stops working.

    Returns
    -------
    (code, expires_at)

    Raises
    ------
    NotFound
        ``not_bound``: the user is bound to no owner.
    """
    now = (now or utc_now()).astimezone(UTC)
    code = new_code()
    async with in_transaction() as conn:
        identity = await WechatIdentity.filter(id=identity_id).using_db(conn).select_for_update().first()
        if identity is None or identity.owner_id is None:
            raise NotFound("this WeChat user is not bound to an owner account", code="not_bound")
        await OwnerInvitation.filter(linked_from_id=identity.id, used_at__isnull=True, expires_at__gt=now) \
            .using_db(conn).update(expires_at=now)
        invitation = await OwnerInvitation.create(code_sha256=code_hash(code), owner_id=identity.owner_id,
                                                  linked_from_id=identity.id, expires_at=now + LINK_CODE_TTL,
                                                  using_db=conn)
        await audit.record(audit.actor_of(openid=identity.openid), "IssueLinkCode", "wechat_identity", identity.id,
                           after={"invitation": invitation.id, "owner": identity.owner_id,
                                  "expires_at": invitation.expires_at}, using_db=conn)
    return code, invitation.expires_at


async def link_by_unionid(identity_id: int, unionid: str | None = None) -> list[int]:
    """Learn the user's unionid (when given) and bind their identities that share it, where one
    owner is bound and the others to nobody. Returns the ids of the identities bound now."""
    async with in_transaction() as conn:
        identity = await WechatIdentity.filter(id=identity_id).using_db(conn).select_for_update().first()
        if identity is None:
            raise NotFound("no such user", code="not_found")
        if unionid and identity.unionid != unionid:
            identity.unionid = unionid
            await identity.save(using_db=conn, update_fields=["unionid"])
        return await _link_siblings(identity, conn)


async def _link_siblings(identity: WechatIdentity, conn) -> list[int]:
    if not identity.unionid:
        return []
    person = [identity, *await WechatIdentity.filter(unionid=identity.unionid).exclude(id=identity.id)
              .exclude(app_id=identity.app_id).using_db(conn).select_for_update()]
    owners = {i.owner_id for i in person if i.owner_id is not None}
    if len(owners) != 1:
        return []  # nobody bound yet, or bound to two owners: not ours to choose
    owner_id = owners.pop()
    linked = []
    for other in person:
        if other.owner_id is None:
            await _bind(other, owner_id, "unionid", conn)
            linked.append(other.id)
    return linked


async def person_identity_ids(identity_id: int) -> list[int]:
    """The user's identity and the identities of the same person in the other apps (by unionid):
    whose cached principals a binding or unbinding changes."""
    identity = await WechatIdentity.get_or_none(id=identity_id)
    if identity is None or not identity.unionid:
        return [identity_id]
    others = await WechatIdentity.filter(unionid=identity.unionid).exclude(id=identity_id) \
        .values_list("id", flat=True)
    return [identity_id, *others]


def normalize_phone(phone: str) -> str:
    """A mainland mobile number as 11 digits (WeChat gives ``+86 138…`` or ``138…``)."""
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


async def bind_with_phone(identity_id: int, phone: str) -> Owner:
    """Bind the user to the one owner whose phone on file is the number WeChat vouched for."""
    number = normalize_phone(phone)
    if len(number) < 7:
        raise InvalidInput("WeChat gave no usable phone number", code="no_phone")
    candidates = [o for o in await Owner.filter(phone__contains=number[-4:]) if normalize_phone(o.phone) == number]
    if not candidates:
        raise NotFound("no owner account has this phone number on file: ask staff for an invitation code",
                       code="phone_not_on_file")
    if len(candidates) > 1:
        raise Conflict("several owner accounts have this phone number: ask staff for an invitation code",
                       code="phone_ambiguous")
    owner = candidates[0]
    async with in_transaction() as conn:
        identity = await WechatIdentity.filter(id=identity_id).using_db(conn).select_for_update().first()
        if identity is None:
            raise NotFound("no such user", code="not_found")
        _check_unbound(identity, owner.id)
        await _bind(identity, owner.id, "phone", conn)
    return owner


def _check_unbound(identity: WechatIdentity, owner_id: int) -> None:
    if identity.owner_id is not None and identity.owner_id != owner_id:
        raise Conflict("this WeChat user is bound to another owner account: unbind first", code="already_bound")


async def _bind(identity: WechatIdentity, owner_id: int, how: str, conn) -> None:
    before = identity.owner_id
    identity.owner_id = owner_id
    await identity.save(using_db=conn, update_fields=["owner_id"])
    await audit.record(audit.actor_of(openid=identity.openid), "BindOwner", "wechat_identity", identity.id,
                       before={"owner": before}, after={"owner": owner_id, "by": how}, using_db=conn)
    if how != "unionid":  # the same person in the other apps, by unionid
        await _link_siblings(identity, conn)


async def unbind(identity_id: int) -> None:
    """The user leaves the owner account they are bound to (rights granted to them stay) — in
    every app where WeChat says (by unionid) it is the same person bound to that owner."""
    async with in_transaction() as conn:
        identity = await WechatIdentity.filter(id=identity_id).using_db(conn).select_for_update().first()
        if identity is None or identity.owner_id is None:
            raise NotFound("this WeChat user is not bound to an owner account", code="not_bound")
        person = [identity]
        if identity.unionid:
            person += await WechatIdentity.filter(unionid=identity.unionid, owner_id=identity.owner_id) \
                .exclude(id=identity.id).using_db(conn).select_for_update()
        for one in person:
            before = one.owner_id
            one.owner_id = None
            await one.save(using_db=conn, update_fields=["owner_id"])
            await audit.record(audit.actor_of(openid=identity.openid), "UnbindOwner", "wechat_identity", one.id,
                               before={"owner": before}, after={"owner": None}, using_db=conn)
