"""The WeChat Pay port on wechatpayv3's ``AsyncWeChatPay`` (its httpx client, opened once).

wechatpayv3 signs requests (``Authorization: WECHATPAY2-SHA256-RSA2048 …``), verifies the
signatures of WeChat Pay's answers and, in platform-certificate mode, downloads and decrypts the
platform certificates. Two things are done here rather than by it:

* the base URL: the library has the host ``https://api.mch.weixin.qq.com`` built in, kept in
  ``AsyncCore._gate_way``, the one attribute its requests and bill downloads read; it is set from
  ``PVSETTLE_PAY_API_BASE`` so tests and the sandbox reach a local fake;
* notification checks: its ``callback`` answers only "None" whatever went wrong, and does not look
  at the timestamp. Here each refusal has its own exception (the staff see why), the timestamp is
  held to ±5 minutes, and in certificate mode an unknown serial refreshes the certificates at most
  once a minute (a flood of forged serials must not become a flood of calls to WeChat Pay), never
  losing the ones we had when the refresh fails. The cryptography is the library's own
  (``rsa_verify``, ``aes_decrypt``).

Both need attributes wechatpayv3 keeps private (it has no public API for them); every use of one is
in :class:`_LibraryInternals`.
"""

from __future__ import annotations

import binascii
import datetime as dt
import gzip
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.async_.type import WeChatPayType
from wechatpayv3.utils import aes_decrypt, rsa_verify

from settlement.ports.pay import (
    MAX_SKEW,
    SIGNATURE_TYPE,
    BadSignature,
    Notification,
    OrderStatus,
    PayRejected,
    PayUnavailable,
    RefundStatus,
    StaleNotification,
    UndecryptableResource,
    UnknownSerial,
    format_time,
)
from settlement.clock import UTC, utc_now

log = logging.getLogger("pvsettle.pay")
CERT_REFRESH_INTERVAL = 60.0  # [s] between certificate downloads caused by unknown serials
_BAD_RESPONSE = "failed to verify the signature"  # wechatpayv3's message for a forged answer
T = TypeVar("T")


class _LibraryInternals:
    """What this adapter needs of wechatpayv3 (2.0.x) that it keeps private, every use in one place.

    ``AsyncWeChatPay`` exposes requests, signing and decryption, but not: the API host (its core's
    ``_gate_way``, fixed to WeChat Pay's), the platform public key and certificates it verifies
    answers with (``_public_key``, ``_certificates``), a way to download the certificates again
    (``_update_certificates``), nor its httpx client (``_client``), which ``__aenter__`` opens
    before fetching the certificates and leaves open when that fails. Upgrading wechatpayv3
    means checking these names here, and nowhere else.
    """

    def __init__(self, client: AsyncWeChatPay):
        self._core = client._core

    def set_api_base(self, api_base: str) -> None:
        """Send every request and bill download to ``api_base`` instead of WeChat Pay's host."""
        self._core._gate_way = api_base.rstrip("/")

    @property
    def public_key(self):
        """The platform public key (public-key mode), or None in certificate mode."""
        return self._core._public_key

    def certificates(self) -> list:
        """The platform certificates wechatpayv3 verifies with (certificate mode), as it holds them."""
        return list(self._core._certificates)

    async def refresh_certificates(self) -> None:
        """Download the platform certificates again, keeping those we had if none arrive.

        wechatpayv3 empties its list before it asks, and leaves it empty when the download fails
        or brings nothing valid.
        """
        kept = list(self._core._certificates)
        try:
            await self._core._update_certificates()
        except httpx.HTTPError:
            log.warning("could not refresh the WeChat Pay platform certificates")
        if not self._core._certificates:
            self._core._certificates.extend(kept)  # a failed refresh must not lose what we had

    async def close_after_failed_open(self) -> None:
        """Close the httpx pool of a client whose ``__aenter__`` failed (it does not close it)."""
        if self._core._client is not None:
            await self._core._client.aclose()


class WechatPayV3:
    """The port over one open ``AsyncWeChatPay`` (see :func:`open_wechat_pay`)."""

    def __init__(self, client: AsyncWeChatPay, *, mchid: str, appid: str, apiv3_key: str,
                 public_key_id: str | None = None, max_skew: dt.timedelta = MAX_SKEW):
        self._client = client
        self._internals = _LibraryInternals(client)
        self.mchid = mchid
        self.appid = appid
        self._apiv3_key = apiv3_key
        self._public_key_id = public_key_id or None
        self._max_skew = max_skew
        self._last_refresh = 0.0

    # --- calls -----------------------------------------------------------------------------------

    async def _call(self, what: str, coroutine) -> tuple[int, Any]:
        try:
            status, body = await coroutine
        except httpx.HTTPError as exc:
            raise PayUnavailable(0, "NETWORK", f"{what}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if str(exc) == _BAD_RESPONSE:
                raise PayUnavailable(0, "BAD_RESPONSE_SIGNATURE",
                                     f"{what}: the answer is not signed by WeChat Pay") from exc
            raise
        if 200 <= status < 300:
            return status, body
        code, message = "HTTP_ERROR", str(body)[:200]
        try:
            answer = json.loads(body)
            code, message = str(answer.get("code") or code), str(answer.get("message") or message)
        except (TypeError, ValueError, AttributeError):
            pass  # not JSON: the status and raw text already say what happened
        error = PayUnavailable if status >= 500 or status == 429 else PayRejected
        raise error(status, code, f"{what}: {message}")

    @staticmethod
    def _json(body: Any) -> dict:
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise PayUnavailable(200, "BAD_RESPONSE", "WeChat Pay answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise PayUnavailable(200, "BAD_RESPONSE", "WeChat Pay answered JSON that is not an object")
        return data

    async def _call_for(self, what: str, coroutine, shape: Callable[[dict], T]) -> T:
        """:meth:`_call`, and the answer read by ``shape`` (a resource's ``from_resource``); an answer
        not of that shape is PayUnavailable, as WeChat Pay failing is."""
        _, body = await self._call(what, coroutine)
        try:
            return shape(self._json(body))
        except ValueError as exc:
            raise PayUnavailable(200, "BAD_RESPONSE", f"{what}: {exc}") from exc

    async def jsapi_prepay(self, *, out_trade_no: str, description: str, amount_fen: int, payer_openid: str,
                           expires_at: dt.datetime) -> str:
        _, body = await self._call("jsapi prepay", self._client.pay(
            description=description, out_trade_no=out_trade_no, amount={"total": amount_fen, "currency": "CNY"},
            payer={"openid": payer_openid}, time_expire=format_time(expires_at), pay_type=WeChatPayType.MINIPROG))
        prepay_id = self._json(body).get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise PayUnavailable(200, "BAD_RESPONSE", "jsapi prepay: no prepay_id in the answer")
        return prepay_id

    async def query_order(self, out_trade_no: str) -> OrderStatus:
        return await self._call_for("query order", self._client.query(out_trade_no=out_trade_no),
                                    OrderStatus.from_resource)

    async def close_order(self, out_trade_no: str) -> None:
        await self._call("close order", self._client.close(out_trade_no=out_trade_no))

    async def refund(self, *, out_refund_no: str, transaction_id: str, refund_fen: int, total_fen: int,
                     reason: str) -> RefundStatus:
        return await self._call_for("refund", self._client.refund(
            out_refund_no=out_refund_no, transaction_id=transaction_id, reason=reason[:80],
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"}), RefundStatus.from_resource)

    async def query_refund(self, out_refund_no: str) -> RefundStatus:
        return await self._call_for("query refund", self._client.query_refund(out_refund_no=out_refund_no),
                                    RefundStatus.from_resource)

    async def trade_bill(self, day: dt.date) -> str:
        _, body = await self._call("trade bill", self._client.trade_bill(bill_date=day.isoformat(), bill_type="ALL",
                                                                         tar_type="GZIP"))
        info = self._json(body)
        url = info.get("download_url")
        if not isinstance(url, str) or not url:
            raise PayUnavailable(200, "BAD_RESPONSE", "trade bill: no download_url")
        _, content = await self._call("download bill", self._client.download_bill(url))
        raw = content if isinstance(content, bytes) else str(content).encode()
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise PayUnavailable(200, "BAD_BILL", "trade bill: the download is not gzip") from exc
        # WeChat Pay's hash_value is the digest of the bill before compression
        if info.get("hash_type", "SHA1").upper() != "SHA1" or hashlib.sha1(raw).hexdigest() != \
                str(info.get("hash_value", "")).lower():
            raise PayUnavailable(200, "BAD_BILL", "trade bill: the download does not match its hash")
        return raw.decode("utf-8-sig")

    def sign_jsapi(self, timestamp: str, nonce: str, package: str) -> str:
        return self._client.sign([self.appid, timestamp, nonce, package])

    # --- notifications ---------------------------------------------------------------------------

    async def _key_for(self, serial: str):
        if self._public_key_id is not None and serial == self._public_key_id:
            return self._internals.public_key
        try:
            number = int(serial, 16)
        except ValueError:
            return None
        for cert in self._internals.certificates():
            if cert.serial_number == number:
                return cert.public_key()
        if self._public_key_id is None and time.monotonic() - self._last_refresh >= CERT_REFRESH_INTERVAL:
            self._last_refresh = time.monotonic()
            await self._internals.refresh_certificates()
            for cert in self._internals.certificates():
                if cert.serial_number == number:
                    return cert.public_key()
        return None

    async def verify_notification(self, headers: Mapping[str, str], body: bytes, *,
                                  now: dt.datetime | None = None) -> Notification:
        signature = headers.get("Wechatpay-Signature", "")
        stamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        serial = headers.get("Wechatpay-Serial", "")
        kind = headers.get("Wechatpay-Signature-Type", SIGNATURE_TYPE)
        if not (signature and stamp and nonce and serial):
            raise BadSignature("the Wechatpay-Signature, -Timestamp, -Nonce and -Serial headers are needed")
        if kind != SIGNATURE_TYPE:
            raise BadSignature(f"signature type {kind[:40]!r} is not {SIGNATURE_TYPE}")
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:  # "²" is a digit to isdigit()
            raise BadSignature("Wechatpay-Timestamp is not a unix time")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadSignature("the body is not UTF-8") from exc
        key = await self._key_for(serial)
        if key is None:
            raise UnknownSerial(f"no WeChat Pay key with serial {serial[:64]!r}")
        if not rsa_verify(stamp, nonce, text, signature, key):
            raise BadSignature("the signature does not verify")
        now = now or utc_now()
        # compared as numbers first: a datetime of a signed 999999999999 (year 33658) cannot be made
        if abs(now.timestamp() - int(stamp)) > self._max_skew.total_seconds():
            raise StaleNotification(f"signed at unix time {stamp}, more than "
                                    f"{int(self._max_skew.total_seconds())} s from now")
        return decrypt_notification(text, self._apiv3_key, dt.datetime.fromtimestamp(int(stamp), UTC), serial)


def decrypt_notification(text: str, apiv3_key: str, signed_at: dt.datetime, serial: str) -> Notification:
    """Decrypt the AES-256-GCM resource of a notification whose signature was checked."""
    try:
        data = json.loads(text)
        resource = data["resource"]
        if data.get("resource_type", "encrypt-resource") != "encrypt-resource" or \
                resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise UndecryptableResource("the resource is not AEAD_AES_256_GCM encrypted")
        plain = aes_decrypt(nonce=resource["nonce"], ciphertext=resource["ciphertext"],
                            associated_data=resource.get("associated_data") or "", apiv3_key=apiv3_key)
    except UndecryptableResource:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, RecursionError) as exc:
        raise UndecryptableResource(f"the notification is malformed: {type(exc).__name__}") from exc
    if plain is None:
        raise UndecryptableResource("the resource does not decrypt with our APIv3 key (tampered or another key)")
    try:
        content = json.loads(plain)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise UndecryptableResource("the decrypted resource is not JSON") from exc
    if not isinstance(content, dict):
        raise UndecryptableResource("the decrypted resource is not a JSON object")
    envelope = ("id", "event_type", "resource_type", "create_time", "summary")
    if not all(isinstance(data.get(name, ""), str) and len(data.get(name, "")) <= 256 for name in envelope):
        raise UndecryptableResource(f"the notification's {', '.join(envelope)} are not all short strings")
    return Notification(id=str(data.get("id") or ""), event_type=str(data.get("event_type") or ""),
                        resource_type=str(data.get("resource_type") or ""), resource=content,
                        timestamp=signed_at, serial=serial, create_time=data.get("create_time"),
                        summary=data.get("summary"))


@asynccontextmanager
async def open_wechat_pay(*, mchid: str, appid: str, apiv3_key: str, private_key_pem: str, cert_serial: str,
                          notify_url: str, api_base: str, public_key_pem: str | None = None,
                          public_key_id: str | None = None,
                          timeout: tuple[float, float] = (3.0, 10.0)) -> AsyncIterator[WechatPayV3]:
    """Open the client once (its httpx pool; in certificate mode the certificates are fetched).

    Public-key mode when ``public_key_pem`` and ``public_key_id`` are given (the default for new
    merchants), platform-certificate mode otherwise.
    """
    client = AsyncWeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=mchid, private_key=private_key_pem,
                            cert_serial_no=cert_serial, appid=appid, apiv3_key=apiv3_key, notify_url=notify_url,
                            public_key=public_key_pem or None, public_key_id=public_key_id or None,
                            timeout=timeout, logger=None)
    internals = _LibraryInternals(client)
    internals.set_api_base(api_base)
    try:
        await client.__aenter__()
    except BaseException:
        # certificate mode could not fetch the certificates: close the httpx pool it had opened
        await internals.close_after_failed_open()
        raise
    try:
        yield WechatPayV3(client, mchid=mchid, appid=appid, apiv3_key=apiv3_key, public_key_id=public_key_id)
    finally:
        await client.__aexit__(None, None, None)
