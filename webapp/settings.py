"""Settings from the environment (DESIGN.md "Settings").

Every setting has one name, ``PVSETTLE_<FIELD>``. ``pvsettle serve`` takes them as given and
refuses to start, naming every missing or malformed one; ``pvsettle demo`` keeps what is given and
generates the rest under ``./var/`` (:func:`demo_settings`), so a newcomer needs nothing.

Exceptions::

    SettingsError            one or more settings are missing or malformed (all are named)
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import json
import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "PVSETTLE_"
WECHAT_API_BASE = "https://api.weixin.qq.com"
PAY_API_BASE = "https://api.mch.weixin.qq.com"
DEMO_SCHEDULER_INTERVAL = 5  # [s] the demo's default; its portfolio is small
# Demo template ids (the fake WeChat accepts any): real ones come from the mini-program's
# subscribe-message console and are set with PVSETTLE_NOTIFY_TEMPLATES.
DEMO_NOTIFY_TEMPLATES = json.dumps({name: f"demo-{name.replace('_', '-')}" for name in (
    "form_sent", "auto_confirm_coming", "bill_issued", "payment_received", "refund_done", "arrears_reminder",
    "arrears_escalation", "low_balance", "outage_alarm", "fault_update", "prepaid_notice")})
#: ``PVSETTLE_NOTIFY_TEMPLATES=demo``: the demo ids, chosen on purpose (``serve`` needs the setting).
DEMO_TEMPLATES_WORD = "demo"
#: WeChat Pay's settings: ``serve`` runs without WeChat Pay (503 where it is needed) when none is
#: set, and refuses, naming the missing ones, when only some are.
PAY_FIELDS = ("pay_mchid", "pay_apiv3_key", "pay_private_key_path", "pay_cert_serial", "pay_public_key_path",
              "pay_public_key_id", "pay_notify_url")
#: Without these five WeChat Pay cannot work; the public key path and id go together (public-key
#: mode), and neither means platform-certificate mode.
PAY_REQUIRED = ("pay_mchid", "pay_apiv3_key", "pay_private_key_path", "pay_cert_serial", "pay_notify_url")


class SettingsError(Exception):
    """Settings are missing or malformed; ``problems`` names each of them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _secret(doc: str) -> dataclasses.Field:
    return dataclasses.field(default="", metadata={"secret": True, "doc": doc})


def _plain(default: object, doc: str) -> dataclasses.Field:
    return dataclasses.field(default=default, metadata={"secret": False, "doc": doc})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The process configuration; build it with :meth:`from_env` or :func:`demo_settings`."""

    database_url: str = _plain("sqlite://var/pvsettle.sqlite3", "tortoise URL: sqlite://PATH or postgres://USER@HOST:PORT/DB")
    redis_url: str = _plain("", "redis://HOST:PORT/DB; empty = in-process emulation (one process only)")
    redis_prefix: str = _plain("pvsettle:", "prefix of every Redis key, so several deployments or test runs share one Redis")
    redis_connect_timeout_ms: int = _plain(500, "time to open a Redis connection before Redis counts as down [ms]")
    redis_timeout_ms: int = _plain(500, "time for Redis to answer a command before it counts as down [ms]")
    redis_retry_ms: int = _plain(2000, "after Redis failed, a process serves without it this long before asking again [ms]")
    host: str = _plain("127.0.0.1", "address to listen on")
    port: int = _plain(8080, "port to listen on")
    log_level: str = _plain("INFO", "logging level")
    scheduler_interval: int = _plain(60, "seconds between scheduler ticks (reading cycles, auto-confirm, late fees); 0 = off")
    var_dir: str = _plain("var", "folder for the embedded database, uploads and demo keys")
    secret_key: str = _secret("signs session tokens and e-bill links (32+ characters)")
    oa_appid: str = _secret("official account AppID")
    oa_secret: str = _secret("official account AppSecret")
    oa_token: str = _secret("official account message Token")
    oa_aes_key: str = _secret("official account EncodingAESKey (43 characters)")
    mp_appid: str = _secret("mini-program AppID")
    mp_secret: str = _secret("mini-program AppSecret")
    pay_mchid: str = _secret("WeChat Pay merchant id")
    pay_apiv3_key: str = _secret("WeChat Pay APIv3 key (32 bytes)")
    pay_private_key_path: str = _secret("merchant API private key (PEM file)")
    pay_cert_serial: str = _secret("merchant API certificate serial number")
    pay_public_key_path: str = _secret("WeChat Pay public key (PEM file, public-key mode)")
    pay_public_key_id: str = _secret("WeChat Pay public key id (PUB_KEY_ID_…)")
    pay_notify_url: str = _secret("https URL WeChat Pay posts notifications to")
    public_url: str = _plain("", "origin of the links sent to users (e-bills, reports), e.g. https://pv.example.com; empty = http://HOST:PORT")
    wechat_api_base: str = _plain(WECHAT_API_BASE, "base URL of the WeChat API (a fake in tests and the sandbox)")
    pay_api_base: str = _plain(PAY_API_BASE, "base URL of WeChat Pay (a fake in tests and the sandbox)")
    # Ministry of Ecology and Environment, 环办气候函〔2023〕43号: national grid average emission
    # factor 0.5703 tCO2/MWh, the figure China's emission reporting uses for 2023-2025
    co2_kg_per_kwh: str = _plain("0.5703", "CO2 avoided per kWh of PV generation [kg/kWh], shown to owners")
    # China Electricity Council annual reports: thermal power's average coal use per kWh supplied
    # has been about 300 g of standard coal since 2021 (300.7 g in 2022)
    coal_kg_per_kwh: str = _plain("0.300", "standard coal saved per kWh of PV generation [kg/kWh]")
    # readings whose energy no plant could make or site could draw are flagged at ingest and hold
    # their form for staff (settlement.readings.ingest "Plausibility")
    reading_energy_margin: str = _plain("1.2", "a reading is flagged when its energy since the previous one exceeds capacity × hours × this margin [-]")
    reading_site_kw_per_kwp: str = _plain("10", "what a site may draw from the grid when its plant has no connection capacity on file, as a multiple of the PV capacity [kW/kWp]")
    session_ttl: int = _plain(86400, "lifetime of a mini-program session token [s]")
    api_rate_limit: int = _plain(120, "mini-program API requests per user per minute; more get 429")
    pay_refusal_rate: int = _plain(20, "refused /pay/notify deliveries (signature not holding) kept per source per minute; more are answered 429 and not kept")
    pay_refusals_kept: int = _plain(10000, "refused /pay/notify deliveries kept at most (headers, body size, SHA-256 and first 2 KiB); the oldest are deleted first")
    trusted_proxies: str = _plain("", "comma-separated addresses or networks of the reverse proxies in front of this server (e.g. 127.0.0.1,10.0.0.0/8), whose X-Forwarded-For names the client; empty = the peer is the client")
    photo_quota_mb: int = _plain(200, "room for each owner's photos (disputes and fault reports, as stored) [MB]; more is 409")
    notify_templates: str = _plain(DEMO_NOTIFY_TEMPLATES, "JSON object: notification template name → WeChat template id (templates/notify/*.txt); `demo` = demo ids for the fake WeChat (the demo's default; serve needs it set)")
    notify_rate: int = _plain(20, "notifications sent per second per template at most (all processes together)")
    dispatcher_interval: str = _plain("1", "seconds between outbox dispatcher polls when idle; 0 = no dispatcher in this process")
    repeated_trips: int = _plain(3, "trips (outage events) of one plant within PVSETTLE_REPEATED_TRIPS_DAYS that flag it as tripping repeatedly, with one staff alarm per episode")
    repeated_trips_days: int = _plain(7, "the window of PVSETTLE_REPEATED_TRIPS [days]")
    mqtt_url: str = _plain("", "MQTT broker the data loggers publish telemetry to: mqtt://[USER:PASSWORD@]HOST[:PORT][/TOPIC/PREFIX] (mqtts:// for TLS); empty = no MQTT subscriber")

    @classmethod
    def env_name(cls, field: str) -> str:
        return PREFIX + field.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, require_secrets: bool = True) -> Settings:
        """Read and validate every setting; raise :class:`SettingsError` naming all problems."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        problems: list[str] = []
        given = {f.name for f in dataclasses.fields(cls) if environ.get(cls.env_name(f.name))}
        pay_given = given & set(PAY_FIELDS)
        for f in dataclasses.fields(cls):
            raw = environ.get(cls.env_name(f.name))
            if raw is None or raw == "":
                if f.metadata["secret"] and require_secrets and _needed(f.name, pay_given):
                    problems.append(f"{cls.env_name(f.name)} is missing ({f.metadata['doc']})")
                elif f.name == "notify_templates" and require_secrets:
                    # the demo ids only work with the fake WeChat: a real deployment would send
                    # nothing and log every notification as refused
                    problems.append(f"{cls.env_name(f.name)} is missing (the WeChat template ids of the "
                                    f"notifications, a JSON object; {DEMO_TEMPLATES_WORD!r} = the demo ids, "
                                    f"which only the fake WeChat accepts)")
                continue
            if f.name == "notify_templates" and raw.strip() == DEMO_TEMPLATES_WORD:
                raw = DEMO_NOTIFY_TEMPLATES
            if f.type == "int":
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    problems.append(f"{cls.env_name(f.name)}={raw!r} is not a whole number")
            else:
                values[f.name] = raw
        settings = cls(**values)
        problems += settings._check(require_secrets)
        if problems:
            raise SettingsError(problems)
        return settings

    def _check(self, require_secrets: bool) -> list[str]:
        problems = []
        n = self.env_name
        scheme = urlsplit(self.database_url).scheme
        if scheme not in ("sqlite", "postgres", "asyncpg"):
            problems.append(f"{n('database_url')} must be sqlite://… or postgres://…, not {scheme or 'empty'}://")
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append(f"{n('redis_url')} must be redis://… (or empty for the in-process emulation)")
        for name in ("redis_connect_timeout_ms", "redis_timeout_ms", "redis_retry_ms"):
            if getattr(self, name) < 1:
                problems.append(f"{n(name)} must be ≥ 1 ms")
        if self.scheduler_interval < 0:
            problems.append(f"{n('scheduler_interval')} must be ≥ 0")
        if self.mqtt_url and (urlsplit(self.mqtt_url).scheme not in ("mqtt", "mqtts") or not urlsplit(self.mqtt_url).hostname):
            problems.append(f"{n('mqtt_url')} must be mqtt://HOST[:PORT][/PREFIX] or mqtts://… (or empty for no MQTT)")
        if not 0 <= self.port <= 65535:
            problems.append(f"{n('port')}={self.port} is not a TCP port")
        for name in ("co2_kg_per_kwh", "coal_kg_per_kwh"):
            if not _is_factor(getattr(self, name)):
                problems.append(f"{n(name)}={getattr(self, name)!r} must be a decimal number ≥ 0")
        for name in ("reading_energy_margin", "reading_site_kw_per_kwp"):
            if not _is_factor(getattr(self, name)) or not float(getattr(self, name)) > 0:
                problems.append(f"{n(name)}={getattr(self, name)!r} must be a decimal number > 0")
        try:
            templates = json.loads(self.notify_templates)
            if not isinstance(templates, dict) or not all(isinstance(v, str) and v for v in templates.values()):
                raise ValueError
        except ValueError:
            problems.append(f"{n('notify_templates')} must be a JSON object of template names to template ids")
        if self.notify_rate < 1:
            problems.append(f"{n('notify_rate')} must be ≥ 1")
        if not _is_factor(self.dispatcher_interval):
            problems.append(f"{n('dispatcher_interval')}={self.dispatcher_interval!r} must be a number of seconds ≥ 0")
        if self.repeated_trips < 2 or self.repeated_trips_days < 1:
            problems.append(f"{n('repeated_trips')} must be ≥ 2 trips and {n('repeated_trips_days')} ≥ 1 day")
        if self.photo_quota_mb < 1:
            problems.append(f"{n('photo_quota_mb')} must be ≥ 1")
        if self.session_ttl < 60 or self.api_rate_limit < 1:
            problems.append(f"{n('session_ttl')} must be ≥ 60 s and {n('api_rate_limit')} ≥ 1")
        if self.pay_refusal_rate < 1 or self.pay_refusals_kept < 1:
            problems.append(f"{n('pay_refusal_rate')} and {n('pay_refusals_kept')} must be ≥ 1")
        try:
            self.trusted_proxy_networks
        except ValueError:
            problems.append(f"{n('trusted_proxies')}={self.trusted_proxies!r} must be addresses or networks "
                            f"(CIDR), separated by commas")
        if not require_secrets:
            return problems
        if self.secret_key and len(self.secret_key) < 32:
            problems.append(f"{n('secret_key')} must be at least 32 characters")
        if self.oa_aes_key and len(self.oa_aes_key) != 43:
            problems.append(f"{n('oa_aes_key')} must be 43 characters (WeChat's EncodingAESKey)")
        if self.pay_apiv3_key and len(self.pay_apiv3_key.encode()) != 32:
            problems.append(f"{n('pay_apiv3_key')} must be 32 bytes")
        for name in ("pay_private_key_path", "pay_public_key_path"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                problems.append(f"{n(name)}={path!r} is not a readable file")
        return problems

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies` parsed; ``ValueError`` when one is no address or network."""
        return _networks(self.trusted_proxies)

    @property
    def uses_postgres(self) -> bool:
        return urlsplit(self.database_url).scheme in ("postgres", "asyncpg")

    def public_summary(self) -> dict[str, object]:
        """Every setting with secrets masked, for start-up logs."""
        return {
            f.name: ("***" if f.metadata["secret"] and getattr(self, f.name) else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }


@functools.cache
def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _needed(name: str, pay_given: set[str]) -> bool:
    """Whether a missing secret is a problem: WeChat Pay's only when some of them are given."""
    if name not in PAY_FIELDS:
        return True
    if not pay_given:
        return False
    if name in PAY_REQUIRED:
        return True
    return bool(pay_given & {"pay_public_key_path", "pay_public_key_id"})  # one without the other


def _is_factor(text: str) -> bool:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    return value.is_finite() and value >= 0


def energy_limits(settings: Settings):
    """The readings service's :class:`settlement.readings.ingest.EnergyLimits` from the settings."""
    from decimal import Decimal

    from settlement.readings.ingest import EnergyLimits

    return EnergyLimits(margin=Decimal(settings.reading_energy_margin),
                        site_kw_per_kwp=Decimal(settings.reading_site_kw_per_kwp))


def setting_docs() -> list[tuple[str, str, object]]:
    """(environment name, description, default) for each setting, for the README and --help."""
    return [
        (Settings.env_name(f.name), f.metadata["doc"], None if f.metadata["secret"] else f.default)
        for f in dataclasses.fields(Settings)
    ]


def demo_settings(environ: Mapping[str, str] | None = None, var_dir: str | None = None) -> Settings:
    """Settings for ``pvsettle demo``: what the environment gives, the rest generated once.

    Generated secrets are kept in ``<var>/demo-secrets.json`` and the merchant's demo RSA keys
    next to it, so a restarted demo keeps its sessions and signatures valid.
    """
    environ = dict(os.environ if environ is None else environ)
    var = Path(var_dir or environ.get(Settings.env_name("var_dir")) or "var")
    var.mkdir(parents=True, exist_ok=True)
    store = var / "demo-secrets.json"
    generated: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
    if not generated:
        generated = _generate_demo_secrets(var)
        store.write_text(json.dumps(generated, indent=2))
        store.chmod(0o600)
    merged = {Settings.env_name(k): v for k, v in generated.items()}
    merged[Settings.env_name("var_dir")] = str(var)
    merged[Settings.env_name("database_url")] = f"sqlite://{var / 'pvsettle.sqlite3'}"
    # a confirmed form becomes a bill on the next tick: seconds, not a minute, for someone trying it out
    merged[Settings.env_name("scheduler_interval")] = str(DEMO_SCHEDULER_INTERVAL)
    merged[Settings.env_name("notify_templates")] = DEMO_TEMPLATES_WORD  # the sandbox's fake WeChat takes them
    merged.update({k: v for k, v in environ.items() if k.startswith(PREFIX) and v})
    return Settings.from_env(merged)


def _generate_demo_secrets(var: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pem_key(name: str) -> tuple[str, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = var / f"{name}-private.pem"
        public = var / f"{name}-public.pem"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
        return str(private), str(public)

    alnum = string.ascii_letters + string.digits
    merchant_private, _ = pem_key("demo-merchant")
    _, platform_public = pem_key("demo-wechatpay")
    return {
        "secret_key": secrets.token_urlsafe(48),
        "oa_appid": "wxdemo" + secrets.token_hex(5),
        "oa_secret": secrets.token_hex(16),
        "oa_token": secrets.token_urlsafe(16),
        # EncodingAESKey is 43 characters of base64 for a 32-byte key
        "oa_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
        "mp_appid": "wxdemo" + secrets.token_hex(5),
        "mp_secret": secrets.token_hex(16),
        "pay_mchid": "1900" + "".join(secrets.choice(string.digits) for _ in range(6)),
        "pay_apiv3_key": "".join(secrets.choice(alnum) for _ in range(32)),
        "pay_private_key_path": merchant_private,
        "pay_cert_serial": secrets.token_hex(20).upper(),
        "pay_public_key_path": platform_public,
        "pay_public_key_id": "PUB_KEY_ID_" + secrets.token_hex(12).upper(),
        "pay_notify_url": "http://127.0.0.1:8080/pay/notify",
    }
