"""Photo storage: how photos are checked, a small port and its local-disk adapter, owners' quotas.

Owners attach photos to disputes and fault reports. The API checks each one (:func:`check_photo`)
and hands the result to a :class:`PhotoStore`, which answers a key the database keeps.
:class:`LocalDiskStore` writes under ``<var>/uploads/<2 hex>/<random>.<ext>``; an object store
adapter would keep the same interface.

A photo is judged by decoding it, never by its name, declared type or first bytes: at most
5 MB as uploaded, JPEG or PNG by content, at most :data:`MAX_PHOTO_PIXELS` pixels as its header
declares (checked before anything is decoded: a 65535×65535 PNG of a few bytes is refused
unopened), then verified (PNG checksums) and decoded in full by Pillow, so a truncated file, a
header followed by something else (HTML, a script) or a PNG with bytes after its end is refused.
What is stored is not the upload but the decoded pixels encoded anew — turned upright by its EXIF
orientation, at most :data:`MAX_STORED_SIDE` pixels on its long side, without EXIF (GPS, camera,
time), text chunks or colour profile — so nothing but an image reaches the disk or a browser.

Each owner's stored photos may take :func:`check_quota`'s quota (``PVSETTLE_PHOTO_QUOTA_MB``).

Exceptions::

    settlement.errors.InvalidInput
    ├── PhotoRefused          not a whole JPEG/PNG, empty, too large, too many pixels
    └── TooManyPhotos         more than MAX_PHOTOS on one dispute or report
    settlement.errors.Conflict
    └── QuotaExceeded         the owner's photos would take more than their quota
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import secrets
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps
from tortoise.functions import Sum

from settlement.errors import Conflict, InvalidInput
from settlement.models import Attachment, Plant

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PHOTOS = 6
# A 48-megapixel phone camera's full frame passes; its decoded RGB is ~150 MB, which bounds what
# one upload can make the server hold. Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS, ~89 M,
# with a warning above it) is looser, so ours is checked first.
MAX_PHOTO_PIXELS = 50_000_000
MAX_STORED_SIDE = 4096  # [px] plenty to read a meter's display; bounds what is kept and served
JPEG_QUALITY = 85
_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"))
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: a PNG ends with them
# What Pillow raises on bytes that are not a whole image of the format (it names no one base class)
_UNDECODABLE = (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error)


class PhotoRefused(InvalidInput):
    """``message`` for developers; ``photo`` names the photo for people (the catalogue's
    ``error.photo_refused``): its file name, or its place in the request."""

    code = "photo_refused"

    def __init__(self, message: str, *, photo: str, why: str, **why_params: object):
        from settlement import i18n  # the catalogue's parameter type; imported here, storage loads early

        super().__init__(message, params={"photo": photo, "why": i18n.Ref(f"photo_problem.{why}", why_params)})


class TooManyPhotos(InvalidInput):
    code = "too_many_photos"


class QuotaExceeded(Conflict):
    code = "photo_quota_exceeded"


@dataclass(frozen=True)
class CheckedPhoto:
    """A photo as it is stored: the re-encoded image, not the upload."""

    data: bytes
    content_type: str
    extension: str
    sha256: str
    width: int  # [px]
    height: int  # [px]


def check_photo(data: bytes, *, name: str = "photo", shown: str | None = None) -> CheckedPhoto:
    """The upload ``data`` decoded and encoded anew, or PhotoRefused naming it by ``name``.

    CPU-bound (a large photo takes a good part of a second): call it off the event loop.
    """
    if not data:
        raise PhotoRefused(f"{name} is empty", photo=shown or name, why="empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRefused(f"{name} is larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MB",
                           photo=shown or name, why="too_large", mb=MAX_PHOTO_BYTES // (1024 * 1024))
    kind = next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)
    if kind is None:
        raise PhotoRefused(f"{name} is not a JPEG or PNG image", photo=shown or name, why="not_an_image")
    if kind == "PNG" and not data.endswith(_PNG_END):
        raise PhotoRefused(f"{name} is not a whole PNG image: it is cut short or has something after its end",
                           photo=shown or name, why="cut_short")
    undecodable = PhotoRefused(f"{name} is not a whole {kind} image: it cannot be decoded",
                               photo=shown or name, why="undecodable")
    with warnings.catch_warnings():
        # Pillow warns of a possible decompression bomb before it refuses one: refuse at once
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[kind]) as probe:
                width, height = probe.size
                if width * height > MAX_PHOTO_PIXELS:
                    raise PhotoRefused(f"{name} has {width}×{height} pixels, more than "
                                       f"{MAX_PHOTO_PIXELS // 1_000_000} million", photo=shown or name, why="pixels",
                                       width=width, height=height, million=MAX_PHOTO_PIXELS // 1_000_000)
                probe.verify()  # checksums and structure; the image is spent after it
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                image.load()  # every pixel: a truncated file fails here
                encoded = _encode_anew(image, kind)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):  # Pillow's guard, at open
            raise PhotoRefused(f"{name} declares more than {MAX_PHOTO_PIXELS // 1_000_000} million pixels",
                               photo=shown or name, why="too_many_pixels",
                               million=MAX_PHOTO_PIXELS // 1_000_000) from None
        except _UNDECODABLE:
            raise undecodable from None
    content_type, extension = _FORMATS[kind]
    return CheckedPhoto(encoded.getvalue(), content_type, extension, hashlib.sha256(encoded.getvalue()).hexdigest(),
                        width, height)


def _encode_anew(image: Image.Image, kind: str) -> io.BytesIO:
    """The decoded pixels, upright, bounded in size, encoded without any metadata."""
    upright = ImageOps.exif_transpose(image)  # the orientation EXIF gave, before EXIF is dropped
    upright.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE))  # only ever shrinks
    # Pillow's encoders take EXIF, ICC profiles and text from ``info`` unless told otherwise:
    # keep only what is part of the picture (a palette's transparent entry)
    upright.info = {k: v for k, v in upright.info.items() if k == "transparency"}
    out = io.BytesIO()
    if kind == "JPEG":
        pixels = upright if upright.mode in ("RGB", "L") else upright.convert("RGB")
        pixels.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)  # no exif=, no icc_profile=
    else:
        pixels = upright if upright.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else upright.convert("RGBA")
        pixels.save(out, format="PNG", optimize=True)  # no pnginfo=: no text chunks
    return out


async def check_photo_off_loop(data: bytes, *, name: str = "photo", shown: str | None = None) -> CheckedPhoto:
    """:func:`check_photo` in a worker thread (Pillow decodes without holding the GIL)."""
    return await asyncio.to_thread(check_photo, data, name=name, shown=shown)


async def stored_bytes_of_owner(owner_id: int) -> int:
    """[bytes] of the photos stored for the owner's plants, on disputes and on fault reports."""
    total = 0
    for owner_field in ("form__cycle__plant__owner_id", "fault__plant__owner_id"):
        # one group, the owner's: tortoise groups an annotation by every column unless told
        sums = await (Attachment.filter(**{owner_field: owner_id}).annotate(total=Sum("size_bytes"))
                      .group_by(owner_field).values_list("total", flat=True))
        total += sum(int(s or 0) for s in sums)
    return total


async def check_quota(plant_id: int, photos: list[CheckedPhoto], quota_bytes: int) -> None:
    """Refuse (QuotaExceeded) photos that would take the plant's owner over ``quota_bytes``.

    Checked before storing; two uploads at the same moment may pass it together and overshoot
    by one request's photos (at most 6 × 5 MB), which a quota can bear.
    """
    if not photos:
        return
    owner_id = (await Plant.filter(id=plant_id).values_list("owner_id", flat=True))[0]
    used = await stored_bytes_of_owner(owner_id)
    adding = sum(len(p.data) for p in photos)
    if used + adding > quota_bytes:
        mb = 1024 * 1024
        raise QuotaExceeded(f"these photos ({adding / mb:.1f} MB) would take the owner's photos to "
                            f"{(used + adding) / mb:.1f} MB, over their {quota_bytes / mb:.0f} MB: "
                            "ask staff to remove old ones", params={"quota_mb": f"{quota_bytes / mb:.0f}"})


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
