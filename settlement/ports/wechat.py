"""The WeChat API port: what pvsettle asks of WeChat's servers.

Adapters: an aiohttp client for the real API (``settlement.adapters.wechat_http``; wechatpy's
client blocks, so it is not used for outbound calls) and, for tests and the sandbox, the same
client pointed at a fake WeChat server that speaks the real protocol.

Exceptions::

    WechatError                  WeChat answered with an errcode ≠ 0 (``errcode``, ``errmsg``)
    ├── InvalidCode              40029, 40163: the wx.login / getPhoneNumber code is bad or used
    ├── RateLimited              45011: too frequent for this user
    ├── RiskyUser                40226: WeChat's risk control blocked the user
    ├── TokenExpired             40001, 42001, 40014: the access token is stale (refetched, retried)
    ├── QuotaExceeded            45009: the app's daily quota is used up
    ├── UserRefused              43101: the user did not accept this subscribe template
    ├── InvalidMessage           47003 and other 4xxxx: a field value WeChat refuses
    └── WechatUnavailable        5xx, timeouts, connection errors, errcode -1 (system busy): transient
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class WechatError(Exception):
    transient = False

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class InvalidCode(WechatError):
    pass


class RateLimited(WechatError):
    transient = True


class RiskyUser(WechatError):
    pass


class TokenExpired(WechatError):
    transient = True


class QuotaExceeded(WechatError):
    transient = True


class UserRefused(WechatError):
    pass


class InvalidMessage(WechatError):
    pass


class WechatUnavailable(WechatError):
    transient = True


ERRORS: dict[int, type[WechatError]] = {
    40029: InvalidCode, 40163: InvalidCode, 45011: RateLimited, 40226: RiskyUser,
    40001: TokenExpired, 42001: TokenExpired, 40014: TokenExpired, 45009: QuotaExceeded,
    43101: UserRefused, 47003: InvalidMessage,
    # "system error": WeChat is busy; the same request may well succeed a moment later
    -1: WechatUnavailable,
}


def error_for(errcode: int, errmsg: str) -> WechatError:
    """The exception for one of WeChat's error codes (unknown 4xxxx codes are invalid messages)."""
    return ERRORS.get(errcode, InvalidMessage if 40000 <= errcode < 50000 else WechatError)(errcode, errmsg)


@dataclass(frozen=True)
class MiniProgramSession:
    """What code2session tells: the user's openid in the mini-program, the session key (which
    never leaves the server) and the unionid when the user is bound to the open platform."""

    openid: str
    # never printed: a logged session object must not leak the key that decrypts the user's data
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True)
class OfficialAccountUser:
    """What the official account's user/info tells of a follower: whether they follow, and
    their unionid when the account is bound to an open-platform account."""

    openid: str
    subscribed: bool
    unionid: str | None = None


class WechatApi(Protocol):
    """The calls pvsettle makes. ``app`` is ``"mp"`` (mini-program) or ``"oa"`` (official account)."""

    async def access_token(self, app: str) -> str:
        """A valid access token of ``app`` (shared by every process, renewed before it expires)."""
        ...

    async def code2session(self, code: str) -> MiniProgramSession: ...

    async def phone_number(self, code: str) -> str:
        """The phone number behind a getPhoneNumber code (mini-program)."""
        ...

    async def send_subscribe_message(self, openid: str, template_id: str, data: dict[str, str],
                                     page: str | None = None) -> None: ...

    async def send_template_message(self, openid: str, template_id: str, data: dict[str, str],
                                    url: str | None = None, miniprogram_page: str | None = None) -> None: ...

    async def send_customer_service_text(self, openid: str, text: str) -> None: ...

    async def user_info(self, openid: str) -> OfficialAccountUser:
        """The official account's user/info of a follower (unionid when WeChat gives one)."""
        ...
