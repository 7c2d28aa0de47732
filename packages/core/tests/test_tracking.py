"""`Tracking` and its `TrackedRun` against a real embedded MLflow store (SQLite + files)."""

import json

import pytest

from fruitops_core.tracking import Tracking


def test_a_tracked_run_logs_to_its_own_run_by_id(settings, tmp_path):
    import mlflow

    tracking = Tracking(settings)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "index.html").write_text("<p>docs</p>")
    with tracking.start_run(kind="test", run_name="outer") as outer:
        # another run made active inside (as a nested helper might): logging still goes to
        # the run the step was handed, not to MLflow's active one
        with mlflow.start_run(experiment_id=tracking.experiment_id, nested=True) as inner:
            outer.log_params({"lr": 0.01, "arch": "cnn"})
            outer.log_metrics({"val_macro_f1": 0.5}, step=3)
            outer.set_tags({"stage": "ok"})
            outer.log_dict({"classes": ["apple"]}, "classes.json")
            outer.log_text("# card", "card.md")
            outer.log_artifacts(folder, "validation/data_docs")
    run = tracking.client.get_run(outer.run_id)
    assert run.data.params == {"lr": "0.01", "arch": "cnn"}
    assert run.data.metrics == {"val_macro_f1": 0.5}
    assert run.data.tags["stage"] == "ok"
    assert run.data.tags["fruitops_kind"] == "test"
    assert run.info.status == "FINISHED"
    history = tracking.client.get_metric_history(outer.run_id, "val_macro_f1")
    assert [m.step for m in history] == [3]
    assert tracking.client.get_run(inner.info.run_id).data.params == {}
    classes = tracking.load_dict(f"runs:/{outer.run_id}/classes.json")
    assert classes == {"classes": ["apple"]}
    downloaded = tracking.download(f"runs:/{outer.run_id}/validation", tmp_path / "down")
    assert (downloaded / "data_docs" / "index.html").read_text() == "<p>docs</p>"
    copied = tracking.download(f"runs:/{outer.run_id}/classes.json", tmp_path / "c")
    assert json.loads(copied.read_text()) == classes


def test_a_run_that_raises_is_marked_failed(settings):
    tracking = Tracking(settings)
    with pytest.raises(RuntimeError), tracking.start_run(kind="test") as run:
        raise RuntimeError("boom")
    assert tracking.client.get_run(run.run_id).info.status == "FAILED"


def test_a_model_is_logged_only_into_the_run_mlflow_holds_active(settings):
    import mlflow

    tracking = Tracking(settings)
    with tracking.start_run(kind="test") as outer:
        with mlflow.start_run(experiment_id=tracking.experiment_id, nested=True):
            with pytest.raises(RuntimeError, match="not MLflow's active run"):
                outer.log_model(mlflow.pyfunc, name="model", python_model=None)
