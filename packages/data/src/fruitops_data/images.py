"""Decoding image bytes the same way everywhere: EXIF orientation applied, RGB, optional resize.

`try_decode` is the one decode-or-quarantine rule that ingest (the manifest), scoring and
monitoring share: the same limits, the same errors caught, the same reasons recorded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: Pixels above which an image is refused as a decompression bomb: Pillow's own warning
#: threshold (~89 Mpx), applied as a hard limit by ingest, scoring and monitoring alike.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def open_image(data: bytes) -> Image.Image:
    """The bytes opened by Pillow (header only), refused over `MAX_PIXELS`."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if MAX_PIXELS and width * height > MAX_PIXELS:
        image.close()
        raise Image.DecompressionBombError(
            f"{width}x{height} = {width * height} pixels, over the limit of {MAX_PIXELS}"
        )
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled to 8 bits (Pillow's convert() clips them)."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), "L")


def decode_rgb(data: bytes, size: int | None = None, draft: int | None = None) -> Image.Image:
    """Bytes → an RGB image (CMYK, greyscale, palette, RGBA, 16-bit all converted).

    With ``size`` the image is resized to ``size``×``size``; JPEG draft mode lets the decoder
    skip detail that the resize would throw away anyway. ``draft`` alone asks for that
    reduced decoding (at least ``draft`` pixels a side) without the resize.
    """
    image = open_image(data)
    least = size or draft
    if least is not None and image.format == "JPEG":
        image.draft("RGB", (least, least))
    image = ImageOps.exif_transpose(image)
    if image.mode in HIGH_DEPTH_MODES:
        image = _to_8bit(image)
    if image.mode != "RGB":
        image = (
            image.convert("RGBA").convert("RGB")
            if "A" in image.mode or image.mode == "P"
            else image.convert("RGB")
        )
    if size is not None:
        image = image.resize((size, size), Image.BILINEAR)
    return image


def decode_array(data: bytes, size: int | None = None) -> np.ndarray:
    """Bytes → HxWx3 uint8 array."""
    return np.asarray(decode_rgb(data, size), dtype=np.uint8)


#: What a failed decode raises: Pillow's own errors and the OS/parse errors of broken files.
DECODE_ERRORS = (
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
)


def decode_failure_reason(err: BaseException) -> str:
    """The quarantine reason for an exception from decoding: the same words everywhere."""
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"decompression bomb: {err}"
    if isinstance(err, UnidentifiedImageError):
        return "not an image (Pillow cannot identify the format)"
    return f"undecodable: {err}"


@dataclass(frozen=True)
class Decoded:
    """One file's bytes decoded by the shared rules, or the reason they could not be."""

    image: Image.Image | None
    """RGB, EXIF-oriented, fully decoded; resized to ``size``×``size`` when asked."""
    stored_size: tuple[int, int] | None
    """Width and height as stored in the file (before orientation or resizing)."""
    format: str | None
    mode: str | None
    """Pillow's mode of the stored image (``L``, ``CMYK``, ``I;16``…)."""
    error: str | None
    """The quarantine reason (`decode_failure_reason`); None when decoded."""


def try_decode(data: bytes, size: int | None = None, draft: int | None = None) -> Decoded:
    """`decode_rgb` that never raises for bad bytes: an empty, truncated, unknown or oversized
    file comes back with its reason instead."""
    if not data:
        return Decoded(None, None, None, None, "empty file (0 bytes)")
    try:
        with open_image(data) as probe:  # the header: size, format and mode as stored
            stored, fmt, mode = probe.size, probe.format, probe.mode
        image = decode_rgb(data, size, draft)
        image.load()  # the whole decode (decode_rgb may hand back a lazy image): truncation
        return Decoded(image, stored, fmt, mode, None)
    except DECODE_ERRORS as err:
        return Decoded(None, None, None, None, decode_failure_reason(err))
