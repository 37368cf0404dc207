"""The configuration file: a good one read whole, a bad one refused with the line it is about."""

from __future__ import annotations

import pytest

from gateway.config import FORM_REGISTERS, load, parse
from gateway.errors import ConfigError

ENV = {"PVSETTLE_GATEWAY_KEY": "k" * 43}

GOOD = """\
[gateway]
server = "https://pvsettle.example.com/"
queue = "/var/lib/pvsettle-gateway/queue.sqlite3"

[[link]]
name = "roof-a"
protocol = "dlt645"
tcp = "10.0.0.20:8899"

[[link]]
name = "inv"
protocol = "modbus"
tcp = "10.0.0.21:502"

[[meter]]
serial = "M-1"
link = "roof-a"
address = "000012345678"

[[meter]]
serial = "M-2"
link = "roof-a"
address = "000012345679"
registers = ["00010000", "00020000"]
interval_s = 900

[[inverter]]
serial = "INV-1"
link = "inv"
unit = 2
map = "acme"

[register_map.acme]
energy = { address = 30000, type = "uint32", word_order = "little", scale = 100 }
"""


def test_a_good_file_is_read_whole():
    config = parse(GOOD, environ=ENV)
    assert config.server == "https://pvsettle.example.com" and config.key == "k" * 43
    assert [m.serial for m in config.meters] == ["M-1", "M-2"]
    assert config.meters[0].registers == FORM_REGISTERS and config.meters[1].interval_s == 900
    assert config.inverters[0].unit == 2 and config.register_maps["acme"].energy.scale == 100
    assert config.links["roof-a"].port == 8899


@pytest.mark.parametrize("old, new, says", [
    ('tcp = "10.0.0.20:8899"', 'tcp = "10.0.0.20"', "HOST:PORT"),
    ('address = "000012345679"', 'address = "12345"', "12 digits"),
    ('address = "000012345679"', 'address = "000012345678"', "two meters on link 'roof-a'"),
    ('link = "inv"', 'link = "roof-a"', "needs a modbus link"),
    ('registers = ["00010000", "00020000"]', 'registers = ["00030000"]', "registers"),
    ('interval_s = 900', 'interval_s = -1', "interval_s"),
    ('map = "acme"', 'map = "nope"', "register_map"),
    ('unit = 2', 'unit = 300', "unit"),
    ('serial = "M-2"', 'serial = "M-1"', "configured twice"),
    ('serial = "M-2"', 'seriall = "M-2"', "unknown key 'seriall'"),
    ('type = "uint32"', 'type = "uint33"', "type"),
    ('protocol = "modbus"', 'protocol = "bacnet"', "protocol"),
    ('server = "https://pvsettle.example.com/"', 'server = "ftp://x"', "http"),
    ('interval_s = 900', 'interval_s = 9 00', "not valid TOML"),
])
def test_a_bad_line_is_refused_by_its_number(old, new, says):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    line = GOOD[:GOOD.index(old)].count("\n") + 1  # the line changed
    with pytest.raises(ConfigError) as refused:
        parse(text, path="site.toml", environ=ENV)
    assert refused.value.line == line, str(refused.value)
    assert says in str(refused.value) and str(refused.value).startswith(f"site.toml:{line}: ")


def test_no_key_and_discover_on_a_shared_bus_are_refused():
    with pytest.raises(ConfigError, match="no collector key"):
        parse(GOOD, environ={})
    text = GOOD.replace('address = "000012345678"', 'address = "discover"')
    with pytest.raises(ConfigError, match="alone on its link") as refused:
        parse(text, environ=ENV)
    assert refused.value.line == text.splitlines().index('address = "discover"') + 1


def test_a_key_file_is_read_and_a_missing_file_named(tmp_path):
    key = tmp_path / "gateway.key"
    key.write_text("secret-key-123\n")
    config = parse(GOOD.replace("[gateway]\n", f'[gateway]\nkey_file = "{key}"\n'))
    assert config.key == "secret-key-123"
    with pytest.raises(ConfigError, match="cannot read the key file"):
        parse(GOOD.replace("[gateway]\n", f'[gateway]\nkey_file = "{tmp_path / "nope"}"\n'))
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load(tmp_path / "missing.toml")


def test_a_serial_link_needs_its_extra():
    import importlib.util

    text = GOOD.replace('tcp = "10.0.0.20:8899"', 'serial = "/dev/ttyUSB0"\nbaudrate = 2400\nparity = "E"')
    if importlib.util.find_spec("serial_asyncio") is None:
        with pytest.raises(ConfigError, match=r"pvsettle\[serial\]") as refused:
            parse(text, environ=ENV)
        assert refused.value.line == GOOD[:GOOD.index("tcp = \"10.0.0.20")].count("\n") + 1
    else:
        assert parse(text, environ=ENV).links["roof-a"].serial_port == "/dev/ttyUSB0"
