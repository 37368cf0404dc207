"""Photo storage: a small port and its local-disk adapter.

Owners attach photos to disputes and fault reports. The API checks each one
(:func:`check_photo`: at most 5 MB, JPEG or PNG judged by its magic bytes, never by the name or
the declared type) and hands the bytes to a :class:`PhotoStore`, which answers a key the database
keeps. :class:`LocalDiskStore` writes under ``<var>/uploads/<2 hex>/<random>.<ext>``; an object
store adapter would keep the same interface.

Exceptions::

    settlement.errors.InvalidInput
    ├── PhotoRefused          not JPEG/PNG, empty, or too large
    └── TooManyPhotos         more than MAX_PHOTOS on one dispute or report
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from settlement.errors import InvalidInput

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 6
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))


class PhotoRefused(InvalidInput):
    code = "photo_refused"


class TooManyPhotos(InvalidInput):
    code = "too_many_photos"


@dataclass(frozen=True)
class CheckedPhoto:
    data: bytes
    content_type: str
    extension: str
    sha256: str


def check_photo(data: bytes, *, name: str = "photo") -> CheckedPhoto:
    """The photo, if it is a JPEG or PNG of 1 byte to 5 MB by its content."""
    if not data:
        raise PhotoRefused(f"{name} is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(f"{name} is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    for magic, content_type, extension in _MAGIC:
        if data.startswith(magic):
            return CheckedPhoto(data, content_type, extension, hashlib.sha256(data).hexdigest())
    raise PhotoRefused(f"{name} is not a JPEG or PNG image")


class PhotoStore(Protocol):
    async def put(self, photo: CheckedPhoto) -> str:
        """Store the photo; returns its key."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class LocalDiskStore:
    """Photos as files under ``root`` (``<var>/uploads``), written off the event loop."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise InvalidInput("not a photo key", code="bad_key")
        return path

    async def put(self, photo: CheckedPhoto) -> str:
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name}.{photo.extension}"
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(photo.data)
            tmp.replace(path)  # never a half-written photo under its key

        await asyncio.to_thread(write)
        return key

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)
