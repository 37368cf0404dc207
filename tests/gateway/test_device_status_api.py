"""POST /ingest/v1/device-status on the whole server: the collector key, row by row judgement,
the latest report per device, replays from a queue."""

from __future__ import annotations

import datetime as dt

from settlement import models as m
from tests.gateway.conftest import GEN, INV, KEY

URL = "/ingest/v1/device-status"


async def post(client, rows, key=KEY):
    resp = await client.post(URL, json={"statuses": rows}, headers={"Authorization": f"Bearer {key}"})
    return resp.status, await resp.json()


def at(minutes: int) -> str:
    base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    return (base + dt.timedelta(minutes=minutes)).isoformat()


async def test_statuses_are_kept_per_device_latest_first_and_replays_change_nothing(client, server):
    status, answer = await post(client, [
        {"device": GEN, "kind": "meter", "state": "offline", "observed_at": at(0), "code": "timeout",
         "message": "no answer within 2 s"},
        {"device": GEN, "kind": "meter", "state": "offline", "observed_at": at(1), "code": "timeout"},
        {"device": INV, "kind": "inverter", "state": "online", "observed_at": at(0)},
        {"device": "NOPE", "kind": "meter", "state": "online", "observed_at": at(0)},
        {"device": GEN, "kind": "meter", "state": "sleepy", "observed_at": at(0)},
        {"device": GEN, "kind": "meter", "state": "online", "observed_at": at(600)},  # 9 hours ahead
        {"device": GEN, "kind": "meter", "state": "online", "observed_at": "yesterday"},
        {"device": "M\x00", "kind": "meter", "state": "online", "observed_at": at(0)},
        "nonsense",
    ])
    assert status == 200
    assert (answer["stored"], answer["rejected"]) == (3, 6)
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [
        (3, "unknown_device"), (4, "invalid_field"), (5, "ts_in_future"), (6, "invalid_field"),
        (7, "invalid_text"), (8, "invalid_row")]
    gen = await m.FieldDeviceStatus.get(device=GEN)
    assert (gen.state, gen.code, gen.since.isoformat(), gen.observed_at.isoformat()) == (
        "offline", "timeout", at(0), at(1))  # offline since the first report, seen again later

    # the gateway's queue sends the old reports again, then the device is back
    status, answer = await post(client, [
        {"device": GEN, "kind": "meter", "state": "offline", "observed_at": at(0), "code": "timeout"},
        {"device": GEN, "kind": "meter", "state": "offline", "observed_at": at(1), "code": "timeout"},
        {"device": GEN, "kind": "meter", "state": "online", "observed_at": at(5)},
    ])
    assert (answer["stored"], answer["duplicates"], answer["stale"]) == (1, 1, 1)
    gen = await m.FieldDeviceStatus.get(device=GEN)
    assert (gen.state, gen.code, gen.since.isoformat()) == ("online", "", at(5))
    status, answer = await post(client, [  # an outage report arriving after the recovery: stale
        {"device": GEN, "kind": "meter", "state": "offline", "observed_at": at(3), "code": "timeout"}])
    assert answer["stale"] == 1 and (await m.FieldDeviceStatus.get(device=GEN)).state == "online"


async def test_no_key_no_status_and_a_body_of_the_wrong_shape_is_400(client, server):
    status, answer = await post(client, [], key="wrong")
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    resp = await client.post(URL, data=b'{"statuses": {}}', headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_body"
    status, answer = await post(client, [{"device": GEN, "kind": "meter", "state": "online",
                                          "observed_at": at(0)}] * 2001)
    assert status == 413
    assert await m.FieldDeviceStatus.all().count() == 0
