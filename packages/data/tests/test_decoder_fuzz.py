"""The shared decoder under fuzzing: whatever bytes a file holds, `try_decode` returns an RGB
image or a quarantine reason, and never raises (one raise stopped a whole ingest).

Bounded: a fixed number of examples (about ten seconds here), seeded with the TIFFs that
crashed Pillow's parser and one small file of every accepted format.
"""

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fruitops_data.images import FORMATS, try_decode

CRASHES = Path(__file__).parent / "fixtures" / "decoder-crashes"


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    seeds = [path.read_bytes() for path in sorted(CRASHES.glob("*"))]
    for fmt in FORMATS:
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    sixteen = io.BytesIO()
    Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16)).save(sixteen, "PNG")
    return [*seeds, sixteen.getvalue()]


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "int"]))
        if kind == "flip" and data:
            data[where] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[where : where + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "int" and len(data) >= where + 4:  # a header field set to an extreme
            data[where : where + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\0\0\0\0",
                                                             b"\x7f\xff\xff\xff"]))  # fmt: skip
    return bytes(data)


@pytest.mark.parametrize("path", sorted(CRASHES.glob("*")), ids=lambda p: p.name)
def test_files_that_crashed_pillow_are_quarantine_reasons(path):
    decoded = try_decode(path.read_bytes())
    assert decoded.image is None and decoded.error.startswith("undecodable")


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated())
def test_no_bytes_make_the_decoder_raise(data):
    decoded = try_decode(data)
    if decoded.error is None:
        assert decoded.image is not None and decoded.image.mode == "RGB"
    else:
        assert decoded.image is None and decoded.error


def _png16(width: int, height: int) -> bytes:
    values = (np.arange(width * height, dtype=np.uint32) % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values.reshape(height, width)).save(buffer, "PNG")
    return buffer.getvalue()


def test_sixteen_bit_images_decode_without_float64_copies():
    """A 9 Mpx 16-bit PNG (~100 KB) took 224 MiB as float64 copies: now integer shifts on
    one copy (a single float64 copy alone would be 72 MiB)."""
    import tracemalloc

    data = _png16(3000, 3000)
    tracemalloc.start()
    try:
        decoded = try_decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.error is None and decoded.mode == "I;16"
    assert np.asarray(decoded.image)[0, 256, 0] == 1  # 256 >> 8: scaled, not clipped
    assert peak < 48 * 1024**2, peak


def test_high_depth_images_have_a_lower_pixel_limit():
    from fruitops_data.images import MAX_HIGH_DEPTH_PIXELS, MAX_PIXELS

    assert MAX_HIGH_DEPTH_PIXELS < MAX_PIXELS
    decoded = try_decode(_png16(6000, 5000))  # 30 Mpx of 16 bits: 8-bit ones may be larger
    assert decoded.error.startswith("decompression bomb") and "I;16" in decoded.error


@pytest.mark.parametrize("keep", [300, 0.5])
def test_a_cut_off_jpeg_is_said_to_be_truncated_wherever_it_ends(keep):
    """Pillow says "Truncated File Read" or "image file is truncated (9 bytes not processed)"
    depending on where the file stops; the reason names the cause either way."""
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG", quality=90)
    good = buffer.getvalue()
    cut = good[:keep] if isinstance(keep, int) else good[: int(len(good) * keep)]
    decoded = try_decode(cut, 64)
    assert decoded.image is None
    assert decoded.error.startswith("undecodable: truncated, the file ends before its image does")
