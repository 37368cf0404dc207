"""The event loop every pvsettle process runs on: uvloop's where it is installed.

A request to the mini-program API is three socket round trips (client, Redis, PostgreSQL) and a
notification sent is two (WeChat, the database); with uvloop's libuv transports the loop's own
share of each roughly halves (``pvsettle bench api``: 5.5× the hello-world's cost per request
instead of 11×, measured in one run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop (Linux, macOS), asyncio's own where uvloop does not exist (Windows)."""
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop there, and nothing else changes
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
