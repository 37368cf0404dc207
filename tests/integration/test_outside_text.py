"""Text from outside holding NUL, control characters or lone surrogates (settlement.text): at every
boundary a 400 ``invalid_text`` (or a refused row) naming the field, nothing stored, and the same
answer on SQLite and PostgreSQL — which refuses NUL in text where SQLite kept it.

The cases issue #20 saw end in 500 on PostgreSQL are here one by one; the property test over
every text field is test_outside_text_property.py, the bot's refusal test_outside_text_bot.py.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from settlement import models as m
from settlement.readings.ingest import add_collector
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import PNG, login, owner_world
from settlement.clock import utc_now

BAD = ["a\x00b", "a\x01b", "a\x7fb", "a\x85b"]  # NUL, C0, DEL, C1


def assert_invalid_text(body: dict, field: str) -> None:
    assert body["error"]["code"] == "invalid_text", body
    assert field in body["error"]["message"], body


async def assert_fault_refused(api, world, field: str, **request) -> None:
    """A fault report posted with ``request`` (aiohttp's keywords) is 400 ``invalid_text`` naming
    ``field``, and no report is kept."""
    before = await m.FaultReport.filter(plant_id=world.plant.id).count()
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", **request)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), field)
    assert await m.FaultReport.filter(plant_id=world.plant.id).count() == before


@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, _ = await owner_world("TX", "业主甲", "o-owner-tx", settings.mp_appid)
    # in English, so that the message names the field by the word the tests look for
    return world, {**await login(api, fake_wechat, "o-owner-tx"), "Accept-Language": "en"}


@pytest.mark.parametrize("bad", BAD)
async def test_a_fault_report_holding_a_control_character_is_refused_and_not_kept(api, owner, bad):
    world, auth = owner
    await assert_fault_refused(api, world, "text", json={"text": f"逆变器{bad}报警"}, headers=auth)


async def test_a_lone_surrogate_escaped_in_json_is_refused_naming_its_field(api, owner):
    world, auth = owner
    await assert_fault_refused(api, world, "text", data=b'{"text": "x\\ud800y"}',
                               headers={**auth, "Content-Type": "application/json"})


async def test_tab_and_newlines_are_kept_in_multi_line_text(api, owner):
    world, auth = owner
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", json={"text": "第一行\r\n\t第二行"},
                          headers=auth)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["text"] == "第一行\r\n\t第二行"


async def test_a_multipart_fault_report_is_refused_for_its_text_and_for_a_file_name(api, owner):
    world, auth = owner
    form = aiohttp.FormData()
    form.add_field("text", "逆变器\x00报警", content_type="text/plain")  # a part of its own: multipart
    await assert_fault_refused(api, world, "text", data=form, headers=auth)

    # a raw control character in a part's header is refused by aiohttp's parser as malformed; one
    # percent-encoded in RFC 5987's filename* is decoded, so the check must see it (written by hand:
    # aiohttp's client does not write filename*)
    body = (b"--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n" + "逆变器报警".encode()
            + b"\r\n--B\r\nContent-Disposition: form-data; name=\"photos\"; filename*=UTF-8''roof%00.png\r\n"
            b"Content-Type: image/png\r\n\r\n" + PNG + b"\r\n--B--\r\n")
    await assert_fault_refused(api, world, "file name", data=body,
                               headers={**auth, "Content-Type": "multipart/form-data; boundary=B"})


async def test_a_dispute_reason_holding_nul_is_refused_and_the_form_stays_as_it_was(api, owner):
    world, auth = owner
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", json={"reason": "读数\x00不对"}, headers=auth)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), "reason")
    form = await m.ConfirmationForm.get(id=world.form.id)
    assert form.state == m.FormState.SENT and form.dispute_reason is None


async def test_a_prepaid_account_number_holding_nul_is_refused(api, owner):
    _, auth = owner
    resp = await api.post("/api/v1/prepaid/topup", json={"number": "PA-\x00TX", "amount_fen": 100}, headers=auth)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), "number")


async def test_a_subscription_report_is_refused_for_a_template_id_holding_nul(api, owner):
    _, auth = owner
    resp = await api.put("/api/v1/subscriptions", json={"tmpl\x00x": "accept"}, headers=auth)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "invalid_text"
    assert "\x00" not in body["error"]["message"]  # the field is named with the character written out
    assert await m.SubscribeAcceptance.filter(template_id__startswith="tmpl").count() == 1  # owner_world's own


async def test_a_cursor_holding_nul_is_refused_as_text(api, owner):
    _, auth = owner
    resp = await api.get("/api/v1/bills", params={"cursor": "a\x00"}, headers=auth)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), "cursor")


@pytest.mark.parametrize("params, field", [({"state": "sent\x00"}, "state"), ({"limit": "2\x85"}, "limit"),
                                           ({"curs\x01or": "x"}, "curs\\u0001or (a key)")],
                         ids=["a-state", "a-number", "a-parameter-name"])
async def test_query_text_that_is_no_free_text_is_refused_as_text_all_the_same(api, owner, params, field):
    # refused before as "not one of the states" or "not a whole number" (invalid_query): one answer
    # for such text wherever it is sent
    _, auth = owner
    resp = await api.get("/api/v1/forms", params=params, headers=auth)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), field)


@pytest.mark.parametrize("document, field", [({"right": "view\x7f"}, "right"),
                                             ({"right": "view", "ttl_hours": "2\x85"}, "lifetime"),
                                             ({"right": "view", "no\x00te": 1}, "no\\u0000te (a key)")],
                         ids=["a-choice", "a-number-as-text", "an-unknown-key"])
async def test_body_text_that_is_no_free_text_is_refused_as_text_and_nothing_is_shared(api, owner, document, field):
    world, auth = owner
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/shares", json=document, headers=auth)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), field)
    assert await m.PlantShare.all().count() == 0


# --- ingest -------------------------------------------------------------------------------------


@pytest.fixture
async def collector(api):
    await add_collector("head-end-tx", "k" * 32)
    return {"Authorization": "Bearer " + "k" * 32}


async def test_a_reading_row_holding_nul_is_refused_on_its_own_naming_the_field(api, collector):
    rows = [{"meter": "M\x00X", "register": "00010000", "read_at": "2026-11-01T00:00:00+08:00", "value": "1"},
            {"meter": "M-1", "register": "0001\ud8000", "read_at": "2026-11-01T00:00:00+08:00", "value": "1"},
            {"meter": "M-1", "register": "00010000", "read_at": "2026-11-01T00:00\x1f", "value": "1"}]
    before = await m.Reading.all().count()
    resp = await api.post("/ingest/v1/readings", data=json.dumps({"readings": rows}),
                          headers={**collector, "Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    results = (await resp.json())["results"]
    assert [r["status"] for r in results] == ["rejected"] * 3
    assert [r["error"]["code"] for r in results] == ["invalid_text"] * 3
    for result, field in zip(results, ("meter", "register", "read_at")):
        assert f"row {result['index']}: field '{field}'" in result["error"]["message"]
    assert await m.Reading.all().count() == before


async def test_a_telemetry_sample_holding_nul_is_refused_and_the_rest_kept(api, collector, owner):
    world, _ = owner
    device = await m.TelemetryDevice.create(plant=world.plant, serial="INV-TX-1")
    now = utc_now().replace(microsecond=0)
    samples = [{"device": "INV\x00TX", "ts": now.isoformat(), "power_w": 1000, "energy_wh": 5000},
               {"device": device.serial, "ts": now.isoformat(), "status": "ok\x00", "power_w": 1, "energy_wh": 1},
               {"device": device.serial, "ts": now.isoformat(), "power_w": 1000, "energy_wh": 5000}]
    resp = await api.post("/ingest/v1/telemetry", json={"samples": samples}, headers=collector)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["created"] == 1 and answer["rejected"] == 2
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(0, "invalid_text"), (1, "invalid_text")]
    assert "field 'device'" in answer["errors"][0]["message"] and "field 'status'" in answer["errors"][1]["message"]


@pytest.mark.parametrize("bad", ["\x0c", "\x1f", "\x85"])
async def test_a_sample_time_with_a_control_character_python_takes_for_whitespace_is_refused(api, collector, owner,
                                                                                             bad):
    # fromisoformat() after strip() reads it, so the batch's quick path once took the sample
    world, _ = owner
    device = await m.TelemetryDevice.create(plant=world.plant, serial="INV-TX-2")
    ts = utc_now().replace(microsecond=0).isoformat()
    resp = await api.post("/ingest/v1/telemetry", headers=collector, json={"samples": [
        {"device": device.serial, "ts": bad + ts, "power_w": 1000, "energy_wh": 5000}]})
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["created"] == 0 and [e["code"] for e in answer["errors"]] == ["invalid_text"]
    assert "field 'ts'" in answer["errors"][0]["message"]
    assert await m.TelemetrySample.all().count() == 0


async def test_a_usage_batch_holding_nul_is_refused_whole(api, collector):
    resp = await api.post("/ingest/v1/usage", json={"usage": [
        {"meter": "W\x00-1", "start": "2026-11-01T00:00:00+08:00", "quantity": "1"}]}, headers=collector)
    assert resp.status == 400
    assert_invalid_text(await resp.json(), "row 0: meter")


# --- WeChat Pay notifications -------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"id": "EV-1", "summary": "\\u0000"}', b'{"id": "EV-\x00"}',
                                  b'{"id": "EV-1", "resource": {"\\ud800": 1}}',
                                  b'{"id": "EV-1", "summary": "\\b"}', b'{"id": "EV-1", "summary": "\\f"}'],
                         ids=["escaped-nul", "raw-nul", "surrogate-key", "short-escape-backspace",
                              "short-escape-form-feed"])
async def test_a_notification_holding_a_refused_character_is_refused_unread_and_kept_without_its_body(api, body):
    resp = await api.post("/pay/notify", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    answer = await resp.json()
    assert answer["code"] == "FAIL" and "text may not hold" in answer["message"]
    kept = await m.PayNotification.all()
    assert len(kept) == 1 and kept[0].body == "" and kept[0].status == 400
    assert await m.Payment.all().count() == 0


# --- imports ------------------------------------------------------------------------------------


async def test_the_readings_csv_import_refuses_a_row_holding_a_control_character(db, tmp_path, capsys):
    from server.cli.readings import _import
    from webapp.settings import Settings, energy_limits

    path = tmp_path / "readings.csv"
    path.write_text("meter,register,read_at,value\nM\x01X,00010000,2026-11-01 00:00,12.5\n", encoding="utf-8")
    counts = await _import(path, "imported", energy_limits(Settings()))
    assert counts == {"rows": 1, "created": 0, "duplicates": 0, "flagged": 0, "rejected": 1}
    refused = json.loads(capsys.readouterr().err.strip())
    assert refused["line"] == 2 and refused["error"]["code"] == "invalid_text"
    assert "line 2: field 'meter'" in refused["error"]["message"]
    assert await m.Reading.all().count() == 0


async def test_the_payment_import_refuses_a_row_holding_nul_and_records_nothing(db, notify_apps):
    from settlement.pay.offline_import import import_offline_payments

    row = {"bill": "B-1", "amount_fen": "100", "channel": "bank_transfer", "reference": "TX\x00-1",
           "paid_at": "2026-11-01"}
    result = await import_offline_payments([("line 2", row)], source="import:payments.csv", apps=notify_apps)
    assert result.counts() == {"rows": 1, "recorded": 0, "duplicates": 0, "rejected": 1}
    assert result.rejected[0]["error"]["code"] == "invalid_text"
    assert "reference" in result.rejected[0]["error"]["message"]
    assert await m.Payment.all().count() == 0


async def test_an_mqtt_topic_naming_a_device_with_a_control_character_is_refused(db):
    from settlement.telemetry.ingest import ingest_samples

    ts = utc_now().replace(microsecond=0).isoformat()
    result = await ingest_samples([{"ts": ts, "power_w": 1, "energy_wh": 1}], received_from="mqtt:logger",
                                  device_serial="INV\x01TX")
    assert result.errors[0].code == "invalid_text" and "the device of the topic" in result.errors[0].message
    assert await m.TelemetrySample.all().count() == 0


@pytest.mark.parametrize("topic, sample", [
    ("pvsettle/telemetry/gw-\x85/INV-1", {}), ("pvsettle/telemetry/gw-tx/INV\x01", {}),
    ("pvsettle/telemetry/gw-tx/INV-1", {"device": "INV\x00"}), ("pvsettle/telemetry/gw-tx/INV-1", {"ts": "\x7f"})],
    ids=["collector-of-the-topic", "device-of-the-topic", "device-of-a-sample", "time-of-a-sample"])
async def test_an_mqtt_message_holding_a_control_character_is_refused_naming_where(db, caplog, topic, sample):
    # through what the subscriber does with each message the broker hands it (no broker needed)
    from server.telemetry_mqtt import BrokerAddress, TelemetrySubscriber
    from tests.integration.test_telemetry_ingest import make_plant

    await make_plant("PV-TX", {"INV-1": 8000})
    await add_collector("gw-tx", "k" * 32)
    subscriber = TelemetrySubscriber(BrokerAddress.from_url("mqtt://127.0.0.1:9/pvsettle/telemetry"))
    ts = utc_now().replace(microsecond=0).isoformat()
    payload = json.dumps({"key": "k" * 32, "samples": [{"ts": ts, "power_w": 1, "energy_wh": 1, **sample}]})
    with caplog.at_level("WARNING", logger="pvsettle.telemetry.mqtt"):
        await subscriber.handle(topic, payload.encode())
        await subscriber.flush()
    said = " ".join(getattr(r, "reason", None) or getattr(r, "first", "") for r in caplog.records)
    where = {"ts": "field 'ts'", "device": "field 'device'"}.get(next(iter(sample), None), "the topic")
    assert f"{where} holds" in said and "text may not hold" in said, said
    assert all("\x00" not in getattr(r, "topic", "") and "\x85" not in getattr(r, "topic", "")
               for r in caplog.records)  # the log shows the topic's characters written out
    assert await m.TelemetrySample.all().count() == 0
