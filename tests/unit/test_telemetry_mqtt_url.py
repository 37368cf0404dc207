"""The MQTT broker setting: PVSETTLE_MQTT_URL and how the subscriber reads it."""

from __future__ import annotations

import pytest

from webapp.settings import Settings, SettingsError
from server.telemetry_mqtt import BrokerAddress


def test_broker_urls_are_read_with_their_defaults():
    plain = BrokerAddress.from_url("mqtt://127.0.0.1")
    assert (plain.hostname, plain.port, plain.tls, plain.prefix, plain.username) == (
        "127.0.0.1", 1883, False, "pvsettle/telemetry", None)
    full = BrokerAddress.from_url("mqtts://pv%40ops:s3cr%2Ft@broker.example.com/site-a/telemetry/")
    assert (full.hostname, full.port, full.tls, full.prefix, full.username, full.password) == (
        "broker.example.com", 8883, True, "site-a/telemetry", "pv@ops", "s3cr/t")


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://broker/a/+/b", "mqtt://broker/a//b"])
def test_malformed_broker_urls_are_refused(url):
    with pytest.raises(ValueError):
        BrokerAddress.from_url(url)


def test_the_setting_is_optional_and_checked():
    assert Settings.from_env({}, require_secrets=False).mqtt_url == ""
    assert Settings.from_env({"PVSETTLE_MQTT_URL": "mqtt://127.0.0.1:1883"}, require_secrets=False).mqtt_url
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"PVSETTLE_MQTT_URL": "tcp://127.0.0.1:1883"}, require_secrets=False)
    assert "PVSETTLE_MQTT_URL" in str(refused.value)
