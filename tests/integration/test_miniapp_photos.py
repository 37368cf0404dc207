"""Owners' photos through the API: hand-made hostile files refused with a 400 naming the file,
GPS stripped from what is stored, a valid photo's round trip, the headers it is served with, and
each owner's storage quota."""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from PIL import ExifTags, Image

from settlement import models as m
from tests.integration.miniapp_support import *  # noqa: F403
from tests.integration.miniapp_support import client_with_fake_wechat, login, owner_world


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` RGB pixels, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def image_bytes(fmt: str, size=(16, 8), **save) -> bytes:
    out = io.BytesIO()
    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Orientation] = 6  # taken turned: shown rotated 90° clockwise
    exif[ExifTags.Base.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (31.0, 46.0, 12.0),
                                   ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (119.0, 57.0, 0.0)}
    return image_bytes("JPEG", exif=exif.tobytes())


VALID_PNG = image_bytes("PNG")
VALID_JPEG = image_bytes("JPEG", size=(40, 30))

HOSTILE = {
    "png-header-then-html": (b"\x89PNG\r\n\x1a\n<html><script>alert(document.cookie)</script></html>",
                             "is not a whole PNG image"),
    "png-then-html": (VALID_PNG + b"<html><script>alert(1)</script></html>", "is not a whole PNG image"),
    "png-header-html-iend": (b"\x89PNG\r\n\x1a\n<script>alert(1)</script>" + _chunk(b"IEND", b""),
                             "cannot be decoded"),
    "jpeg-3-bytes": (b"\xff\xd8\xff", "cannot be decoded"),
    "jpeg-truncated": (VALID_JPEG[:len(VALID_JPEG) // 2], "cannot be decoded"),
    "png-65535x65535": (png_declaring(65535, 65535), "more than 50 million pixels"),
    "png-8000x7000": (png_declaring(8000, 7000), "has 8000×7000 pixels, more than 50 million"),
    "png-bad-checksum": (VALID_PNG[:30] + bytes([VALID_PNG[30] ^ 0xFF]) + VALID_PNG[31:], "cannot be decoded"),
}


@pytest.fixture
async def owner(api, fake_wechat, settings):
    world, _ = await owner_world("PV-P", "常州某厂", "o-photos", settings.mp_appid)
    return world, await login(api, fake_wechat, "o-photos")


def _fault_form(*photos: tuple[str, bytes]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", "逆变器冒烟")
    for name, data in photos:
        form.add_field("photos", io.BytesIO(data), filename=name, content_type="image/png")
    return form


def _stored_files(settings) -> list[Path]:
    uploads = Path(settings.var_dir) / "uploads"
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_photo_is_refused_naming_the_file(api, owner, settings, case):
    world, headers = owner
    data, says = HOSTILE[case]
    for route in (f"/api/v1/plants/{world.plant.id}/faults", f"/api/v1/forms/{world.form.id}/dispute"):
        form = _fault_form(("ok.png", VALID_PNG), (f"{case}.png", data))
        if route.endswith("/dispute"):
            form = aiohttp.FormData()
            form.add_field("reason", "读数不对")
            form.add_field("photos", io.BytesIO(data), filename=f"{case}.png", content_type="image/png")
        resp = await api.post(route, data=form, headers=headers | {"Accept-Language": "en"})
        assert resp.status == 400, (route, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == "photo_refused"
        assert f"({case}.png)" in error["message"] and says in error["message"], error["message"]
    assert await m.FaultReport.filter(plant_id=world.plant.id).count() == 1  # owner_world's own
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT
    assert _stored_files(settings) == []


async def test_gps_and_all_exif_are_stripped_and_the_photo_is_upright(api, owner, settings):
    world, headers = owner
    upload = jpeg_with_gps()
    with Image.open(io.BytesIO(upload)) as original:  # the hostile file really carries them
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == (31.0, 46.0, 12.0)
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=_fault_form(("gps.jpg", upload)),
                          headers=headers)
    assert resp.status == 201, await resp.text()
    attachment = (await resp.json())["attachments"][0]
    served = await (await api.get(f"/api/v1/attachments/{attachment['id']}", headers=headers)).read()
    (stored,) = _stored_files(settings)
    assert stored.read_bytes() == served and attachment["size_bytes"] == len(served)
    assert b"Exif" not in served and b"TestCam" not in served
    with Image.open(io.BytesIO(served)) as image:
        assert image.format == "JPEG" and len(image.getexif()) == 0
        assert image.size == (8, 16)  # turned by its orientation before EXIF was dropped
        assert "exif" not in image.info and "icc_profile" not in image.info


async def test_valid_photo_round_trip_and_how_it_is_served(api, owner, settings):
    world, headers = owner
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=_fault_form(("meter.png", VALID_PNG)),
                          headers=headers)
    assert resp.status == 201, await resp.text()
    attachment = (await resp.json())["attachments"][0]
    row = await m.Attachment.get(id=attachment["id"])
    resp = await api.get(f"/api/v1/attachments/{attachment['id']}", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == f'inline; filename="photo-{row.id}.png"'
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    served = await resp.read()
    import hashlib

    assert hashlib.sha256(served).hexdigest() == row.sha256 and len(served) == row.size_bytes
    with Image.open(io.BytesIO(served)) as back, Image.open(io.BytesIO(VALID_PNG)) as sent:
        assert back.size == sent.size
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(sent.convert("RGB")))  # PNG: lossless


async def test_a_jpeg_carrying_html_after_its_end_is_stored_without_it(api, owner, settings):
    """Phones write trailers after a JPEG's end, so the file is taken; what is kept is only the image."""
    world, headers = owner
    polyglot = VALID_JPEG + b"<html><script>alert(document.cookie)</script></html>"
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=_fault_form(("p.jpg", polyglot)),
                          headers=headers)
    assert resp.status == 201, await resp.text()
    (stored,) = _stored_files(settings)
    data = stored.read_bytes()
    assert b"<script" not in data and b"<html" not in data and data.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (40, 30)


async def test_each_owner_has_a_photo_quota(settings, aiohttp_client, fake_wechat):
    api = await client_with_fake_wechat(aiohttp_client, dataclasses.replace(settings, photo_quota_mb=1), fake_wechat)
    world, _ = await owner_world("PV-Q", "配额", "o-quota", settings.mp_appid)
    other, _ = await owner_world("PV-O", "别人", "o-other", settings.mp_appid)
    headers = await login(api, fake_wechat, "o-quota")
    noisy = image_bytes("PNG", size=(400, 400))  # ~480 KB of noise, which PNG cannot shrink
    assert 400_000 < len(noisy) < 600_000
    for _ in range(2):
        resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=_fault_form(("n.png", noisy)),
                              headers=headers)
        assert resp.status == 201, await resp.text()
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", data=_fault_form(("n.png", noisy)),
                          headers=headers | {"Accept-Language": "en"})
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "photo_quota_exceeded" and "1 MB" in error["message"]
    form = aiohttp.FormData()
    form.add_field("reason", "读数不对")
    form.add_field("photos", io.BytesIO(noisy), filename="n.png", content_type="image/png")
    resp = await api.post(f"/api/v1/forms/{world.form.id}/dispute", data=form, headers=headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "photo_quota_exceeded"
    assert (await m.ConfirmationForm.get(id=world.form.id)).state == m.FormState.SENT  # nothing changed
    assert len(_stored_files(settings)) == 2
    # the quota is the owner's: another owner's photos are not counted against it
    other_headers = await login(api, fake_wechat, "o-other")
    resp = await api.post(f"/api/v1/plants/{other.plant.id}/faults", data=_fault_form(("n.png", noisy)),
                          headers=other_headers)
    assert resp.status == 201, await resp.text()
    # text alone still goes through when the quota is full
    resp = await api.post(f"/api/v1/plants/{world.plant.id}/faults", json={"text": "还是不发电"}, headers=headers)
    assert resp.status == 201
