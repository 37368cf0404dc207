"""The official account's wire protocol: signatures, timestamps, bounded bodies, safe XML and safe
(encrypted) mode, with wechatpy doing the parsing, the replies and the AES.

How WeChat calls us
-------------------
* ``GET /wechat?signature&timestamp&nonce&echostr`` checks the URL: answer ``echostr`` when
  ``signature = sha1(sorted(token, timestamp, nonce))``.
* ``POST /wechat?signature&timestamp&nonce[&openid]`` (plaintext mode) carries one message as XML.
* ``POST /wechat?…&encrypt_type=aes&msg_signature=…`` (safe mode) carries
  ``<xml><Encrypt>…</Encrypt></xml>``; ``msg_signature = sha1(sorted(token, timestamp, nonce,
  Encrypt))`` and the reply is encrypted the same way.

What we check, in this order, before anything reaches a command
-----------------------------------------------------------------
1. **Timestamp** within ±``MAX_SKEW_S`` of our clock (a captured request cannot be replayed later).
2. **Body size**: at most ``MAX_BODY_BYTES`` (WeChat's messages are a few hundred bytes), else 413.
3. **XML safety**: UTF-8, no ``<!DOCTYPE``/``<!ENTITY`` (or any ``<!`` markup but CDATA) — the
   billion laughs and external entities never reach a parser — and then defusedxml parses it with
   DTDs, entities and external references forbidden, a second guard.
4. **Signature**, compared with :func:`hmac.compare_digest` (wechatpy's own check uses ``!=``,
   which leaks timing; ours runs first, so wechatpy's only ever sees a valid one).
5. In safe mode wechatpy's ``WeChatCrypto`` decrypts (and checks the AppID inside); the plaintext
   goes through step 3 again before ``parse_message``.

Replies go through wechatpy's ``create_reply``, which puts text in a CDATA section without
escaping ``]]>``: :func:`cdata_safe` splits that sequence so that no text, whatever the user
typed, can close the section and inject XML.

Exceptions::

    ProtocolError              the request is not a message we accept; ``status`` is the HTTP answer
    ├── BadSignature           403: signature missing or wrong
    ├── StaleTimestamp         403: timestamp missing, malformed or beyond the allowed skew
    ├── BodyTooLarge           413: body longer than MAX_BODY_BYTES
    ├── UnsafeXml              400: DOCTYPE/ENTITY declarations, not UTF-8, not well-formed
    └── MalformedMessage       400: well-formed XML that is not a WeChat message, or undecryptable
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_et
from aiohttp import web
from defusedxml import DefusedXmlException
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.messages import BaseMessage

#: WeChat's messages are well under 2 KiB; anything near this is not from WeChat.
MAX_BODY_BYTES = 64 * 1024
#: Clock difference tolerated between WeChat and us [s]; older or newer requests are refused.
MAX_SKEW_S = 300
_READ_CHUNK = 16 * 1024
# "<!" starts a declaration (DOCTYPE, ENTITY, ELEMENT…), a comment or CDATA; only CDATA is WeChat's
_DECLARATION = re.compile(r"<!(?!\[CDATA\[)")
# characters XML 1.0 does not allow even in CDATA
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ProtocolError(Exception):
    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def response(self) -> web.Response:
        # plain text, not the JSON error shape: WeChat is the only legitimate caller
        return web.Response(status=self.status, text=self.reason)


class BadSignature(ProtocolError):
    status = 403


class StaleTimestamp(ProtocolError):
    status = 403


class BodyTooLarge(ProtocolError):
    status = 413


class UnsafeXml(ProtocolError):
    status = 400


class MalformedMessage(ProtocolError):
    status = 400


# --- signatures and time -----------------------------------------------------------------------


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """WeChat's signature: sha1 of the sorted, concatenated parts, as lower-case hex."""
    parts = sorted([token, timestamp, nonce, *extra])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def check_signature(given: str | None, token: str, timestamp: str, nonce: str, *extra: str) -> None:
    """Refuse unless ``given`` is the signature of the parts, compared in constant time.

    Raises
    ------
    BadSignature
    """
    if not token:
        raise BadSignature("the official account token is not configured")
    if not given or not given.isascii():
        raise BadSignature("signature missing")
    expected = signature(token, timestamp, nonce, *extra)
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise BadSignature("signature mismatch")


def check_timestamp(timestamp: str | None, now: float | None = None) -> int:
    """The request's timestamp [s since the epoch], which must be within ``MAX_SKEW_S`` of ``now``.

    Raises
    ------
    StaleTimestamp
    """
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise StaleTimestamp("timestamp missing or malformed")
    value = int(timestamp)
    now = time.time() if now is None else now
    if abs(now - value) > MAX_SKEW_S:
        raise StaleTimestamp("timestamp too far from the server's clock")
    return value


# --- bodies and XML ----------------------------------------------------------------------------


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes.

    The declared Content-Length is checked first; a chunked body is read in pieces and dropped at
    the first byte past the limit, so an endless body costs at most ``limit`` bytes of memory.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def safe_xml(data: bytes | str) -> tuple[str, Element]:
    """The XML text and its parsed root, if it is UTF-8, declares nothing and is well-formed.

    Raises
    ------
    UnsafeXml
        A DOCTYPE, ENTITY or any ``<!`` markup other than CDATA; not UTF-8; not well-formed; a
        root other than ``<xml>``.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeXml("body is not UTF-8") from None
    else:
        text = data
    if _DECLARATION.search(text):
        raise UnsafeXml("XML declarations (DOCTYPE, ENTITY) are not accepted")
    try:
        root = safe_et.fromstring(text.encode("utf-8"), forbid_dtd=True, forbid_entities=True,
                                  forbid_external=True)
    except (DefusedXmlException, safe_et.ParseError, ValueError):
        raise UnsafeXml("body is not well-formed XML") from None
    if root.tag != "xml":
        raise UnsafeXml("the root element is not <xml>")
    return text, root


@functools.lru_cache(maxsize=8)
def crypto_for(token: str, aes_key: str, app_id: str) -> WeChatCrypto:
    """wechatpy's safe-mode codec for the account (built once per key)."""
    if len(aes_key) != 43:
        raise MalformedMessage("the official account's EncodingAESKey is not configured")
    return WeChatCrypto(token, aes_key, app_id)


@dataclass(frozen=True)
class Verified:
    """A message that passed every check: its XML and whether the reply must be encrypted."""

    xml: str
    message: BaseMessage
    encrypted: bool
    timestamp: str
    nonce: str


def verify_post(query, body: bytes, *, token: str, aes_key: str, app_id: str,
                now: float | None = None) -> Verified:
    """Check a POST from WeChat (plaintext or safe mode) and parse its message.

    Parameters
    ----------
    query : mapping
        The request's query string.
    body : bytes
        The body, already bounded by :func:`read_body`.

    Raises
    ------
    ProtocolError
        One of its subclasses, in the order of the module docstring.
    """
    timestamp = query.get("timestamp", "")
    check_timestamp(timestamp, now)
    nonce = query.get("nonce", "")
    if not nonce or len(nonce) > 64:
        raise BadSignature("nonce missing")
    text, root = safe_xml(body)
    encrypted = query.get("encrypt_type", "raw").lower() == "aes"
    if encrypted:
        encrypt = root.findtext("Encrypt")
        if not encrypt:
            raise MalformedMessage("safe mode without <Encrypt>")
        msg_signature = query.get("msg_signature")
        check_signature(msg_signature, token, timestamp, nonce, encrypt)
        try:
            # wechatpy compares the signature again (not in constant time): it is valid by now
            inner = crypto_for(token, aes_key, app_id).decrypt_message(
                {"Encrypt": encrypt}, msg_signature.lower(), timestamp, nonce)
        except MalformedMessage:
            raise
        except Exception:  # base64, padding, AppID, length: each means "not ours to read"
            raise MalformedMessage("the encrypted message cannot be decrypted for this account") from None
        text, root = safe_xml(inner)
    else:
        check_signature(query.get("signature"), token, timestamp, nonce)
    return Verified(xml=text, message=parse(text), encrypted=encrypted, timestamp=timestamp, nonce=nonce)


def parse(xml: str) -> BaseMessage:
    """wechatpy's ``parse_message``, its failures on odd (but safe) XML turned into one error."""
    try:
        message = parse_message(xml)
    except (KeyError, AttributeError, TypeError, ValueError, IndexError):
        raise MalformedMessage("not a WeChat message") from None
    if message is None:
        raise MalformedMessage("empty message")
    return message


def verify_echo(query, *, token: str, now: float | None = None) -> str:
    """The ``echostr`` to answer WeChat's URL check with, after checking it.

    Raises
    ------
    ProtocolError
    """
    timestamp = query.get("timestamp", "")
    check_timestamp(timestamp, now)
    check_signature(query.get("signature"), token, timestamp, query.get("nonce", ""))
    echo = query.get("echostr", "")
    if not echo or len(echo) > 128 or not echo.isascii() or not echo.isalnum():
        raise MalformedMessage("echostr missing or malformed")
    return echo


# --- replies -----------------------------------------------------------------------------------


def cdata_safe(text: str) -> str:
    """Text that stays inside one CDATA section: ``]]>`` is split across two sections (the XML
    reads the same text back) and characters XML cannot carry are dropped."""
    return _NOT_XML.sub("", text).replace("]]>", "]]]]><![CDATA[>")


def render_reply(text: str | None, verified: Verified, *, token: str, aes_key: str, app_id: str) -> str:
    """The HTTP body answering ``verified``: ``success`` for no reply, else a text reply, encrypted
    in safe mode."""
    from wechatpy import create_reply

    if not text:
        return "success"
    xml = create_reply(cdata_safe(text), verified.message, render=True)
    if verified.encrypted:
        return crypto_for(token, aes_key, app_id).encrypt_message(xml, verified.nonce, str(int(time.time())))
    return xml
