"""``pvsettle bench pay``: verified WeChat Pay notifications recorded per second, and their p99.

What is measured, in one run:

1. a database of the bench's own (a fresh database on the PostgreSQL server of
   ``PVSETTLE_DATABASE_URL``, or a temporary SQLite file), migrated and seeded with one open bill
   and one pending prepay order per notification to come, and locally generated RSA keys: the
   merchant's and WeChat Pay's platform key (public-key mode);
2. ``pvsettle serve --workers N`` on it (N > 1 needs ``PVSETTLE_REDIS_URL``), WeChat Pay settings
   pointing at those keys, no scheduler and no outbox dispatcher in it (each payment still writes
   its receipt to the outbox; sending those is what ``bench notify`` measures);
3. a load generator in a process of its own, which first builds every notification exactly as
   WeChat Pay does (resource AES-256-GCM encrypted with the APIv3 key, RSA-SHA256 signature over
   ``timestamp\\nnonce\\nbody\\n``; signing is the slow part, so it happens before the clock
   starts), then keeps ``--concurrency`` POST /pay/notify in flight for ``--seconds``. Each
   notification is for another order: every one is verified, decrypted, checked and records a
   payment that pays its bill;
4. afterwards the database must hold exactly one payment per notification answered 204.

Prints ``{"notifications", "rate_per_s", "p99_ms", "database", …}``. The machine is shared: a
single run is a sample, not a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from server.bench.support import (blocking_bench_database, free_port, percentile, serve_environment, start_serve,
                                  stop_process_group, wait_ready)
from settlement.clock import UTC, utc_now

MCHID = "1900009999"
APPID = "wxbenchpay00000001"
APIV3_KEY = "BenchApiV3Key0123456789abcdefABC"
AMOUNT_FEN = 12_345
PERIODS = 24  # bills per plant: one per month
WARM_UP = 200  # notifications sent before the clock starts


async def _seed(url: str, orders: int) -> list[str]:
    """Connect to ``url`` and seed ``orders`` open bills, each with a pending order; their order numbers."""
    from decimal import Decimal

    from settlement.infra import db
    from settlement import models as m

    await db.open_database(url)
    now = utc_now()
    plants = -(-orders // PERIODS)
    try:
        owners = [m.Owner(name=f"业主{n}") for n in range(plants)]
        await m.Owner.bulk_create(owners, batch_size=1000)
        owners = list(await m.Owner.all().order_by("id"))
        await m.WechatIdentity.bulk_create([m.WechatIdentity(app_id=APPID, openid=f"o-bench-{o.id}", owner_id=o.id)
                                            for o in owners], batch_size=1000)
        identity = dict(await m.WechatIdentity.all().values_list("owner_id", "id"))
        await m.Plant.bulk_create([m.Plant(code=f"BP{o.id:06d}", name="屋顶", owner_id=o.id,
                                           capacity_kwp=Decimal("100")) for o in owners], batch_size=1000)
        plant_rows = list(await m.Plant.all().order_by("id").values_list("id", "owner_id"))
        cycles = []
        for plant_id, _ in plant_rows:
            for i in range(PERIODS):
                start = dt.datetime(2024 + i // 12, i % 12 + 1, 1, tzinfo=UTC)
                cycles.append(m.ReadingCycle(plant_id=plant_id, period=f"{start:%Y-%m}", starts_at=start,
                                             ends_at=start + dt.timedelta(days=28)))
        await m.ReadingCycle.bulk_create(cycles[:orders], batch_size=1000)
        cycle_rows = list(await m.ReadingCycle.all().order_by("id").values_list("id", "plant_id", "period"))
        await m.ConfirmationForm.bulk_create([
            m.ConfirmationForm(cycle_id=cid, state=m.FormState.CONFIRMED, lines=[], periods={},
                               generation_kwh=Decimal("1"), self_use_kwh=Decimal("1"), export_kwh=Decimal("0"),
                               grid_kwh=Decimal("0")) for cid, _, _ in cycle_rows], batch_size=1000)
        form_of = dict(await m.ConfirmationForm.all().values_list("cycle_id", "id"))
        owner_of = dict(plant_rows)
        await m.Bill.bulk_create([
            m.Bill(number=f"{period}-{pid}", cycle_id=cid, form_id=form_of[cid], plant_id=pid, owner_id=owner_of[pid],
                   issued_at=now, due_on=(now + dt.timedelta(days=15)).date(), total_fen=AMOUNT_FEN, tax_fen=0)
            for cid, pid, period in cycle_rows], batch_size=1000)
        bills = list(await m.Bill.all().order_by("id").values_list("id", "owner_id"))
        numbers = [f"{now:%y%m%d}B{bill_id}N1" for bill_id, _ in bills]
        await m.PayOrder.bulk_create([
            m.PayOrder(out_trade_no=no, bill_id=bill_id, attempt=1, amount_fen=AMOUNT_FEN,
                       payer_id=identity[owner_id], payer_openid=f"o-bench-{owner_id}",
                       prepay_id="wx" + secrets.token_hex(16), expires_at=now + dt.timedelta(hours=2))
            for no, (bill_id, owner_id) in zip(numbers, bills)], batch_size=1000)
    finally:
        await db.close_database()
    return numbers


async def _count(url: str) -> tuple[int, int, int]:
    """Payments recorded, bills paid, notifications accepted."""
    from settlement.infra import db
    from settlement import models as m

    await db.open_database(url)
    try:
        return (await m.Payment.all().count(), await m.Bill.filter(state=m.BillState.PAID).count(),
                await m.PayNotification.filter(outcome=m.NotificationOutcome.ACCEPTED).count())
    finally:
        await db.close_database()


def bench_pay(seconds: int = 60, concurrency: int = 16, workers: int = 1, max_rate: int = 600) -> dict:
    """Run the benchmark (see the module docstring); ``max_rate`` [1/s] sizes the orders seeded."""
    from webapp.settings import Settings, demo_settings
    from settlement.fakes.pay_server import new_rsa_key, private_pem, public_pem

    base = Settings.from_env(require_secrets=False)
    if workers > 1 and not base.redis_url:
        raise SystemExit("pvsettle bench pay: --workers > 1 needs PVSETTLE_REDIS_URL")
    orders = max_rate * seconds + WARM_UP
    with blocking_bench_database(base.database_url, prefix="pvsettle-bench-pay-") as bench:
        numbers = asyncio.run(_seed(bench.url, orders))
        with tempfile.TemporaryDirectory(prefix="pvsettle-bench-pay-") as tmp:
            folder = Path(tmp)
            merchant, platform = new_rsa_key(), new_rsa_key()
            (folder / "merchant.pem").write_text(private_pem(merchant))
            (folder / "platform-public.pem").write_text(public_pem(platform))
            (folder / "platform-private.pem").write_text(private_pem(platform))
            (folder / "orders.json").write_text(json.dumps(numbers))
            public_key_id = "PUB_KEY_ID_" + secrets.token_hex(12).upper()
            settings = demo_settings(var_dir=str(folder / "var"))
            port = free_port()
            overrides = {
                "database_url": bench.url, "redis_url": base.redis_url,
                "redis_prefix": f"pvsettle-bench-pay:{uuid.uuid4().hex[:8]}:", "port": port, "host": "127.0.0.1",
                "scheduler_interval": 0, "log_level": "WARNING", "mp_appid": APPID, "pay_mchid": MCHID,
                # the receipts are written to the outbox with each payment (measured); sending them
                # to WeChat is another workload (bench notify), and there is no WeChat here
                "dispatcher_interval": 0,
                "pay_apiv3_key": APIV3_KEY, "pay_private_key_path": str(folder / "merchant.pem"),
                "pay_cert_serial": secrets.token_hex(20).upper(),
                "pay_public_key_path": str(folder / "platform-public.pem"), "pay_public_key_id": public_key_id,
                "pay_notify_url": f"http://127.0.0.1:{port}/pay/notify", "pay_api_base": "http://127.0.0.1:9"}
            server = start_serve(serve_environment(settings, overrides), tmp, workers)
            try:
                asyncio.run(wait_ready(f"http://127.0.0.1:{port}/healthz", alive=lambda: server.poll() is None))
                args = [sys.executable, "-m", "server.bench.pay", "load", f"http://127.0.0.1:{port}/pay/notify",
                        "--orders", str(folder / "orders.json"), "--platform-key", str(folder / "platform-private.pem"),
                        "--serial", public_key_id, "--seconds", str(seconds), "--concurrency", str(concurrency)]
                load = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
            finally:
                stop_process_group(server)
        payments, paid, accepted = asyncio.run(_count(bench.url))
    if not payments == paid == accepted == load["accepted"]:
        raise RuntimeError(f"bench pay: {load['accepted']} notifications answered 204 but {payments} payments, "
                           f"{paid} bills paid and {accepted} notifications accepted are recorded")
    return {"notifications": load["measured"], "rate_per_s": load["rate_per_s"], "p99_ms": load["p99_ms"],
            "database": bench.kind, "seconds": load["seconds"],
            "p50_ms": load["p50_ms"], "failed": load["failed"], "workers": workers, "concurrency": concurrency,
            "payments_recorded": payments}


# --- the load generator (its own process) --------------------------------------------------------


def _build(chunk: list[str], platform_pem: str, serial: str) -> list[tuple[dict[str, str], bytes]]:
    """Notifications for a chunk of orders, signed and encrypted as WeChat Pay does."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from settlement.fakes.pay_server import aes_encrypt, rsa_sign, wechat_time

    key = load_pem_private_key(platform_pem.encode(), password=None)
    now = utc_now()
    out = []
    for n, no in enumerate(chunk):
        resource = {"appid": APPID, "mchid": MCHID, "out_trade_no": no,
                    "transaction_id": f"4200{secrets.randbelow(10**24):024d}", "trade_type": "JSAPI",
                    "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "",
                    "success_time": wechat_time(now), "payer": {"openid": f"o-payer-{n}"},
                    "amount": {"total": AMOUNT_FEN, "payer_total": AMOUNT_FEN, "currency": "CNY",
                               "payer_currency": "CNY"}}
        body = json.dumps({"id": str(uuid.uuid4()), "create_time": wechat_time(now), "resource_type": "encrypt-resource",
                           "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
                           "resource": {"original_type": "transaction",
                                        **aes_encrypt(APIV3_KEY, json.dumps(resource, ensure_ascii=False),
                                                      "transaction")}}, ensure_ascii=False)
        stamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
        out.append(({"Content-Type": "application/json", "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                     "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                     "Wechatpay-Signature": rsa_sign(key, f"{stamp}\n{nonce}\n{body}\n")}, body.encode()))
    return out


async def load(url: str, notifications: list[tuple[dict[str, str], bytes]], seconds: float,
               concurrency: int) -> dict:
    """Warm up, then keep ``concurrency`` notifications in flight for ``seconds`` (or until all are sent)."""
    import aiohttp

    latencies: list[float] = []
    counts = {"accepted": 0, "failed": 0}
    items = iter(notifications)

    async def send(session: aiohttp.ClientSession, headers, body, timed: bool) -> None:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            counts["accepted" if resp.status == 204 else "failed"] += 1
        if timed:
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        warm = [next(items) for _ in range(min(WARM_UP, len(notifications)))]
        for first in range(0, len(warm), concurrency):
            await asyncio.gather(*(send(session, h, b, False) for h, b in warm[first:first + concurrency]))
        begun = time.perf_counter()
        deadline = begun + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                item = next(items, None)
                if item is None:
                    return
                await send(session, *item, True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begun
    latencies.sort()

    def pct(q: float) -> float:
        return round(percentile(latencies, q) * 1000, 2) if latencies else 0.0

    return {"measured": len(latencies), "rate_per_s": round(len(latencies) / elapsed, 1), "p99_ms": pct(0.99),
            "p50_ms": pct(0.5), "seconds": round(elapsed, 1), "accepted": counts["accepted"],
            "failed": counts["failed"]}


def register(bench_sub) -> None:
    """Add ``pvsettle bench pay`` to the CLI's bench sub-commands."""
    parser = bench_sub.add_parser("pay", help="WeChat Pay: verified notifications recorded per second")
    parser.add_argument("--seconds", type=int, default=60, help="measured seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="notifications kept in flight")
    parser.add_argument("--workers", type=int, default=1, help="server processes (more than 1 needs Redis)")
    parser.add_argument("--max-rate", type=int, default=600, help="[1/s] orders seeded = this × seconds")
    parser.set_defaults(func=lambda args: print(json.dumps(
        bench_pay(args.seconds, args.concurrency, args.workers, args.max_rate))) or 0)


def main(argv: list[str] | None = None) -> int:
    """``python -m server.bench.pay load URL …``: the load generator, as its own process."""
    parser = argparse.ArgumentParser(prog="python -m server.bench.pay")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("load")
    run.add_argument("url")
    run.add_argument("--orders", required=True)
    run.add_argument("--platform-key", required=True)
    run.add_argument("--serial", required=True)
    run.add_argument("--seconds", type=float, default=60)
    run.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    numbers = json.loads(Path(args.orders).read_text())
    pem = Path(args.platform_key).read_text()
    chunks = [numbers[i:i + 2000] for i in range(0, len(numbers), 2000)]
    # signing is ~1.4 ms each: both cores while the server is idle, before the clock starts
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        notifications = [n for part in pool.map(_build, chunks, [pem] * len(chunks), [args.serial] * len(chunks))
                         for n in part]
    print(json.dumps(asyncio.run(load(args.url, notifications, args.seconds, args.concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
