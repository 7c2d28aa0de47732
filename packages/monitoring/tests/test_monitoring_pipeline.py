"""The monitoring assets and `fruitops monitor` on the shared pipeline run (slow: it trains)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fruitops_core.lake import lake_from_uri, object_at
from fruitops_core.materialize import materialize
from fruitops_core.settings import FruitOpsSettings
from fruitops_monitoring.records import ReferenceProfile

pytestmark = pytest.mark.slow
FRUITOPS = str(Path(sys.executable).parent / "fruitops")


def cli(home: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [FRUITOPS, "monitor", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FRUITOPS_HOME": str(home)},
    )
    return done.returncode, json.loads(done.stdout)


def test_reference_profile_holds_the_champions_view(pipeline):
    record = pipeline.lake.read_json("assets/monitoring/reference_profile/current/data.json")
    assert record["model_uri"] == "models:/fruit-classifier/1" and record["split"] == "val"
    table_lake, name = object_at(record["table_uri"])
    table = table_lake.read_parquet(name)
    assert len(table) == record["rows"] == 16  # 4 classes × 4 val images
    expected = {"brightness", "sharpness", "predicted_class", "confidence", "entropy", "margin"}
    assert expected <= set(table.columns) and "embedding_pc1" in table.columns
    assert table["label"].notna().all()
    assert len(record["projection"]["components"]) == 4
    # the copy kept per version is the same record, read back as one (minus `reused`)
    kept = pipeline.lake.read_json(
        "assets/monitoring/reference_profile/by_model/fruit-classifier-1-val.json"
    )
    assert ReferenceProfile.model_validate(kept) == ReferenceProfile.model_validate(
        {**record, "reused": False}
    )


def test_drift_report_asset_writes_html_json_and_an_mlflow_run(pipeline):
    import mlflow

    result = pipeline.lake.read_json("assets/monitoring/drift_report/current/data.json")
    html = pipeline.lake.read_bytes("assets/monitoring/drift_report/current/drift_report.html")
    assert b"<html" in html[:2000].lower()
    assert b'src="http' not in html  # self-contained: opens offline
    report = json.loads(
        pipeline.lake.read_bytes("assets/monitoring/drift_report/current/drift_report.json")
    )
    assert report["metrics"]
    # val and test of the same synthetic set: no dataset drift
    assert result["dataset_drift"] is False
    assert result["current_rows"] == 16 and result["reference_rows"] == 16
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.data.metrics["drift_share"] == result["drift_share"]
    assert run.data.tags["fruitops_kind"] == "drift"


def test_monitor_drift_cli_and_its_clear_errors(pipeline, tmp_path: Path):
    predictions = (
        pipeline.lake.root / "assets/serving/batch_predictions/current/predictions.parquet"
    )
    code, result = cli(pipeline.settings.home, "drift", "--batch", str(predictions))
    assert code == 0, result
    assert set(result) >= {
        "dataset_drift",
        "drift_share",
        "drifted_columns",
        "report_html_uri",
        "report_json_uri",
    }
    assert result["drift_threshold"] == 0.5  # DriftConfig's default, said with the share
    assert result["dataset_drift"] is False and Path(result["report_html_uri"][7:]).exists()

    table = pd.read_parquet(predictions)
    table.head(1).to_parquet(tmp_path / "one.parquet")
    code, result = cli(pipeline.settings.home, "drift", "--batch", str(tmp_path / "one.parquet"))
    assert code == 1 and "current set has 1 usable images" in result["error"]

    table.head(0).to_parquet(tmp_path / "empty.parquet")
    code, result = cli(pipeline.settings.home, "drift", "--batch", str(tmp_path / "empty.parquet"))
    assert code == 1 and "holds no predictions" in result["error"]


def test_monitor_features_cli_streams_a_table(pipeline, tmp_path: Path):
    folder = tmp_path / "photos"
    shutil.copytree(pipeline.lake.root / "raw", folder)
    for listing in folder.rglob("_index.parquet"):  # ingest's own listing, not a photo
        listing.unlink()
    (next(folder.rglob("*.jpg"))).write_bytes(b"broken")
    out = tmp_path / "features.parquet"
    code, result = cli(
        pipeline.settings.home,
        "features",
        str(folder),
        "--output",
        str(out),
        "--model",
        "models:/fruit-classifier/1",
    )
    assert code == 0, result
    assert result["rows"] == result["images"] - 1 and len(result["quarantined"]) == 1
    assert "embedding_pc1" in pd.read_parquet(out).columns
    train = next(folder.glob("*/v/*/train"))  # raw/<dataset id>/v/<version>/train/<class>/…
    code, result = cli(pipeline.settings.home, "features", str(train))
    assert code == 0, result  # no --output, no --model: pixel features into the lake
    assert result["output_uri"].startswith(pipeline.lake.uri("monitoring/features/"))
    assert "embedding_pc1" not in result["columns"] and "sharpness" in result["columns"]


def test_a_reference_of_another_champion_is_rebuilt(pipeline, tmp_path: Path):
    """A batch scored by version 2 is compared with a reference made by version 2."""
    import mlflow

    home = tmp_path / "home"
    shutil.copytree(pipeline.settings.home, home)
    settings = FruitOpsSettings(home=home, source=pipeline.settings.source)
    from fruitops_core.tracking import Tracking

    tracking = Tracking(settings)
    tracking.activate()
    v1 = tracking.client.get_model_version("fruit-classifier", "1")
    v2 = mlflow.register_model(f"runs:/{v1.run_id}/model", "fruit-classifier")
    assert int(v2.version) == 2
    records = materialize(
        ["serving/batch_predictions", "monitoring/drift_report"],
        settings=settings,
        config={"serving/batch_predictions": {"model_uri": "models:/fruit-classifier/2"}},
    )
    drift = records[-1]
    assert drift.metadata["reference_rebuilt"] is True
    lake = lake_from_uri(settings.lake_root)
    result = lake.read_json("assets/monitoring/drift_report/current/data.json")
    assert result["reference_model_uri"] == "models:/fruit-classifier/2"
    assert lake.exists("assets/monitoring/reference_profile/by_model/fruit-classifier-2-val.json")
