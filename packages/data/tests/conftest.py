from pathlib import Path

import pytest

REAL_SAMPLE = Path(__file__).parent / "fixtures" / "fruits-real-sample"


@pytest.fixture
def real_sample() -> Path:
    """24 real fruit photos in the Kaggle layout (see fixtures/fruits-real-sample/SOURCE.md)."""
    return REAL_SAMPLE
