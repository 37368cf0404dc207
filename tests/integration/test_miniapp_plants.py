"""Plants for owners: summaries, generation history from stored data only, and the live stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest

from settlement.telemetry import live
from settlement import models as m
from webapp.keys import redis_key, redis_ns_key
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import login, owner_world
from settlement.clock import LOCAL, UTC, utc_now



@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, _ = await owner_world("PV-H", "常州某厂", "o-owner", settings.mp_appid)
    return world, await login(api, fake_wechat, "o-owner")


def _local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LOCAL)


async def test_history_of_a_day_is_the_15_minute_curve_with_nulls_where_nothing_was_measured(api, owner):
    world, headers = owner
    day = dt.date(2026, 7, 15)
    for hour, minute, wh in ((10, 0, 12_000), (10, 15, 13_500), (12, 30, 20_250)):
        await m.TelemetryRollup.create(plant=world.plant, granularity=m.TelemetryGranularity.QUARTER_HOUR,
                                       bucket_start=_local(2026, 7, 15, hour, minute).astimezone(UTC),
                                       energy_wh=wh, samples=3)
    resp = await api.get(f"/api/v1/plants/{world.plant.id}/history?span=day&at={day}", headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    bars = body["bars"]
    assert len(bars) == 96 and bars[0]["label"] == "00:00" and bars[-1]["label"] == "23:45"
    by_label = {b["label"]: b for b in bars}
    assert by_label["10:00"]["energy_kwh"] == "12.000" and by_label["12:30"]["energy_kwh"] == "20.250"
    assert by_label["11:00"]["energy_kwh"] is None  # no rollup, no sample: unknown, not 0
    assert by_label["10:15"]["self_use_kwh"] is None and by_label["10:15"]["revenue_fen"] is None
    total = body["total"]
    assert total["energy_kwh"] == "45.750"
    # 45.75 kWh × 0.5703 kg/kWh = 26.09 kg CO2; × 0.300 = 13.725 → 13.7 kg coal
    assert total["co2_kg"] == "26.1" and total["coal_kg"] == "13.7"
    assert body["factors"] == {"co2_kg_per_kwh": "0.5703", "coal_kg_per_kwh": "0.300"}


async def test_day_curve_falls_back_to_the_devices_counters(api, owner):
    world, headers = owner
    device = await m.TelemetryDevice.create(plant=world.plant, serial="INV-H1")
    start = _local(2026, 7, 16, 9, 0)
    for i, counter in enumerate((1_000_000, 1_004_000, 1_009_000, 1_015_000)):  # every 15 minutes
        ts = (start + dt.timedelta(minutes=15 * i)).astimezone(UTC)
        await m.TelemetrySample.create(device=device, ts=ts, received_at=ts, power_w=1000, energy_wh=counter)
    body = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=day&at=2026-07-16",
                                headers=headers)).json()
    by_label = {b["label"]: b["energy_kwh"] for b in body["bars"]}
    assert (by_label["09:00"], by_label["09:15"], by_label["09:30"], by_label["09:45"]) == (
        "4.000", "5.000", "6.000", None)
    assert body["total"]["energy_kwh"] == "15.000"
    plants = await (await api.get("/api/v1/plants", headers=headers)).json()
    assert plants["items"][0]["lifetime_kwh"] == "1015.000"  # the latest lifetime counter


async def test_year_bars_take_self_use_export_and_revenue_from_forms_and_bills(api, owner):
    world, headers = owner
    # the fixture's period 2026-09 form is only sent: it does not count until confirmed
    await m.TelemetryRollup.create(plant=world.plant, granularity=m.TelemetryGranularity.MONTH,
                                   bucket_start=_local(2026, 9, 1).astimezone(UTC), energy_wh=1_234_567)
    for day in (1, 2):  # a month without a month rollup is the sum of its day rollups
        await m.TelemetryRollup.create(plant=world.plant, granularity=m.TelemetryGranularity.DAY,
                                       bucket_start=_local(2026, 8, day).astimezone(UTC), energy_wh=50_000)
    body = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=year&at=2026",
                                headers=headers)).json()
    bars = {b["label"]: b for b in body["bars"]}
    assert len(bars) == 12
    assert bars["2026-09"]["energy_kwh"] == "1234.567" and bars["2026-09"]["self_use_kwh"] is None
    assert bars["2026-08"]["energy_kwh"] == "100.000" and bars["2026-01"]["energy_kwh"] is None
    world.form.state = m.FormState.CONFIRMED
    await world.form.save()
    body = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=year&at=2026",
                                headers=headers)).json()
    sep = {b["label"]: b for b in body["bars"]}["2026-09"]
    assert (sep["self_use_kwh"], sep["export_kwh"], sep["revenue_fen"], sep["billing_period"]) == (
        "800.000", "200.000", 123456, "2026-09")
    assert body["total"]["energy_kwh"] == "1334.567" and body["total"]["revenue_fen"] == 123456
    lifetime = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=lifetime",
                                    headers=headers)).json()
    year = {b["label"]: b for b in lifetime["bars"]}["2026"]
    assert year["energy_kwh"] == "1334.567" and year["self_use_kwh"] == "800.000"


async def test_a_month_telemetry_does_not_cover_takes_the_confirmed_forms_generation_marked_as_such(api, owner):
    """The sandbox's case: seeded telemetry starts on the evening of a month's last day, so that
    month's telemetry is 0 kWh while its confirmed form says 1,000 kWh generated."""
    world, headers = owner
    await m.TelemetryRollup.create(plant=world.plant, granularity=m.TelemetryGranularity.DAY,
                                   bucket_start=_local(2026, 9, 30).astimezone(UTC), energy_wh=0)

    async def months() -> dict[str, dict]:
        body = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=year&at=2026",
                                    headers=headers)).json()
        return {b["label"]: b for b in body["bars"]} | {"total": body["total"]}

    bars = await months()  # the form is only sent: what telemetry measured, and how little it covers
    assert {k: bars["2026-09"][k] for k in ("energy_kwh", "source", "reason", "co2_kg")} == {
        "energy_kwh": "0.000", "source": "telemetry", "reason": "telemetry on 1 of 30 days", "co2_kg": "0.0"}
    # a month without any telemetry nor form: null, and why
    assert {k: bars["2026-01"][k] for k in ("energy_kwh", "source", "reason", "co2_kg", "coal_kg")} == {
        "energy_kwh": None, "source": None, "reason": "no telemetry", "co2_kg": None, "coal_kg": None}

    world.form.state = m.FormState.CONFIRMED
    await world.form.save()
    bars = await months()
    # 1,000 kWh × 0.5703 = 570.3 kg CO2, × 0.300 = 300.0 kg coal
    assert {k: bars["2026-09"][k] for k in ("energy_kwh", "source", "reason", "billing_period", "co2_kg",
                                            "coal_kg")} == {
        "energy_kwh": "1000.000", "source": "form", "reason": None, "billing_period": "2026-09",
        "co2_kg": "570.3", "coal_kg": "300.0"}
    assert (bars["total"]["energy_kwh"], bars["total"]["source"]) == ("1000.000", "form")

    body = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=month&at=2026-09",
                                headers=headers)).json()
    days = {b["label"]: b for b in body["bars"]}
    assert (days["2026-09-30"]["energy_kwh"], days["2026-09-30"]["source"]) == ("0.000", "telemetry")
    assert (days["2026-09-29"]["energy_kwh"], days["2026-09-29"]["reason"]) == (None, "no telemetry")
    assert (body["total"]["energy_kwh"], body["total"]["source"]) == ("1000.000", "form")

    lifetime = await (await api.get(f"/api/v1/plants/{world.plant.id}/history?span=lifetime",
                                    headers=headers)).json()
    year = {b["label"]: b for b in lifetime["bars"]}["2026"]
    assert (year["energy_kwh"], year["source"]) == ("1000.000", "form")


async def test_a_day_still_to_come_is_not_yet_and_a_past_one_without_data_no_telemetry(owner):
    from settlement.telemetry import generation

    world, _ = owner
    now = _local(2026, 7, 15, 12, 7)
    bars, total = await generation.history(world.plant.id, "day", dt.date(2026, 7, 15), now)
    by_label = {b.label: b for b in bars}
    assert (by_label["11:00"].reason, by_label["12:00"].reason, by_label["12:15"].reason) == (
        "no telemetry", "no telemetry", "not yet")
    assert (total.energy_wh, total.reason) == (None, "no telemetry")
    _, total = await generation.history(world.plant.id, "day", dt.date(2026, 7, 16), now)
    assert (total.energy_wh, total.reason) == (None, "not yet")


@pytest.mark.parametrize("query", ["span=week", "span=day&at=2026-13-01", "span=day&at=2026-02-30",
                                   "span=month&at=2100-01", "span=year&at=1999",
                                   "span=day&at=%27%3B%20DROP%20TABLE%20plant", "x=1"])
async def test_bad_history_queries_are_400(api, owner, query):
    world, headers = owner
    resp = await api.get(f"/api/v1/plants/{world.plant.id}/history?{query}", headers=headers)
    assert resp.status == 400


async def test_history_at_may_name_a_day_month_or_year_for_any_span(api, owner):
    """The span containing at's first day is shown: one form of at for every span (the document's pattern)."""
    world, headers = owner
    url = f"/api/v1/plants/{world.plant.id}/history"
    by_month = await (await api.get(url, params={"span": "month", "at": "2026-07"}, headers=headers)).json()
    by_day = await (await api.get(url, params={"span": "month", "at": "2026-07-19"}, headers=headers)).json()
    assert by_day == by_month and by_month["bars"][0]["start"].startswith("2026-07-01")
    day = await (await api.get(url, params={"span": "day", "at": "2026"}, headers=headers)).json()
    assert day["bars"][0]["start"].startswith("2026-01-01T00:00")


async def test_plant_list_uses_the_live_state(api, owner):
    world, headers = owner
    app = api.server.app
    now = utc_now()
    await live.publish_state(app[redis_key], app[redis_ns_key], world.plant.id,
                             {"ts": now.isoformat(), "power_w": 41_500, "today_kwh": "123.456"})
    body = await (await api.get("/api/v1/plants", headers=headers)).json()
    plant = body["items"][0]
    assert (plant["status"], plant["power_w"], plant["today_kwh"], plant["right"]) == (
        "online", 41500, "123.456", "owner")
    assert plant["capacity_kwp"] == "50.000" and plant["lifetime_kwh"] is None
    detail = await (await api.get(f"/api/v1/plants/{world.plant.id}", headers=headers)).json()
    assert detail["contract"]["pricing_model"] == "grid_discount" and detail["owner_name"] == "常州某厂"


async def _read_event(resp, timeout: float = 3.0) -> tuple[str, str]:
    """The next SSE event or comment: ("event", data) or ("comment", text)."""
    lines = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if lines:
                    break
                continue
            lines.append(line)
    if lines[0].startswith(":"):
        return "comment", lines[0][1:].strip()
    if lines[0].startswith("retry:"):
        return "retry", lines[0]
    data = "\n".join(x[len("data: "):] for x in lines if x.startswith("data: "))
    return "event", data


async def test_live_stream_sends_the_last_state_then_each_new_one(api, owner):
    world, headers = owner
    app = api.server.app
    client, ns = app[redis_key], app[redis_ns_key]
    await live.publish_state(client, ns, world.plant.id, {"ts": "2026-07-15T02:00:00+00:00", "power_w": 1,
                                                          "today_kwh": "0.5"})
    async with api.get(f"/api/v1/plants/{world.plant.id}/live", headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        assert (await _read_event(resp))[0] == "retry"
        kind, data = await _read_event(resp)
        assert kind == "event" and json.loads(data)["power_w"] == 1
        for power in (2000, 3000):
            started = time.monotonic()
            await live.publish_state(client, ns, world.plant.id,
                                     {"ts": "2026-07-15T02:01:00+00:00", "power_w": power, "today_kwh": "0.6"})
            kind, data = await _read_event(resp)
            assert json.loads(data) == {"plant_id": world.plant.id, "ts": "2026-07-15T02:01:00+00:00",
                                        "power_w": power, "today_kwh": "0.6"}
            assert time.monotonic() - started < 1.0
        # another plant's state is not this stream's business
        await live.publish_state(client, ns, world.plant.id + 1000, {"ts": "x", "power_w": 9, "today_kwh": "0"})
        with pytest.raises(TimeoutError):
            await _read_event(resp, timeout=1.5)


async def test_live_stream_heartbeats_and_ends_with_the_server(api, owner, monkeypatch):
    from miniprogram_api import live as live_api

    monkeypatch.setattr(live_api, "HEARTBEAT_S", 0.2)
    world, headers = owner
    resp = await api.get(f"/api/v1/plants/{world.plant.id}/live", headers=headers)
    assert (await _read_event(resp))[0] == "retry"
    assert await _read_event(resp) == ("comment", "heartbeat")  # no state yet: only heartbeats
    subapp = api.server.app._subapps[0]
    streams = subapp[live_api.live_streams_key]
    assert len(streams.open) == 1
    started = time.monotonic()
    assert live_api.end_streams in subapp.on_shutdown
    await live_api.end_streams(subapp)  # what the server's shutdown calls
    assert time.monotonic() - started < 3 and not streams.open
    with pytest.raises(EOFError):
        while True:
            await _read_event(resp)
    resp.close()


async def test_live_stream_notices_a_client_that_left(api, owner):
    from miniprogram_api import live as live_api

    world, headers = owner
    resp = await api.get(f"/api/v1/plants/{world.plant.id}/live", headers=headers)
    assert (await _read_event(resp))[0] == "retry"
    streams = api.server.app._subapps[0][live_api.live_streams_key]
    assert len(streams.open) == 1
    resp.close()  # the client goes away
    async with asyncio.timeout(3 * live_api.POLL_S + 1):
        while streams.open:
            await asyncio.sleep(0.05)
