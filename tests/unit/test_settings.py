import dataclasses
import subprocess
import sys

import pytest

from server.settings import Settings, SettingsError, demo_settings

SECRETS = [f.name for f in dataclasses.fields(Settings) if f.metadata["secret"]]


def test_every_missing_secret_is_named():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({})
    named = " ".join(err.value.problems)
    for name in SECRETS:
        assert Settings.env_name(name) in named
    assert len(err.value.problems) == len(SECRETS)


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
    for name in SECRETS:
        assert Settings.env_name(name) in proc.stderr


def test_the_repeated_trip_setting_defaults_to_3_in_7_days_and_refuses_nonsense():
    import datetime as dt

    from settlement.trips import TripRule

    assert TripRule.from_settings(Settings.from_env({}, require_secrets=False)) == TripRule(3, dt.timedelta(days=7))
    given = Settings.from_env({"PVSETTLE_REPEATED_TRIPS": "4", "PVSETTLE_REPEATED_TRIPS_DAYS": "2"},
                              require_secrets=False)
    assert TripRule.from_settings(given) == TripRule(4, dt.timedelta(days=2))
    for env in ({"PVSETTLE_REPEATED_TRIPS": "1"}, {"PVSETTLE_REPEATED_TRIPS_DAYS": "0"}):
        with pytest.raises(SettingsError) as err:
            Settings.from_env(env, require_secrets=False)
        assert "PVSETTLE_REPEATED_TRIPS must be ≥ 2 trips" in str(err.value)
