"""POST /ingest/v1/usage on the whole server: a collector's interval usage of prepaid meters is
charged as it arrives; a bad row or an unknown meter refuses the batch and stores nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
from prepaid_support import charged_by_day, day_rows, device, expected_daily_fen, prepaid_site  # noqa: F401

from settlement import models as m

KEY = "prepaid-head-end-key-0123456789abcdefghijklmn"
URL = "/ingest/v1/usage"
DAY = dt.date(2026, 3, 2)


async def _post(client, body) -> tuple[int, dict]:
    resp = await client.post(URL, data=json.dumps(body) if not isinstance(body, bytes) else body,
                             headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    return resp.status, await resp.json()


async def test_a_head_end_posts_usage_and_the_day_is_charged(client, settings, device):  # noqa: F811
    await m.Collector.create(name="ami-head-end", key_sha256=hashlib.sha256(KEY.encode()).hexdigest())
    site = await prepaid_site(settings, device)
    profile = np.full(96, 0.4)
    rows = [{"meter": site["meter"].serial, "start": start.isoformat(), "quantity": float(q)}
            for start, q in day_rows(DAY, profile)]
    assert (await client.post(URL, json={"usage": rows})).status == 401
    for bad in ({"usage": rows[:5] + [{**rows[5], "quantity": -1}]}, {"usage": rows[:5] + [{**rows[5], "meter": "NOPE"}]},
                {"usage": "x"}, b"{not json", {"usage": rows[:5] + [{**rows[5], "start": "2026-03-02T10:07:00+08:00"}]}):
        status, answer = await _post(client, bad)
        assert status == 400, answer
        assert answer["error"]["code"] in ("bad_usage", "unknown_meter", "invalid_body", "invalid_json")
    # NaN is not JSON; a batch over the limit is 413 like the other ingest endpoints'
    status, answer = await _post(client, b'{"usage": [{"meter": "x", "start": "x", "quantity": NaN}]}')
    assert (status, answer["error"]["code"]) == (400, "invalid_json")
    status, answer = await _post(client, {"usage": rows * 60})  # 5,760 rows
    assert (status, answer["error"]["code"]) == (413, "too_many_rows") and "5000" in answer["error"]["message"]
    assert not await m.PrepaidUsage.exists()
    status, answer = await _post(client, {"usage": rows})
    assert status == 200
    expected = expected_daily_fen([DAY], {DAY: profile})
    assert answer == {"services": 1, "stored": 96, "changed": 0, "unchanged": 0, "charged_fen": expected[DAY]}
    assert await charged_by_day(site["account"]) == expected
    status, again = await _post(client, {"usage": rows})
    assert (status, again["unchanged"], again["charged_fen"]) == (200, 96, 0)
