"""Decoding image bytes the same way everywhere: EXIF orientation applied, RGB, optional resize."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def decode_rgb(data: bytes, size: int | None = None) -> Image.Image:
    """Bytes → an RGB image (CMYK, greyscale, palette, RGBA, 16-bit all converted).

    With ``size`` the image is resized to ``size``×``size``; JPEG draft mode lets the decoder
    skip detail that the resize would throw away anyway.
    """
    image = Image.open(io.BytesIO(data))
    if size is not None and image.format == "JPEG":
        image.draft("RGB", (size, size))
    image = ImageOps.exif_transpose(image)
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
