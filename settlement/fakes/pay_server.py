"""A fake WeChat Pay (API v3): a real ``aiohttp.web.Application`` on a real port that answers like
``api.mch.weixin.qq.com`` for the calls pvsettle makes, so the real wechatpayv3 client runs against
it in tests and in the sandbox.

What it does as WeChat Pay does:

- checks the merchant's ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,
  signature=…,timestamp=…,serial_no=…`` on every request (RSA-SHA256 with the merchant's key over
  ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``, serial and mchid known, timestamp within
  5 minutes): 401 SIGN_ERROR otherwise;
- signs every answer with the platform key (RSA-SHA256 over ``timestamp\\nnonce\\nbody\\n``,
  headers ``Wechatpay-Timestamp/-Nonce/-Signature/-Serial/-Signature-Type``), in public-key mode
  (serial = ``PUB_KEY_ID_…``) or platform-certificate mode (serial = the certificate's serial in
  hex; ``GET /v3/certificates`` hands out the certificates AES-256-GCM encrypted with the APIv3 key);
- ``POST /v3/pay/transactions/jsapi``: a prepay order (the same out_trade_no with the same
  parameters gives the same prepay_id; with another amount 400 INVALID_REQUEST; a paid one
  400 ORDERPAID);
- ``GET /v3/pay/transactions/out-trade-no/{no}``: the order (404 ORDER_NOT_EXIST);
- ``POST /v3/pay/transactions/out-trade-no/{no}/close``: 204 (400 ORDERPAID when paid);
- ``POST /v3/refund/domestic/refunds`` and ``GET …/refunds/{out_refund_no}``: refunds, PROCESSING
  until the test settles them (400 NOT_ENOUGH when more than what is left would be refunded);
- ``GET /v3/bill/tradebill`` and the download URL it gives: the day's trade bill (type ALL) in
  WeChat Pay's CSV (every value prefixed with a backtick, a summary at the end), gzip, SHA1 of the
  plain text as ``hash_value``.

Tests drive the rest: :meth:`FakeWechatPay.pay_order` plays the payer paying,
:meth:`FakeWechatPay.build_notification` makes a signed and encrypted notification (with hooks
to forge each part), :meth:`FakeWechatPay.notify_payment` / :meth:`notify_refund` POST one to a
URL. :meth:`fail_next` makes the next calls of an endpoint answer an error. Every request is in
:attr:`calls`.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import re
import secrets
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from settlement.clock import LOCAL, local_today, utc_now

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
OUT_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_AUTH = re.compile(r'(\w+)="([^"]*)"')
BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
               "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
               "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
BILL_SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

JSON_KEY = web.RequestKey("json", dict)
ENDPOINTS = ("jsapi", "query", "close", "refund", "query_refund", "tradebill", "download", "certificates")


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def aes_encrypt(apiv3_key: str, plaintext: str, associated_data: str, nonce: str | None = None) -> dict[str, str]:
    """An AEAD_AES_256_GCM resource as WeChat Pay sends it (nonce: 12 printable characters)."""
    nonce = nonce or secrets.token_hex(6)
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data, "nonce": nonce}


def wechat_time(value: dt.datetime) -> str:
    return value.astimezone(LOCAL).replace(microsecond=0).isoformat()


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass
class FakeOrder:
    out_trade_no: str
    appid: str
    mchid: str
    description: str
    total: int
    currency: str
    payer_openid: str
    notify_url: str
    prepay_id: str
    time_expire: str | None
    trade_state: str = "NOTPAY"
    transaction_id: str | None = None
    success_time: dt.datetime | None = None
    refunded: int = 0

    def resource(self) -> dict[str, Any]:
        """The order as WeChat Pay's query answer and TRANSACTION.SUCCESS resource show it."""
        data: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no, "trade_type": "JSAPI",
            "trade_state": self.trade_state, "trade_state_desc": {"SUCCESS": "支付成功", "NOTPAY": "未支付",
                                                                  "CLOSED": "已关闭", "REFUND": "转入退款"}
            .get(self.trade_state, self.trade_state), "attach": "", "payer": {"openid": self.payer_openid},
            "amount": {"total": self.total, "currency": self.currency},
        }
        if self.transaction_id:
            data.update({"transaction_id": self.transaction_id, "bank_type": "OTHERS",
                         "success_time": wechat_time(self.success_time)})
            data["amount"].update({"payer_total": self.total, "payer_currency": self.currency})
        return data


@dataclass
class FakeRefund:
    out_refund_no: str
    refund_id: str
    order: FakeOrder
    refund: int
    reason: str
    notify_url: str | None
    status: str = "PROCESSING"
    created: dt.datetime = field(default_factory=lambda: utc_now())
    success_time: dt.datetime | None = None

    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "refund_id": self.refund_id, "out_refund_no": self.out_refund_no,
            "transaction_id": self.order.transaction_id, "out_trade_no": self.order.out_trade_no,
            "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "create_time": wechat_time(self.created),
            "status": self.status, "funds_account": "AVAILABLE",
            "amount": {"total": self.order.total, "refund": self.refund, "payer_total": self.order.total,
                       "payer_refund": self.refund, "settlement_refund": self.refund,
                       "settlement_total": self.order.total, "discount_refund": 0, "currency": "CNY"},
        }
        if self.success_time:
            data["success_time"] = wechat_time(self.success_time)
        return data


class FakeWechatPay:
    """One merchant's WeChat Pay. ``mode`` is ``"public_key"`` or ``"certificate"``."""

    def __init__(self, *, mchid: str, appid: str, apiv3_key: str, merchant_public_key_pem: str,
                 merchant_serial: str, mode: str = "public_key"):
        if mode not in ("public_key", "certificate"):
            raise ValueError(f"unknown mode {mode!r}")
        if len(apiv3_key.encode()) != 32:
            raise ValueError("the APIv3 key is 32 bytes")
        self.mchid, self.appid, self.apiv3_key, self.mode = mchid, appid, apiv3_key, mode
        self.merchant_key = serialization.load_pem_public_key(merchant_public_key_pem.encode())
        self.merchant_serial = merchant_serial
        self.platform_key = new_rsa_key()
        self.public_key_id = "PUB_KEY_ID_" + secrets.token_hex(16).upper()
        self.certificates: list[tuple[x509.Certificate, rsa.RSAPrivateKey]] = []
        if mode == "certificate":
            self.certificates.append((self._certificate(self.platform_key), self.platform_key))
        self.orders: dict[str, FakeOrder] = {}
        self.refunds: dict[str, FakeRefund] = {}
        self.calls: list[dict[str, Any]] = []
        self.extra_bill_rows: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
        self.hidden_from_bill: set[str] = set()  # transaction ids the trade bill leaves out
        self.bill_amounts: dict[str, int] = {}  # transaction id → amount the bill shows instead [fen]
        self._bills: dict[str, bytes] = {}
        self._faults: dict[str, deque] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    # --- keys ------------------------------------------------------------------------------------

    @staticmethod
    def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA fake")])
        now = utc_now()
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))

    @property
    def serial(self) -> str:
        """The serial notifications and answers are signed under now."""
        if self.mode == "public_key":
            return self.public_key_id
        return format(self.certificates[-1][0].serial_number, "X")

    @property
    def public_key_pem(self) -> str:
        """The WeChat Pay public key a public-key-mode merchant downloads."""
        return public_pem(self.platform_key)

    def rotate_certificate(self) -> str:
        """Certificate mode: a new platform key and certificate take over; returns the new serial."""
        self.platform_key = new_rsa_key()
        self.certificates.append((self._certificate(self.platform_key), self.platform_key))
        return self.serial

    # --- lifecycle -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v3/pay/transactions/jsapi", self._jsapi, name="jsapi")
        app.router.add_get("/v3/pay/transactions/out-trade-no/{no}", self._query, name="query")
        app.router.add_post("/v3/pay/transactions/out-trade-no/{no}/close", self._close, name="close")
        app.router.add_post("/v3/refund/domestic/refunds", self._refund, name="refund")
        app.router.add_get("/v3/refund/domestic/refunds/{no}", self._query_refund, name="query_refund")
        app.router.add_get("/v3/bill/tradebill", self._tradebill, name="tradebill")
        app.router.add_get("/v3/billdownload/file", self._download, name="download")
        app.router.add_get("/v3/certificates", self._certificates, name="certificates")
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self.base_url

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeWechatPay:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def fail_next(self, endpoint: str, *, status: int = 500, code: str = "SYSTEM_ERROR", times: int = 1) -> None:
        """The next ``times`` calls of ``endpoint`` (one of :data:`ENDPOINTS`) answer this error."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        for _ in range(times):
            self._faults[endpoint].append((status, code))

    # --- signing ---------------------------------------------------------------------------------

    def _signed(self, status: int, data: Any = None, *, body: bytes | None = None,
                content_type: str = "application/json") -> web.Response:
        text = "" if data is None else json.dumps(data, ensure_ascii=False)
        if body is not None:
            return web.Response(status=status, body=body, content_type=content_type)
        stamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
        headers = {"Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.serial,
                   "Wechatpay-Signature": rsa_sign(self.platform_key, f"{stamp}\n{nonce}\n{text}\n"),
                   "Wechatpay-Signature-Type": SIGNATURE_TYPE, "Request-ID": uuid.uuid4().hex}
        if status == 204:
            return web.Response(status=204, headers=headers)
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return self._signed(status, {"code": code, "message": message})

    def _check_authorization(self, request: web.Request, body: str) -> str | None:
        """Why the merchant's signature is refused, or None when it holds."""
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme != SIGNATURE_TYPE:
            return "Authorization is not WECHATPAY2-SHA256-RSA2048"
        fields = dict(_AUTH.findall(rest))
        if fields.get("mchid") != self.mchid:
            return "unknown mchid"
        if fields.get("serial_no", "").upper() != self.merchant_serial.upper():
            return "unknown merchant certificate serial"
        stamp = fields.get("timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return "timestamp too far from now"
        message = f"{request.method}\n{request.raw_path}\n{stamp}\n{fields.get('nonce_str', '')}\n{body}\n"
        try:
            self.merchant_key.verify(base64.b64decode(fields.get("signature", "")), message.encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "signature does not verify"
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        body = await request.text()
        endpoint = request.match_info.route.name or request.path
        self.calls.append({"method": request.method, "path": request.raw_path, "endpoint": endpoint,
                           "body": json.loads(body) if body.strip().startswith("{") else body})
        why = self._check_authorization(request, body)
        if why is not None:
            return self._error(401, "SIGN_ERROR", why)
        if self._faults[endpoint]:
            status, code = self._faults[endpoint].popleft()
            return self._error(status, code, "injected fault")
        request[JSON_KEY] = json.loads(body) if body else {}
        return await handler(request)

    # --- endpoints -------------------------------------------------------------------------------

    async def _jsapi(self, request: web.Request) -> web.Response:
        data = request[JSON_KEY]
        amount, payer = data.get("amount") or {}, data.get("payer") or {}
        if data.get("mchid") != self.mchid or data.get("appid") != self.appid:
            return self._error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        no = data.get("out_trade_no", "")
        if not OUT_NO.match(no) or not data.get("description") or not data.get("notify_url") \
                or not payer.get("openid"):
            return self._error(400, "PARAM_ERROR", "out_trade_no, description, notify_url and payer.openid are needed")
        total = amount.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total < 1 or amount.get("currency", "CNY") != "CNY":
            return self._error(400, "PARAM_ERROR", "amount.total must be a positive number of fen in CNY")
        existing = self.orders.get(no)
        if existing is not None:
            if existing.trade_state == "SUCCESS":
                return self._error(400, "ORDERPAID", "该订单已支付")
            if existing.trade_state == "CLOSED":
                return self._error(400, "ORDERCLOSED", "当前订单已关闭，请重新下单")
            if (existing.total, existing.payer_openid, existing.description) != \
                    (total, payer["openid"], data["description"]):
                return self._error(400, "INVALID_REQUEST", "201 商户订单号重复")
            return self._signed(200, {"prepay_id": existing.prepay_id})
        order = FakeOrder(out_trade_no=no, appid=data["appid"], mchid=data["mchid"], description=data["description"],
                          total=total, currency="CNY", payer_openid=payer["openid"], notify_url=data["notify_url"],
                          prepay_id="wx" + secrets.token_hex(16), time_expire=data.get("time_expire"))
        self.orders[no] = order
        return self._signed(200, {"prepay_id": order.prepay_id})

    async def _query(self, request: web.Request) -> web.Response:
        if request.query.get("mchid") != self.mchid:
            return self._error(400, "PARAM_ERROR", "mchid is needed")
        order = self.orders.get(request.match_info["no"])
        if order is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        return self._signed(200, order.resource())

    async def _close(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["no"])
        if order is None:
            return self._error(404, "ORDER_NOT_EXIST", "订单不存在")
        if order.trade_state == "SUCCESS":
            return self._error(400, "ORDERPAID", "订单已支付")
        order.trade_state = "CLOSED"
        return self._signed(204)

    async def _refund(self, request: web.Request) -> web.Response:
        data = request[JSON_KEY]
        amount = data.get("amount") or {}
        order = next((o for o in self.orders.values() if o.transaction_id and
                      o.transaction_id == data.get("transaction_id")), None) or \
            self.orders.get(data.get("out_trade_no") or "")
        if order is None or order.transaction_id is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        no = data.get("out_refund_no", "")
        if not OUT_NO.match(no) and not re.match(r"^[0-9A-Za-z_\-|*@]{1,64}$", no):
            return self._error(400, "PARAM_ERROR", "out_refund_no is malformed")
        refund, total = amount.get("refund"), amount.get("total")
        if not isinstance(refund, int) or isinstance(refund, bool) or refund < 1 or total != order.total:
            return self._error(400, "PARAM_ERROR", "amount.refund and amount.total must be fen, total the order's")
        existing = self.refunds.get(no)
        if existing is not None:
            if existing.refund != refund or existing.order is not order:
                return self._error(400, "INVALID_REQUEST", "商户退款单号重复")
            return self._signed(200, existing.resource())
        if order.refunded + refund > order.total:
            return self._error(400, "NOT_ENOUGH", "订单可退金额不足")
        order.refunded += refund
        item = FakeRefund(out_refund_no=no, refund_id="50" + "".join(secrets.choice("0123456789") for _ in range(27)),
                          order=order, refund=refund, reason=data.get("reason", ""), notify_url=data.get("notify_url"))
        self.refunds[no] = item
        return self._signed(200, item.resource())

    async def _query_refund(self, request: web.Request) -> web.Response:
        item = self.refunds.get(request.match_info["no"])
        if item is None:
            return self._error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._signed(200, item.resource())

    async def _tradebill(self, request: web.Request) -> web.Response:
        try:
            day = dt.date.fromisoformat(request.query.get("bill_date", ""))
        except ValueError:
            return self._error(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        if day >= local_today():
            return self._error(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        text = self.trade_bill_text(day).encode()
        token = secrets.token_urlsafe(16)
        compressed = request.query.get("tar_type") == "GZIP"
        self._bills[token] = gzip.compress(text) if compressed else text
        return self._signed(200, {"hash_type": "SHA1", "hash_value": hashlib.sha1(text).hexdigest(),
                                  "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"})

    async def _download(self, request: web.Request) -> web.Response:
        content = self._bills.get(request.query.get("token", ""))
        if content is None:
            return self._error(400, "PARAM_ERROR", "unknown token")
        return self._signed(200, body=content, content_type="application/octet-stream")

    async def _certificates(self, request: web.Request) -> web.Response:
        if self.mode != "certificate":
            return self._error(404, "RESOURCE_NOT_EXISTS", "public-key mode merchants have no platform certificates")
        data = []
        for cert, _ in self.certificates:
            pem = cert.public_bytes(serialization.Encoding.PEM).decode()
            data.append({"serial_no": format(cert.serial_number, "X"),
                         "effective_time": wechat_time(cert.not_valid_before_utc),
                         "expire_time": wechat_time(cert.not_valid_after_utc),
                         "encrypt_certificate": aes_encrypt(self.apiv3_key, pem, "certificate")})
        return self._signed(200, {"data": data})

    # --- what the test plays ---------------------------------------------------------------------

    def pay_order(self, out_trade_no: str, *, at: dt.datetime | None = None) -> FakeOrder:
        """The payer pays the order (as in wx.requestPayment succeeding)."""
        order = self.orders[out_trade_no]
        if order.trade_state != "NOTPAY":
            raise ValueError(f"order {out_trade_no} is {order.trade_state}")
        order.trade_state = "SUCCESS"
        order.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
        order.success_time = at or utc_now()
        return order

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS", *, at: dt.datetime | None = None) -> FakeRefund:
        """WeChat Pay finishes a refund: SUCCESS, CLOSED or ABNORMAL."""
        item = self.refunds[out_refund_no]
        item.status = status
        if status == "SUCCESS":
            item.success_time = at or utc_now()
        else:
            item.order.refunded -= item.refund
        return item

    def build_notification(self, event_type: str, resource: Mapping[str, Any], *, original_type: str = "transaction",
                           timestamp: int | None = None, nonce: str | None = None, serial: str | None = None,
                           sign_with: rsa.RSAPrivateKey | None = None, apiv3_key: str | None = None,
                           tamper_ciphertext: bool = False, summary: str = "支付成功",
                           signature_type: str = SIGNATURE_TYPE,
                           ensure_ascii: bool = False) -> tuple[dict[str, str], bytes]:
        """A notification as WeChat Pay sends it: (headers, body). Each keyword forges one part;
        ``ensure_ascii`` writes the resource's JSON with every other character escaped (``\\u00e9``),
        which can carry what UTF-8 cannot (a lone surrogate)."""
        encrypted = aes_encrypt(apiv3_key or self.apiv3_key, json.dumps(resource, ensure_ascii=ensure_ascii),
                                original_type)
        if tamper_ciphertext:
            raw = bytearray(base64.b64decode(encrypted["ciphertext"]))
            raw[len(raw) // 2] ^= 0x01
            encrypted["ciphertext"] = base64.b64encode(bytes(raw)).decode()
        body = json.dumps({"id": str(uuid.uuid4()), "create_time": wechat_time(utc_now()),
                           "resource_type": "encrypt-resource", "event_type": event_type, "summary": summary,
                           "resource": {"original_type": original_type, **encrypted}}, ensure_ascii=False)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(16).upper()
        signature = rsa_sign(sign_with or self.platform_key, f"{stamp}\n{nonce}\n{body}\n")
        headers = {"Content-Type": "application/json", "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                   "Wechatpay-Signature": signature, "Wechatpay-Serial": serial or self.serial,
                   "Wechatpay-Signature-Type": signature_type}
        return headers, body.encode()

    def payment_notification(self, out_trade_no: str, **forge: Any) -> tuple[dict[str, str], bytes]:
        """The TRANSACTION.SUCCESS notification of a paid order. ``resource_changes`` alters the
        resource before it is encrypted (another amount, mchid …); other keywords as in
        :meth:`build_notification`."""
        resource = self.orders[out_trade_no].resource()
        for key, value in (forge.pop("resource_changes", None) or {}).items():
            resource[key] = value
        return self.build_notification("TRANSACTION.SUCCESS", resource, **forge)

    def refund_notification(self, out_refund_no: str, **forge: Any) -> tuple[dict[str, str], bytes]:
        item = self.refunds[out_refund_no]
        resource = {"mchid": self.mchid, "out_trade_no": item.order.out_trade_no,
                    "transaction_id": item.order.transaction_id, "out_refund_no": item.out_refund_no,
                    "refund_id": item.refund_id, "refund_status": item.status,
                    "user_received_account": "支付用户零钱",
                    "amount": {"total": item.order.total, "refund": item.refund, "payer_total": item.order.total,
                               "payer_refund": item.refund}}
        if item.success_time:
            resource["success_time"] = wechat_time(item.success_time)
        for key, value in (forge.pop("resource_changes", None) or {}).items():
            resource[key] = value
        event = {"SUCCESS": "REFUND.SUCCESS", "CLOSED": "REFUND.CLOSED"}.get(item.status, "REFUND.ABNORMAL")
        return self.build_notification(event, resource, original_type="refund", summary="退款状态", **forge)

    async def post(self, url: str, notification: tuple[dict[str, str], bytes]) -> tuple[int, str]:
        """POST a notification to ``url``; returns the status and body the merchant answered."""
        headers, body = notification
        async with self._session.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def notify_payment(self, url: str, out_trade_no: str, **forge: Any) -> tuple[int, str]:
        return await self.post(url, self.payment_notification(out_trade_no, **forge))

    async def notify_refund(self, url: str, out_refund_no: str, **forge: Any) -> tuple[int, str]:
        return await self.post(url, self.refund_notification(out_refund_no, **forge))

    # --- the trade bill --------------------------------------------------------------------------

    def trade_bill_text(self, day: dt.date) -> str:
        """The day's trade bill (type ALL): paid orders and successful refunds of that local day,
        less :attr:`hidden_from_bill`, amounts changed by :attr:`bill_amounts`, plus
        :attr:`extra_bill_rows`."""
        rows = []
        for order in self.orders.values():
            if order.success_time is None or order.success_time.astimezone(LOCAL).date() != day \
                    or order.transaction_id in self.hidden_from_bill:
                continue
            rows.append({"time": order.success_time, "transaction_id": order.transaction_id,
                         "out_trade_no": order.out_trade_no, "openid": order.payer_openid, "state": "SUCCESS",
                         "total": self.bill_amounts.get(order.transaction_id, order.total),
                         "description": order.description})
        for item in self.refunds.values():
            if item.status != "SUCCESS" or item.success_time.astimezone(LOCAL).date() != day:
                continue
            rows.append({"time": item.success_time, "transaction_id": item.order.transaction_id,
                         "out_trade_no": item.order.out_trade_no, "openid": item.order.payer_openid,
                         "state": "REFUND", "total": 0, "refund_id": item.refund_id,
                         "out_refund_no": item.out_refund_no, "refund": item.refund,
                         "description": item.order.description})
        rows += self.extra_bill_rows.get(day, [])
        lines = [BILL_HEADER]
        settled = refunded = 0
        for row in sorted(rows, key=lambda r: r["time"]):
            refund = row.get("refund", 0)
            settled += row["total"]
            refunded += refund
            values = [row["time"].astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"), self.appid, self.mchid, "0", "",
                      row["transaction_id"], row["out_trade_no"], row["openid"], "JSAPI", row["state"], "OTHERS",
                      "CNY", _yuan(row["total"]), "0.00", row.get("refund_id", "0"), row.get("out_refund_no", "0"),
                      _yuan(refund), "0.00", "ORIGINAL" if refund else "", "SUCCESS" if refund else "",
                      row["description"], "", "0.00000", "0.60%", _yuan(row["total"]), _yuan(refund), ""]
            lines.append(",".join("`" + v for v in values))
        lines.append(BILL_SUMMARY)
        lines.append(",".join("`" + v for v in (str(len(rows)), _yuan(settled), _yuan(refunded), "0.00", "0.00000",
                                                _yuan(settled), _yuan(refunded))))
        return "\r\n".join(lines) + "\r\n"
