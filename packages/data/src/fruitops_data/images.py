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
#: The same limit for 16-bit, 32-bit and float images, whose pixels take 2–4 bytes each
#: before the conversion to 8 bits: a 16-bit frame of a 24 Mpx camera fits.
MAX_HIGH_DEPTH_PIXELS = 25_000_000
#: The formats FruitOps decodes; any other is "not an image" (Pillow knows ~40 formats, each
#: a parser an attacker could reach through a file named .jpg). JPEG's opener also reads
#: phones' multi-picture JPEGs, which Pillow then calls MPO.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")


def open_image(data: bytes) -> Image.Image:
    """The bytes opened by Pillow (header only) in one of `FORMATS`, refused over the pixel
    limit of their depth."""
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    limit = MAX_HIGH_DEPTH_PIXELS if image.mode in HIGH_DEPTH_MODES else MAX_PIXELS
    if limit and width * height > limit:
        image.close()
        depth = f" ({image.mode}, more than 8 bits a pixel)" if limit != MAX_PIXELS else ""
        raise Image.DecompressionBombError(
            f"{width}x{height} = {width * height} pixels{depth}, over the limit of {limit}"
        )
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled to 8 bits (Pillow's convert() clips them),
    in place on one copy of the pixels: integer shifts for integers, float32 for floats; no
    float64 copy of the whole image (a 9 Mpx 16-bit PNG took 224 MiB that way)."""
    values = np.array(image)  # the one copy, writable
    if values.dtype.kind == "f":  # "F": float32, scaled by its maximum when above 255
        np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(values.max(initial=0))
        if top > 255:
            np.multiply(values, np.float32(255.0 / top), out=values, casting="unsafe")
        np.clip(values, 0, 255, out=values)
        return Image.fromarray(values.astype(np.uint8), "L")
    if values.dtype.kind == "i":
        np.clip(values, 0, None, out=values)  # "I" is signed: negatives are black
    top = int(values.max(initial=0))
    shift = 8 if image.mode.startswith("I;16") else 0  # 16 bits → 8, as 65535 → 255
    while (top >> shift) > 255:  # "I" holding more than 8 bits: its own range
        shift += 1
    np.right_shift(values, shift, out=values)
    return Image.fromarray(values.astype(np.uint8), "L")


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
    ImageOps.exif_transpose(image, in_place=True)  # (not in place, it copies every image)
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


#: What a failed decode raises: anything. Pillow's parsers also raise TypeError,
#: OverflowError, IndexError… on malformed files (a 332-byte TIFF raised TypeError), and each
#: is the file's fault, never a reason to stop a run: every exception becomes a quarantine
#: reason (`decode_failure_reason`).
DECODE_ERRORS = (Exception,)


def decode_failure_reason(err: BaseException) -> str:
    """The quarantine reason for an exception from decoding: the same words everywhere."""
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"decompression bomb: {err}"
    if isinstance(err, UnidentifiedImageError):
        return f"not an image in a format FruitOps decodes ({', '.join(FORMATS)})"
    if isinstance(err, (OSError, SyntaxError, ValueError)):
        if "truncated" in str(err).lower():  # Pillow's words for it vary with where it ends
            return f"undecodable: truncated, the file ends before its image does ({err})"
        return f"undecodable: {err}"
    return f"undecodable: {type(err).__name__}: {err}"


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
