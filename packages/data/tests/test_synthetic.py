import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fruitops_data.synthetic import FRUIT_NAMES, SyntheticSpec, generate


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_kaggle_layout_with_csvs(tmp_path: Path):
    spec = SyntheticSpec(classes=3, per_class=10, size=32, seed=1)
    dataset = generate(spec, tmp_path / "a")
    assert sorted(p.name for p in dataset.iterdir()) == [
        "classname.txt",
        "test.csv",
        "test1",
        "train.csv",
        "train1",
        "val.csv",
        "val1",
    ]
    assert sorted(p.name for p in (dataset / "train1").iterdir()) == sorted(FRUIT_NAMES[:3])
    counts = {s: len(list((dataset / s).rglob("*.jpg"))) for s in ("train1", "val1", "test1")}
    assert counts == {"train1": 3 * 6, "val1": 3 * 2, "test1": 3 * 2}  # ≈ 70/15/15
    lines = (dataset / "train.csv").read_text().splitlines()
    assert lines[0] == "image:FILE,category"
    assert lines[1].startswith(f"train/{FRUIT_NAMES[0]}/") and lines[1].endswith(",0")
    with Image.open(next((dataset / "val1").rglob("*.jpg"))) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


def test_deterministic_by_seed(tmp_path: Path):
    spec = SyntheticSpec(classes=2, per_class=5, size=32, seed=4)
    first = digest(generate(spec, tmp_path / "a"))
    assert digest(generate(spec, tmp_path / "b")) == first
    other = SyntheticSpec(classes=2, per_class=5, size=32, seed=5)
    assert digest(generate(other, tmp_path / "c")) != first


def test_classes_are_visibly_different(tmp_path: Path):
    """Each class's mean foreground colour is closer to its own images than to other classes."""
    spec = SyntheticSpec(classes=6, per_class=12, size=48, seed=0)
    dataset = generate(spec, tmp_path)

    def centre_colour(path: Path) -> np.ndarray:
        arr = np.asarray(Image.open(path).convert("HSV"), dtype=float)
        return arr[18:30, 18:30, 0].mean()  # hue at the centre, where the fruit is

    hues = {
        c: [centre_colour(p) for p in sorted((dataset / "train1" / c).glob("*.jpg"))]
        for c in FRUIT_NAMES[:6]
    }
    means = {c: float(np.median(v)) for c, v in hues.items()}
    distinct = len({round(m / 20) for m in means.values()})
    assert distinct >= 5, means


def test_spec_parsing_errors_name_the_key():
    assert SyntheticSpec.parse("classes=5,per_class=9") == SyntheticSpec(classes=5, per_class=9)
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        SyntheticSpec.parse("colour=red")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        SyntheticSpec.parse("classes")
    with pytest.raises(ValueError, match="classes"):
        SyntheticSpec.parse("classes=500")
