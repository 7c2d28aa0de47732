"""The models assets on the shared tiny pipeline run: trained, tracked, registered, champion."""

import mlflow
import pytest

pytestmark = pytest.mark.slow


def test_model_learns_the_synthetic_classes(pipeline):
    trained = pipeline.lake.read_json("assets/models/trained_model/data.json")
    assert trained["arch"] == "cnn" and len(trained["classes"]) == 4
    assert trained["metrics"]["val_accuracy"] > 0.6  # chance is 0.25
    assert trained["metrics"]["test_macro_f1"] > 0.5


def test_run_is_tracked_completely(pipeline):
    trained = pipeline.lake.read_json("assets/models/trained_model/data.json")
    client = mlflow.MlflowClient(pipeline.settings.tracking_uri)
    run = client.get_run(trained["run_id"])
    assert run.data.params["arch"] == "cnn" and run.data.params["epochs"] == "4"
    assert run.data.tags["fruitops_kind"] == "training"
    assert len(run.data.tags["manifest_hash"]) == 16
    history = client.get_metric_history(run.info.run_id, "epoch/val_macro_f1")
    assert [m.step for m in history] == [1, 2, 3, 4]
    best = max(m.value for m in history)  # the kept model is the best epoch's
    assert run.data.metrics["val_macro_f1"] == pytest.approx(best, abs=1e-6)
    assert {"test_accuracy", "test_macro_f1", "test_top5", "val_loss"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/training_curves.png", "plots/confusion_val.png"} <= artifacts


def test_first_model_is_registered_and_champion(pipeline):
    champion = pipeline.lake.read_json("assets/models/champion_model/data.json")
    client = mlflow.MlflowClient(
        pipeline.settings.tracking_uri, registry_uri=pipeline.settings.tracking_uri
    )
    mv = client.get_model_version_by_alias("fruit-classifier", "champion")
    assert int(mv.version) == champion["version"] == 1
    assert champion["decision"]["promoted"] and champion["decision"]["reason"] == "no champion yet"
    assert mv.tags["promotion.promoted"] == "True"
    info = mlflow.models.get_model_info("models:/fruit-classifier/1")
    assert info.metadata["classes"] == sorted(info.metadata["classes"])
    assert info.metadata["image_size"] == 64
    assert info.signature is not None
