"""`pvsettle faults list | move` against this test's database, as staff would run them (issue #24
point 3): a move goes through the one rule (settlement.owners.faults.set_fault_state), so it is
audited and the owner is told; a refused one changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal

import pytest

from settlement import models as m


async def _pvsettle(settings, *args: str) -> tuple[int, list[dict], str]:
    env = {**os.environ, "PVSETTLE_DATABASE_URL": settings.database_url, "PVSETTLE_REDIS_URL": settings.redis_url,
           "PVSETTLE_MP_APPID": settings.mp_appid, "PVSETTLE_OA_APPID": settings.oa_appid}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server.cli", "faults", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, [json.loads(line) for line in out.decode().splitlines() if line.strip()], err.decode()


async def _world(settings):
    owner = await m.Owner.create(name="孙八")
    identity = await m.WechatIdentity.create(app_id=settings.mp_appid, openid="o-fault-owner-0001", owner=owner)
    plant = await m.Plant.create(code="FLT01", name="厂房屋顶", owner=owner, capacity_kwp=Decimal("40"))
    report = await m.FaultReport.create(plant=plant, text="逆变器报 E21")
    staff = await m.Staff.create(name="运维老李", role=m.StaffRole.OPERATOR)
    return identity, report, staff


async def _state(report_id: int) -> tuple:
    report = await m.FaultReport.get(id=report_id)
    return (report.state, report.staff_note, await m.AuditEvent.filter(action="ChangeFaultState").count(),
            await m.OutboxMessage.filter(event="FaultUpdated").count())


async def test_staff_list_and_move_a_report_and_the_owner_is_told_each_step(db, settings):
    identity, report, staff = await _world(settings)
    code, listed, err = await _pvsettle(settings, "list", "--state", "open")
    assert code == 0, err
    assert [(r["id"], r["plant"], r["state"], r["text"]) for r in listed] == [(report.id, "FLT01", "open", "逆变器报 E21")]
    code, [moved], err = await _pvsettle(settings, "move", f"#{report.id}", "受理", "--staff", str(staff.id),
                                         "--note", "明天上午到场")
    assert code == 0, err
    assert (moved["state"], moved["note"]) == ("in_progress", "明天上午到场")
    code, [moved], err = await _pvsettle(settings, "move", str(report.id), "resolved", "--staff", str(staff.id))
    assert code == 0, err and moved["state"] == "resolved"
    events = await m.AuditEvent.filter(action="ChangeFaultState", entity_id=str(report.id)).order_by("id")
    assert [e.after["state"] for e in events] == ["in_progress", "resolved"]
    assert {e.actor for e in events} == {f"staff:{staff.id}"}
    told = await m.OutboxMessage.filter(event="FaultUpdated").order_by("id")
    assert [(t.recipient, t.payload["data"]["phrase3"]) for t in told] == \
        [(identity.openid, "处理中"), (identity.openid, "已解决")]
    assert (await _pvsettle(settings, "list", "--state", "open"))[1] == []


@pytest.mark.parametrize(("args", "says"), [
    (("999999", "受理"), "no fault report"),
    (("{id}", "open"), "no state a fault report moves to"),
    (("{id}", "关闭"), "no state a fault report moves to"),
    (("x1", "受理"), "is not a report id"),
    (("{id}", "受理", "--note", "到场\x07检查"), "note"),
    (("{id}", "受理", "--note", "长" * 501), "longer than 500"),
])
async def test_hostile_moves_are_refused_and_change_nothing(db, settings, args, says):
    identity, report, staff = await _world(settings)
    before = await _state(report.id)
    code, out, err = await _pvsettle(settings, "move", *[a.format(id=report.id) for a in args],
                                     "--staff", str(staff.id))
    assert code == 2 and out == [] and says in err, err
    assert await _state(report.id) == before
    # the step refused once is still possible
    code, [moved], err = await _pvsettle(settings, "move", str(report.id), "已修复", "--staff", str(staff.id))
    assert code == 0 and moved["state"] == "resolved", err
    code, _, err = await _pvsettle(settings, "move", str(report.id), "受理", "--staff", str(staff.id))
    assert code == 2 and "cannot become in_progress" in err


async def test_only_an_active_operator_or_admin_may_move_a_report(db, settings):
    identity, report, staff = await _world(settings)
    viewer = await m.Staff.create(name="只读", role=m.StaffRole.VIEWER)
    gone = await m.Staff.create(name="离职", role=m.StaffRole.ADMIN, active=False)
    before = await _state(report.id)
    for who in (viewer.id, gone.id, 999999):
        code, out, err = await _pvsettle(settings, "move", str(report.id), "受理", "--staff", str(who))
        assert code == 2 and out == [] and "operator or admin" in err, err
    assert await _state(report.id) == before
