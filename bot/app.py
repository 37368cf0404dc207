"""The official-account endpoint as an aiohttp sub-app, mounted at ``/wechat``.

Routes
------
``GET /wechat``
    WeChat's URL check: ``echostr`` back when the signature holds.
``POST /wechat``
    One message or event, plaintext or safe mode (:mod:`bot.protocol` checks it all first).
``GET /wechat/report/cycle-<period>.<csv|xlsx>?exp&sig``
    A staff report behind a signed, expiring link (:mod:`bot.report_links`).

Each delivery is answered once
------------------------------
WeChat retries a message it got no answer to within 5 s, and a captured request could be sent
again within the allowed clock skew. Two Redis keys (``SET NX`` with an expiry, under the
deployment's Namespace) make the second delivery answer ``success`` and do nothing: the request's
(timestamp, nonce), which WeChat never reuses for another message, and the message's natural key
(MsgId, or sender + CreateTime + event for events). Without Redis the bot cannot tell a repeat, so
it answers that it is busy and runs nothing.

Always within WeChat's 5 s
--------------------------
The command runs as a tracked background task (:mod:`bot.tasks`); the request waits for it at most
``REPLY_DEADLINE_S``. Done by then: its reply is the passive answer. Not done: the user is told it
is being worked on, and the task sends its reply as a customer-service message when it finishes.
Commands that are slow by nature (报表, 重发) do not wait at all: they are acknowledged at once.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from redis.exceptions import RedisError

from bot import dispatch, protocol, run
from bot.context import Env, Later
from bot.inbound import Inbound
from bot.protocol import ProtocolError, Verified
from bot.replies import cut, render
from bot.report_links import serve_report
from bot.tasks import bot_tasks_key
from settlement import text as outside_text
from settlement.ports.wechat import WechatError
from settlement.infra.redis_client import Namespace
from webapp.keys import notify_apps_key, pay_api_key, redis_key, redis_ns_key, settings_key, wechat_api_key

log = logging.getLogger("pvsettle.bot")

#: The longest a request waits for its command before acknowledging it [s] (WeChat gives up at 5 s).
REPLY_DEADLINE_S = 2.0
#: How long a message's key is remembered [s]: WeChat's retries come within about 15 s.
SEEN_TTL_S = 3600


class Job:
    """One message's work: run in a task, finished by customer-service message if it runs late."""

    def __init__(self, inbound: Inbound, env: Env):
        self.inbound = inbound
        self.env = env
        self.late = False

    async def run(self) -> str | Later | None:
        try:
            result = await dispatch.handle(self.inbound, self.env)
        except Exception:
            log.exception("bot message failed", extra={"kind": self.inbound.kind, "event": self.inbound.event})
            result = render("error")
        if self.late:  # the request has answered "working on it": the result goes by message
            await self.finish(result)
        return result

    async def finish(self, result: str | Later | None) -> None:
        if isinstance(result, Later):
            try:
                text = await run.finish(result)
            except Exception:
                log.exception("bot background command failed", extra={"kind": self.inbound.kind})
                text = render("error")
        else:
            text = result
        if not text:
            return
        try:
            await self.env.wechat.send_customer_service_text(self.inbound.openid, cut(text))
        except WechatError as exc:
            # 45015: the user has not written within 48 h; nothing else can reach them from here
            log.warning("bot result could not be delivered", extra={"errcode": exc.errcode})


async def first_delivery(redis, ns: Namespace, app_id: str, verified: Verified, inbound: Inbound) -> bool:
    """Claim the request's nonce and the message's key; False when either was seen before."""
    # one round trip; marking a key of a delivery that is refused anyway harms nothing
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(ns.key("bot", "nonce", app_id, verified.timestamp, verified.nonce), b"1", nx=True,
                 ex=2 * protocol.MAX_SKEW_S)
        pipe.set(ns.key("bot", "seen", app_id, inbound.dedupe_key()), b"1", nx=True, ex=SEEN_TTL_S)
        nonce_new, message_new = await pipe.execute()
    return bool(nonce_new) and bool(message_new)


async def echo(request: web.Request) -> web.Response:
    settings = request.config_dict[settings_key]
    try:
        return web.Response(text=protocol.verify_echo(request.query, token=settings.oa_token))
    except ProtocolError as exc:
        log.warning("refused a WeChat URL check", extra={"status": exc.status, "reason": exc.reason})
        return exc.response()


async def receive(request: web.Request) -> web.Response:
    settings = request.config_dict[settings_key]
    keys = {"token": settings.oa_token, "aes_key": settings.oa_aes_key, "app_id": settings.oa_appid}
    try:
        protocol.check_timestamp(request.query.get("timestamp"))  # before reading anything
        body = await protocol.read_body(request)
        verified = protocol.verify_post(request.query, body, **keys)
        inbound = Inbound.of(verified.message)
    except ProtocolError as exc:
        log.warning("refused a request to /wechat", extra={"status": exc.status, "reason": exc.reason})
        return exc.response()

    def answer(text: str | None) -> web.Response:
        return web.Response(text=protocol.render_reply(text, verified, **keys),
                            content_type="application/xml" if text else "text/plain")

    if inbound.refused_text is not None:
        # before anything is looked up or stored with it, its delivery keys in Redis included: a
        # repeat gets the same polite answer and changes nothing either
        log.warning("refused a WeChat message's text", extra={"kind": outside_text.shown(inbound.kind),
                                                             "reason": inbound.refused_text})
        return answer(render("bad_text"))
    redis, ns = request.config_dict[redis_key], request.config_dict[redis_ns_key]
    try:
        if not await first_delivery(redis, ns, settings.oa_appid, verified, inbound):
            return web.Response(text="success", content_type="text/plain")
    except RedisError:
        log.exception("redis unavailable: a WeChat message is answered busy and not run")
        return answer(render("unavailable"))

    tasks = request.config_dict[bot_tasks_key]
    env = Env(settings=settings, redis=redis, ns=ns, wechat=request.config_dict[wechat_api_key],
              notify=request.config_dict[notify_apps_key], pay=request.config_dict.get(pay_api_key),
              msg_id=inbound.msg_id)
    job = Job(inbound, env)
    try:
        task = tasks.spawn(job.run(), name=f"bot:{inbound.dedupe_key()}")
    except RuntimeError:  # shutting down
        return answer(render("unavailable"))
    done, _ = await asyncio.wait({task}, timeout=REPLY_DEADLINE_S)
    if task not in done:
        job.late = True
        return answer(render("busy", what=None))
    result = task.result()
    if isinstance(result, Later):
        try:
            tasks.spawn(job.finish(result), name=f"bot-later:{inbound.dedupe_key()}")
        except RuntimeError:
            return answer(render("unavailable"))
        return answer(result.ack)
    return answer(result)


def create_app() -> web.Application:
    app = web.Application()
    for path in ("", "/"):
        app.router.add_get(path, echo)
        app.router.add_post(path, receive)
    app.router.add_get("/report/{name}", serve_report)
    return app
