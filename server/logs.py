"""Structured JSON logs, one object per line, each carrying the request id of its request; or
readable text lines for a person at a terminal."""

from __future__ import annotations

import json
import logging
import sys
import time

from settlement.context import request_id_var

# LogRecord attributes that are not "extra" fields passed by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One readable line for a person at a terminal: local time, level, logger, message, then the
    caller's extra fields as ``key=value`` (those that are 0, empty or None are left out, so a
    scheduler tick shows what it did, not the twenty things it did not), then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = [f"{key}={value}" for key, value in vars(record).items()
                  if key not in _STANDARD and key != "request_id" and value not in (0, None, "", [], {})]
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def wants_json(stream) -> bool:
    """JSON lines unless a person reads ``stream`` at a terminal (``pvsettle demo`` asks this):
    log collectors get objects, a newcomer gets lines they can read."""
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def configure(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Send every log line to stderr, as JSON (servers) or plain text (interactive commands)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # tortoise logs every query at DEBUG and each connect/close at INFO; only its warnings matter
    logging.getLogger("tortoise").setLevel(max(logging.WARNING, root.level))
    # httpx (under wechatpayv3) logs every request at INFO without our request id; the calls that
    # matter are logged by our own code. At DEBUG they show.
    logging.getLogger("httpx").setLevel(logging.WARNING if root.level >= logging.INFO else root.level)
