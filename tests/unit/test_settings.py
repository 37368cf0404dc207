import dataclasses
import subprocess
import sys

import pytest

from webapp.settings import Settings, SettingsError, demo_settings

SECRETS = [f.name for f in dataclasses.fields(Settings) if f.metadata["secret"]]


PAY = [name for name in SECRETS if name.startswith("pay_")]
NOT_PAY = [name for name in SECRETS if not name.startswith("pay_")]


def test_every_missing_secret_is_named_and_the_templates_but_not_an_absent_wechat_pay():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({})
    named = " ".join(err.value.problems)
    for name in NOT_PAY:
        assert Settings.env_name(name) in named
    assert "PVSETTLE_NOTIFY_TEMPLATES is missing" in named
    assert not any(Settings.env_name(name) in named for name in PAY)  # none given: no WeChat Pay, 503
    assert len(err.value.problems) == len(NOT_PAY) + 1
    assert len(PAY) == 7


def _complete_but_pay(tmp_path) -> dict[str, str]:
    env = {Settings.env_name(name): "x" for name in NOT_PAY}
    env.update(PVSETTLE_SECRET_KEY="s" * 40, PVSETTLE_OA_AES_KEY="a" * 43, PVSETTLE_NOTIFY_TEMPLATES="demo")
    return env


def test_serve_settings_without_any_wechat_pay_setting_are_complete(tmp_path):
    settings = Settings.from_env(_complete_but_pay(tmp_path))
    assert settings.pay_mchid == "" and settings.pay_notify_url == ""
    from server.pay import missing_settings
    assert missing_settings(settings)  # the pay context then starts without WeChat Pay


def test_some_wechat_pay_settings_name_the_missing_ones(tmp_path):
    env = {**_complete_but_pay(tmp_path), "PVSETTLE_PAY_MCHID": "1900000001"}
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    named = " ".join(err.value.problems)
    for name in ("pay_apiv3_key", "pay_private_key_path", "pay_cert_serial", "pay_notify_url"):
        assert Settings.env_name(name) in named
    # platform-certificate mode: the public key's path and id are not needed …
    assert "PVSETTLE_PAY_PUBLIC_KEY_ID" not in named and "PVSETTLE_PAY_MCHID" not in named
    # … but one of them without the other is
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**env, "PVSETTLE_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1"})
    assert "PVSETTLE_PAY_PUBLIC_KEY_PATH is missing" in " ".join(err.value.problems)


def test_notify_templates_demo_word_and_json_are_taken(tmp_path):
    import json

    from webapp.settings import DEMO_NOTIFY_TEMPLATES

    assert Settings.from_env(_complete_but_pay(tmp_path)).notify_templates == DEMO_NOTIFY_TEMPLATES
    given = json.dumps({"form_sent": "tmpl-real-1"})
    env = {**_complete_but_pay(tmp_path), "PVSETTLE_NOTIFY_TEMPLATES": given}
    assert Settings.from_env(env).notify_templates == given
    # the demo needs nothing: it keeps its demo ids
    assert Settings.from_env({}, require_secrets=False).notify_templates == DEMO_NOTIFY_TEMPLATES


def test_malformed_values_are_named_with_the_missing_ones():
    env = {"PVSETTLE_PORT": "eighty", "PVSETTLE_DATABASE_URL": "mysql://x/y", "PVSETTLE_OA_AES_KEY": "short"}
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    text = "\n".join(err.value.problems)
    assert "PVSETTLE_PORT='eighty' is not a whole number" in text
    assert "PVSETTLE_DATABASE_URL must be sqlite://" in text
    assert "PVSETTLE_OA_AES_KEY must be 43 characters" in text
    assert "PVSETTLE_SECRET_KEY is missing" in text


def test_migrate_needs_no_secrets():
    settings = Settings.from_env({"PVSETTLE_DATABASE_URL": "postgres://u@h:5432/d"}, require_secrets=False)
    assert settings.uses_postgres


def test_demo_generates_what_is_missing_and_keeps_it(tmp_path):
    first = demo_settings({"PVSETTLE_PORT": "18080"}, var_dir=str(tmp_path / "var"))
    again = demo_settings({}, var_dir=str(tmp_path / "var"))
    assert first.port == 18080 and again.port == 8080  # given settings are used, not stored
    assert first.secret_key == again.secret_key and len(first.secret_key) >= 32
    assert len(first.oa_aes_key) == 43 and len(first.pay_apiv3_key) == 32
    assert first.database_url == f"sqlite://{tmp_path / 'var' / 'pvsettle.sqlite3'}"
    assert (tmp_path / "var" / "demo-secrets.json").stat().st_mode & 0o077 == 0


def test_demo_uses_a_secret_given_in_the_environment(tmp_path):
    given = "g" * 40
    assert demo_settings({"PVSETTLE_SECRET_KEY": given}, var_dir=str(tmp_path)).secret_key == given


def test_public_summary_masks_secrets():
    summary = Settings(secret_key="s" * 40, oa_secret="hush").public_summary()
    assert summary["secret_key"] == "***" and summary["oa_secret"] == "***"
    assert summary["port"] == 8080


def test_serve_without_settings_exits_naming_them_without_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for name in NOT_PAY:
        assert Settings.env_name(name) in proc.stderr
    assert "PVSETTLE_NOTIFY_TEMPLATES" in proc.stderr


def test_the_repeated_trip_setting_defaults_to_3_in_7_days_and_refuses_nonsense():
    import datetime as dt

    from settlement.telemetry.trips import TripRule

    assert TripRule.from_settings(Settings.from_env({}, require_secrets=False)) == TripRule(3, dt.timedelta(days=7))
    given = Settings.from_env({"PVSETTLE_REPEATED_TRIPS": "4", "PVSETTLE_REPEATED_TRIPS_DAYS": "2"},
                              require_secrets=False)
    assert TripRule.from_settings(given) == TripRule(4, dt.timedelta(days=2))
    for env in ({"PVSETTLE_REPEATED_TRIPS": "1"}, {"PVSETTLE_REPEATED_TRIPS_DAYS": "0"}):
        with pytest.raises(SettingsError) as err:
            Settings.from_env(env, require_secrets=False)
        assert "PVSETTLE_REPEATED_TRIPS must be ≥ 2 trips" in str(err.value)
