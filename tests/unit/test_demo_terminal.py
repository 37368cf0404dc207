"""What a newcomer's terminal shows under ``pvsettle demo``: a short banner, readable log lines on
a terminal and JSON lines otherwise, no line per idle scheduler tick or per outbound request."""

from __future__ import annotations

import io
import json
import logging

import pytest

from server import logs
from server.cli.serve import demo_banner
from server.scheduler import tick_log_level
from webapp.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_banner_names_the_links_the_demo_users_and_how_to_stop():
    from sandbox.people import USERS

    settings = Settings(host="127.0.0.1", port=8080, database_url="sqlite://var/pvsettle.sqlite3")
    banner = demo_banner(settings, [(u.key, u.nickname, u.role.value if u.role else None) for u in USERS])
    for link in ("http://127.0.0.1:8080/sandbox/", "http://127.0.0.1:8080/healthz", "http://127.0.0.1:8080/metrics"):
        assert link in banner
    assert "阿明 (aming), 小红 (xiaohong), 老王 (laowang)" in banner
    assert "运维小周 (operator), 财务老陈 (admin)" in banner
    assert "Ctrl-C" in banner and "in-process emulation" in banner
    assert len(banner.splitlines()) <= 20  # short: it must still be on screen after the first log lines


def test_logs_are_text_on_a_terminal_and_json_otherwise():
    assert logs.wants_json(io.StringIO()) is True  # a pipe, a file, a log collector
    assert logs.wants_json(Terminal()) is False
    assert logs.wants_json(object()) is True  # no isatty at all: not a person


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("httpx").level
    yield
    root.handlers[:], level, httpx = saved
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(httpx)


@pytest.mark.parametrize("json_lines", [True, False])
def test_configure_picks_the_formatter_and_quiets_httpx(restore_logging, json_lines):
    logs.configure("INFO", json_lines=json_lines)
    [handler] = logging.getLogger().handlers
    assert isinstance(handler.formatter, logs.JsonFormatter if json_lines else logs.TextFormatter)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)  # one line per WeChat Pay request
    logs.configure("DEBUG", json_lines=json_lines)
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)


def test_a_text_line_shows_what_a_tick_did_and_a_json_line_everything():
    record = logging.LogRecord("pvsettle.scheduler", logging.INFO, __file__, 1, "scheduler tick", (), None)
    record.__dict__.update(forms_created=3, bills_issued=0, outages_opened=0, seconds=0.173)
    text = logs.TextFormatter().format(record)
    assert text.endswith("INFO    pvsettle.scheduler: scheduler tick  forms_created=3 seconds=0.173")
    entry = json.loads(logs.JsonFormatter().format(record))
    assert (entry["msg"], entry["forms_created"], entry["bills_issued"]) == ("scheduler tick", 3, 0)


def test_a_tick_that_did_nothing_logs_at_debug():
    assert tick_log_level({"forms_created": 0, "bills_issued": 0, "outage_alarms": 0}) == logging.DEBUG
    assert tick_log_level({"forms_created": 0, "bills_issued": 1}) == logging.INFO
