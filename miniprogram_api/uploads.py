"""Multipart bodies with photos: text fields validated by a model, each photo decoded and encoded
anew (:func:`settlement.storage.check_photo`, in a worker thread).

Read as a stream, part by part, so a body far above the root app's size limit is refused as soon
as one photo passes 5 MB or a seventh photo starts, without reading the rest. A JSON body (no
photos) is taken too.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from miniprogram_api.registry import parse_json_body, validation_message
from settlement.errors import InvalidInput
from settlement.storage import (
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    CheckedPhoto,
    PhotoRefused,
    TooManyPhotos,
    check_photo_off_loop,
)

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
        raise InvalidInput("the multipart body cannot be read", code="invalid_body") from None
    fields: dict[str, str] = {}
    photos: list[CheckedPhoto] = []
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise InvalidInput("nested multipart bodies are not taken", code="invalid_body")
            name = part.name or ""
            if name in PHOTO_FIELDS:
                if len(photos) == MAX_PHOTOS:
                    raise TooManyPhotos(f"at most {MAX_PHOTOS} photos")
                label = _label(len(photos) + 1, part.filename)
                data = await _read_limited(part, MAX_PHOTO_BYTES,
                                           PhotoRefused(f"{label} is larger than {MAX_PHOTO_BYTES // 2**20} MB"))
                photos.append(await check_photo_off_loop(data, name=label))
            elif name in model.model_fields:
                if name in fields:
                    raise InvalidInput(f"{name} is given twice", code="invalid_body")
                raw = await _read_limited(part, MAX_FIELD_BYTES, InvalidInput(f"{name} is too long",
                                                                              code="invalid_body"))
                try:
                    fields[name] = raw.decode(part.get_charset("utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise InvalidInput(f"{name} is not UTF-8 text", code="invalid_body") from None
            else:
                raise InvalidInput(f"unexpected part {name[:40]!r}", code="invalid_body")
    except (ValueError, AssertionError, HttpProcessingError):  # aiohttp's reader on a body that is not what it says
        raise InvalidInput("the multipart body is malformed", code="invalid_body") from None
    try:
        return model.model_validate(fields), photos
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc), code="invalid_body") from None
