import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from fruitops_monitoring.drift import drift_decision, drift_report
from fruitops_monitoring.features import FEATURE_COLUMNS, features_for, image_features


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_features_follow_the_picture():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    base = image_features(encode(image))
    dark = image_features(encode(ImageEnhance.Brightness(image).enhance(0.4)))
    blurred = image_features(encode(image.filter(ImageFilter.GaussianBlur(3))))
    assert dark["brightness"] < base["brightness"] * 0.6
    assert blurred["contrast"] < base["contrast"]
    assert (base["width"], base["height"], base["aspect"]) == (80, 60, 80 / 60)
    assert set(base) == set(FEATURE_COLUMNS)


def test_undecodable_images_are_skipped():
    good = encode(Image.new("RGB", (8, 8)))
    frame = features_for(["a", "b"], {"a": good, "b": b"nope"}.__getitem__)
    assert frame["key"].tolist() == ["a"]


def synthetic_features(n: int, seed: int, brightness_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(0.5, 0.1, n) for c in FEATURE_COLUMNS})
    frame["brightness"] += brightness_shift
    frame["mean_r"] += brightness_shift
    return frame


def test_same_distribution_no_drift():
    snapshot = drift_report(synthetic_features(200, 1), synthetic_features(200, 2), FEATURE_COLUMNS)
    decision = drift_decision(snapshot.dict(), 0.5)
    assert not decision["dataset_drift"] and decision["drift_share"] < 0.5


def test_shifted_columns_are_named():
    reference = synthetic_features(200, 1)
    current = reference.sample(frac=1.0, random_state=0).reset_index(drop=True)  # same values
    current[["brightness", "mean_r"]] -= 0.3  # a darker, less red camera
    snapshot = drift_report(reference, current, FEATURE_COLUMNS)
    decision = drift_decision(snapshot.dict(), 0.15)
    assert decision["drifted_columns"] == ["brightness", "mean_r"]
    assert decision["drift_share"] == pytest.approx(0.2)
    assert decision["dataset_drift"]


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ValueError, match="current set has 1 usable images"):
        drift_report(synthetic_features(20, 1), synthetic_features(1, 2), FEATURE_COLUMNS)


@pytest.mark.slow
def test_drift_report_asset_writes_html_and_json(pipeline):
    result = pipeline.lake.read_json("assets/monitoring/drift_report/data.json")
    html = pipeline.lake.read_bytes("assets/monitoring/drift_report/drift_report.html")
    assert b"<html" in html[:2000].lower()
    assert pipeline.lake.read_json("assets/monitoring/drift_report/drift_report.json")["metrics"]
    # val and test of the same synthetic set: no dataset drift
    assert result["dataset_drift"] is False
    assert result["current_rows"] == 4 * 4 and result["reference_rows"] == 4 * 4
