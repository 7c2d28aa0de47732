"""What the online model makes of each value a request carries as a photo."""

import base64

from fruitops_serving.online_model import photo_bytes

JPEG_START = b"\xff\xd8\xff\xe0" + b"\x00" * 12


def test_base64_text_is_decoded_and_photo_bytes_kept():
    assert photo_bytes(base64.b64encode(JPEG_START).decode()) == JPEG_START
    assert photo_bytes(base64.b64encode(JPEG_START)) == JPEG_START
    assert photo_bytes(JPEG_START) == JPEG_START


def test_bytes_that_only_look_like_base64_stay_as_they_are():
    """MLflow decoded "aGVsbG8=" to b"hello": that is what was sent, not broken base64, and
    decoding it then says it is no image."""
    assert photo_bytes(b"hello") == b"hello"


def test_a_value_that_is_no_bytes_says_what_it_was():
    assert photo_bytes(3.5) == "expected the photo's bytes, got float"
