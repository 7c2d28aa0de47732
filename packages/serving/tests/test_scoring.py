"""Scoring with the champion of the shared pipeline run."""

import shutil
from pathlib import Path

import pytest

from fruitops_core.lake import LocalLake
from fruitops_serving.scoring import PREDICTION_COLUMNS, load_model, score

pytestmark = pytest.mark.slow


def test_batch_predictions_asset(pipeline):
    predictions = pipeline.lake.read_parquet("assets/serving/batch_predictions/data.parquet")
    incoming = pipeline.lake.read_json("assets/data/incoming_batch/data.json")
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert sorted(predictions["key"]) == sorted(incoming["keys"])
    assert predictions["confidence"].between(0, 1).all()
    assert (predictions["model_version"] == 1).all()
    first_top5 = list(predictions["top5"].iloc[0])
    assert len(first_top5) == 4 and first_top5[0]["label"] == predictions["label"].iloc[0]
    # keys are <class>/<file>: the synthetic classes are easy, most must be right
    truth = predictions["key"].str.split("/").str[0]
    assert (truth == predictions["label"]).mean() > 0.6


def test_undecodable_files_are_quarantined_not_dropped(pipeline, tmp_path: Path):
    source = pipeline.lake.root / "raw"
    images = sorted(source.rglob("*.jpg"))[:5]
    for image in images:
        shutil.copy(image, tmp_path / image.name)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "cut.jpg").write_bytes(images[0].read_bytes()[:300])
    model = load_model("models:/fruit-classifier@champion")
    keys = sorted(p.name for p in tmp_path.iterdir())
    predictions, quarantined = score(LocalLake(tmp_path), keys, model, batch_size=3)
    reasons = {q["key"]: q["reason"] for q in quarantined}
    assert len(predictions) == 5 and len(predictions) + len(quarantined) == len(keys)
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.txt"]
    assert "cut.jpg" in reasons


def test_bad_model_uri_explains_the_form(pipeline):
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        load_model("runs:/abc/model")
