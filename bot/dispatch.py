"""From a verified WeChat message to the text that answers it."""

from __future__ import annotations

from bot import events, owner, run
from bot.context import Env, Later, find_caller
from bot.inbound import Inbound
from bot.replies import render


async def handle(inbound: Inbound, env: Env) -> str | Later | None:
    """The reply (None: no reply, ``success``), or background work and its acknowledgement."""
    if inbound.refused_text is not None:  # before anything is looked up or stored with it
        return render("bad_text")
    caller = await find_caller(env.app_id, inbound.openid)
    if inbound.kind != "event" or inbound.event != "unsubscribe":
        # a follower bound in the mini-program is bound here too (by unionid, when WeChat tells it)
        await owner.learn_unionid(caller, env)
    if inbound.kind == "text":
        return await run.run_text(inbound.content, caller, env)
    return await events.handle(inbound, caller, env)
