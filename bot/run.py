"""Running one command for one sender: the role check, the handler, and every refusal as a reply.

A command the sender may not give is answered with the reason (not staff, or the role it needs)
before its handler runs, so it changes nothing; that check comes before the arguments are looked
at too, so nobody learns a staff command's usage by getting it wrong. Domain refusals (no such plant, a form already
confirmed, …) and malformed arguments become replies too; only unexpected errors escape, for the
caller to log and answer with an apology.
"""

from __future__ import annotations

from bot import commands, owner, staff
from bot.commands import Command, Malformed, Spec, UnknownCommand
from bot.context import Caller, Env, Later
from bot.replies import render
from settlement.errors import DomainError


def refusal(exc: DomainError) -> str:
    return render("refused", code=exc.code, params=exc.params)


def malformed(exc: Malformed) -> str:
    return render("malformed", name=exc.spec.name, problem=exc.problem)


def not_allowed(spec: Spec, caller: Caller) -> str | None:
    """The refusal of a staff command the caller may not give (not staff, or too low a role)."""
    if spec.role is None:
        return None
    if caller.role is None:
        return render("not_staff", word=spec.words[0])
    if not commands.may(caller.role, spec.role):
        return render("role_required", word=spec.words[0], needs=spec.role.value, has=caller.role.value)
    return None


async def run_command(cmd: Command, caller: Caller, env: Env) -> str | Later:
    """The reply to a parsed command, or the work to finish later for a background command."""
    spec = cmd.spec
    refused = not_allowed(spec, caller)
    if refused is not None:
        return refused
    handler = (staff.HANDLERS if spec.role is not None else owner.HANDLERS)[spec.name]
    try:
        return await handler(cmd, caller, env)
    except Malformed as exc:
        return malformed(exc)
    except DomainError as exc:
        return refusal(exc)


async def run_text(content: str, caller: Caller, env: Env) -> str | Later:
    """The reply to a text message."""
    try:
        cmd = commands.parse(content)
    except UnknownCommand as exc:
        return render("unknown", word=exc.word, staff=caller.role is not None)
    except Malformed as exc:
        return not_allowed(exc.spec, caller) or malformed(exc)
    return await run_command(cmd, caller, env)


async def finish(later: Later) -> str | None:
    """The text of background work once done; refusals become text as they do in the foreground."""
    try:
        return await later.run()
    except Malformed as exc:
        return malformed(exc)
    except DomainError as exc:
        return refusal(exc)
