"""Which source a /pay/notify delivery counts against: the peer, or behind trusted proxies the
client they name in X-Forwarded-For (read from the right); IPv6 by its /64."""

from __future__ import annotations

import pytest

from webapp.client_address import UNKNOWN, source_of
from webapp.settings import Settings, SettingsError

PROXIES = Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8, fd00::/8").trusted_proxy_networks

CASES = {
    "no proxies: the peer": ("198.51.100.9", "203.0.113.7", (), "198.51.100.9"),
    "a peer that is no proxy: its own address, whatever it forwards": ("198.51.100.9", "203.0.113.7", PROXIES,
                                                                        "198.51.100.9"),
    "one trusted proxy": ("127.0.0.1", "203.0.113.7", PROXIES, "203.0.113.7"),
    "what the client wrote left of the proxy's own entry": ("127.0.0.1", "1.1.1.1, 2.2.2.2, 203.0.113.7", PROXIES,
                                                             "203.0.113.7"),
    "a chain of trusted proxies": ("127.0.0.1", "203.0.113.7, 10.0.0.5, 10.9.9.9", PROXIES, "203.0.113.7"),
    "every hop trusted: the leftmost": ("127.0.0.1", "10.0.0.7, 10.0.0.5", PROXIES, "10.0.0.7"),
    "garbage where the proxy wrote: the proxy": ("127.0.0.1", "203.0.113.7, <script>", PROXIES, "127.0.0.1"),
    "a trusted proxy without the header": ("127.0.0.1", None, PROXIES, "127.0.0.1"),
    "a port after the address": ("127.0.0.1", "203.0.113.7:51234", PROXIES, "203.0.113.7"),
    "IPv6 by its /64": ("2001:db8:1:2:3:4:5:6", None, (), "2001:db8:1:2::/64"),
    "IPv6 in brackets with a port": ("127.0.0.1", "[2001:db8:1:2::9]:443", PROXIES, "2001:db8:1:2::/64"),
    "IPv6 proxy": ("fd00::1", "203.0.113.7", PROXIES, "203.0.113.7"),
    "IPv4 mapped into IPv6": ("::ffff:198.51.100.9", None, (), "198.51.100.9"),
    "no peer address (unix socket)": (None, "203.0.113.7", PROXIES, UNKNOWN),
    "a header longer than any address": ("127.0.0.1", "9" * 5000, PROXIES, "127.0.0.1"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_source_of(case):
    remote, forwarded_for, proxies, source = CASES[case]
    assert source_of(remote, forwarded_for, proxies) == source


def test_trusted_proxies_are_checked_when_settings_are_read():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"PVSETTLE_TRUSTED_PROXIES": "10.0.0.0/8, nginx", "PVSETTLE_PAY_REFUSAL_RATE": "0"},
                          require_secrets=False)
    problems = raised.value.problems
    assert any("PVSETTLE_TRUSTED_PROXIES" in p for p in problems)
    assert any("PVSETTLE_PAY_REFUSAL_RATE" in p for p in problems)
