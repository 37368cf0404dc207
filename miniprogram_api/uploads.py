"""Multipart bodies with photos: text fields validated by a model, each photo decoded and encoded
anew (:func:`settlement.infra.storage.check_photo`, in a worker thread), all of them within the
owner's room for photos (:func:`read_with_photos`).

Read as a stream, part by part, so a body far above the root app's size limit is refused as soon
as one photo passes 5 MB or a seventh photo starts, without reading the rest. A JSON body (no
photos) is taken too.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from miniprogram_api.common import photo_quota_bytes
from miniprogram_api.registry import invalid, parse_json_body, refused
from settlement import i18n
from settlement import text as outside_text
from settlement.infra import storage
from settlement.infra.storage import (MAX_PHOTO_BYTES, MAX_PHOTOS, CheckedPhoto, PhotoRefused, TooManyPhotos,
                                 check_photo_off_loop)

PHOTO_FIELDS = ("photos", "photo")
MAX_FIELD_BYTES = 8 * 1024
CHUNK = 64 * 1024


def _label(number: int, filename: str | None) -> str:
    """How an error names the photo: its place in the body, and the file's name when it has one."""
    shown = (filename or "").strip()[:60]
    return f"photo {number} ({shown})" if shown else f"photo {number}"


async def _read_limited(part: BodyPartReader, limit: int, refuse: Exception) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > limit:
            raise refuse
    return bytes(data)


async def read_multipart(request: web.Request, model: type[BaseModel]) -> tuple[BaseModel, list[CheckedPhoto]]:
    """The validated text fields and the checked photos of a multipart (or JSON) body."""
    if not request.content_type.startswith("multipart/"):
        return parse_json_body(model, await request.read()), []
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError, HttpProcessingError):
        raise invalid("the multipart body cannot be read", "multipart_unreadable") from None
    fields: dict[str, str] = {}
    photos: list[CheckedPhoto] = []
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise invalid("nested multipart bodies are not taken", "multipart_nested")
            name = outside_text.check("a part's name", part.name or "")
            outside_text.check(f"the file name of part {name!r}", part.filename or "")
            if name in PHOTO_FIELDS:
                if len(photos) == MAX_PHOTOS:
                    raise TooManyPhotos(f"at most {MAX_PHOTOS} photos")
                label = _label(len(photos) + 1, part.filename)
                shown = (part.filename or "").strip()[:60] or f"#{len(photos) + 1}"  # for people: the file's name
                data = await _read_limited(part, MAX_PHOTO_BYTES,
                                           PhotoRefused(f"{label} is larger than {MAX_PHOTO_BYTES // 2**20} MB",
                                                        photo=shown, why="too_large", mb=MAX_PHOTO_BYTES // 2**20))
                photos.append(await check_photo_off_loop(data, name=label, shown=shown))
            elif name in model.model_fields:
                if name in fields:
                    raise invalid(f"{name} is given twice", "given_twice", name=i18n.field_label(name))
                raw = await _read_limited(part, MAX_FIELD_BYTES, invalid(f"{name} is too long", "too_long",
                                                                         name=i18n.field_label(name)))
                try:
                    value = raw.decode(part.get_charset("utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise invalid(f"{name} is not UTF-8 text", "not_utf8", name=i18n.field_label(name)) from None
                fields[name] = outside_text.check(name, value)  # whatever the model makes of it
            else:
                raise invalid(f"unexpected part {name[:40]!r}", "unexpected_part", name=name[:40])
    except (ValueError, AssertionError, HttpProcessingError):  # aiohttp's reader on a body that is not what it says
        raise invalid("the multipart body is malformed", "multipart_malformed") from None
    try:
        return model.model_validate(fields), photos
    except ValidationError as exc:
        raise refused(exc, "invalid_body") from None


def photos_body(text_field: str) -> str:
    """The API description of a body :func:`read_with_photos` reads, its text in ``text_field``."""
    return (f"multipart/form-data with ``{text_field}`` and up to {MAX_PHOTOS} ``photos`` (JPEG or PNG, "
            f"5 MB each, stored re-encoded without metadata), or a JSON body ``{{\"{text_field}\": …}}``. "
            "409 ``photo_quota_exceeded`` when the owner's photos would pass their quota.")


async def read_with_photos(request: web.Request, model: type[BaseModel],
                           plant_id: int) -> tuple[BaseModel, list[CheckedPhoto]]:
    """:func:`read_multipart`, its photos within the room the plant's owner has left for photos
    (409 ``photo_quota_exceeded`` beyond it)."""
    fields, photos = await read_multipart(request, model)
    await storage.check_quota(plant_id, photos, photo_quota_bytes(request))
    return fields, photos
