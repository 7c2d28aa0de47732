"""The models assets on the shared tiny pipeline run: trained, tracked, evaluated, promoted."""

import mlflow
import pytest

pytestmark = pytest.mark.slow


def candidate(pipeline) -> dict:
    (only,) = pipeline.lake.read_json("assets/models/trained_model/current/data.json")["candidates"]
    return only


def test_model_learns_the_synthetic_classes(pipeline):
    trained = candidate(pipeline)
    assert trained["arch"] == "cnn"
    assert trained["metrics"]["val_accuracy"] > 0.6  # chance is 0.25
    assert trained["metrics"]["test_macro_f1"] > 0.5
    assert trained["images_per_second"] > 0


def test_mlflow_run_holds_everything(pipeline):
    trained = candidate(pipeline)
    client = mlflow.MlflowClient(pipeline.settings.tracking_uri)
    run = client.get_run(trained["run_id"])
    params = run.data.params
    for name in ("arch", "image_size", "epochs", "batch_size", "lr", "seed", "data_source"):
        assert name in params, name
    assert params["epochs"] == "4" and params["data_source"].startswith("synthetic:")
    for split in ("val", "test"):
        for metric in ("accuracy", "macro_f1", "weighted_f1", "top5", "ece"):
            assert f"{split}_{metric}" in run.data.metrics, (split, metric)
    for curve in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_macro_f1"):
        history = client.get_metric_history(run.info.run_id, f"epoch/{curve}")
        assert [m.step for m in history] == [1, 2, 3, 4], curve
    best = max(m.value for m in client.get_metric_history(run.info.run_id, "epoch/val_macro_f1"))
    assert run.data.metrics["val_macro_f1"] == pytest.approx(best, abs=0.02)
    tags = run.data.tags
    assert len(tags["manifest_hash"]) == 16 and tags["validation_success"] == "True"
    assert tags["dataset_source"].startswith("synthetic:") and tags["code_version"] == "0.1.0"
    artifacts = set()
    for folder in ("", "plots", "per_class", "validation"):
        artifacts |= {a.path for a in client.list_artifacts(run.info.run_id, folder or None)}
    for path in (
        "plots/training_curves.png",
        "plots/confusion_val.png",
        "plots/per_class_f1_test.png",
        "plots/samples_val.png",
        "per_class/val.json",
        "validation/result.json",
        "classes.json",
    ):
        assert path in artifacts, path


def test_logged_model_carries_what_serving_needs(pipeline):
    info = mlflow.models.get_model_info(
        f"models:/fruit-classifier/{candidate(pipeline)['version']}"
    )
    assert info.metadata["classes"] == sorted(info.metadata["classes"])
    assert info.metadata["image_size"] == 64
    assert info.metadata["normalisation"]["inside_model"] is True
    assert info.signature is not None and info.saved_input_example_info is not None


def test_evaluation_and_first_promotion(pipeline):
    evaluation = pipeline.lake.read_json("assets/models/model_evaluation/current/data.json")
    # the first model registered was champion at once; evaluation scores it as such
    assert evaluation["split"] == "val" and evaluation["champion"]["version"] == 1
    assert evaluation["best_candidate"]["version"] == candidate(pipeline)["version"] == 1
    champion = pipeline.lake.read_json("assets/models/champion_model/current/data.json")
    client = mlflow.MlflowClient(
        pipeline.settings.tracking_uri, registry_uri=pipeline.settings.tracking_uri
    )
    mv = client.get_model_version_by_alias("fruit-classifier", "champion")
    assert int(mv.version) == champion["version"] == 1
    assert champion["decision"]["promoted"] and mv.tags["promotion.promoted"] == "True"
    assert "already champion" in champion["decision"]["reason"]


def test_training_report_names_the_winner(pipeline):
    report = pipeline.lake.read_bytes("assets/models/training_report/current/report.md").decode()
    assert "best candidate: cnn v1" in report and "promoted" in report
    assert "| cnn | 1 |" in report
    evaluation = pipeline.lake.read_json("assets/models/model_evaluation/current/data.json")
    classes = evaluation["classes_total"]
    assert evaluation["classes_judged"] == classes and evaluation["classes_missing"] == []
    assert f"chosen on val: {evaluation['images']} photos of {classes} of the {classes}" in report
    page = pipeline.lake.read_bytes("assets/models/training_report/current/report.html")
    assert b"data:image/png;base64," in page
