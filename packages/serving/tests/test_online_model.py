"""The registered model as MLflow serves it: photos in, the batch scoring's answers out."""

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from PIL import Image

from fruitops_core.tracking import Tracking
from fruitops_serving.online_model import ANSWER_COLUMNS

pytestmark = pytest.mark.slow


def bad_photos(good: bytes) -> dict[str, bytes]:
    """Photos no model can use, each for its own reason."""
    bomb = io.BytesIO()
    Image.new("1", (14_000, 14_000)).save(bomb, format="PNG")
    return {
        "empty": b"",
        "text": b"not a photo",
        "truncated": good[:300],
        "bomb": bomb.getvalue(),
    }


def scored_batch(pipeline) -> tuple[pd.DataFrame, list[bytes]]:
    """The shared run's batch table and the bytes of the photos it scored, in its order."""
    from fruitops_core.lake import lake_from_uri

    table = pipeline.lake.read_parquet(
        "assets/serving/batch_predictions/current/predictions.parquet"
    )
    source = lake_from_uri(table["source_uri"].iloc[0], strict=True)
    return table, [source.read_bytes(key) for key in table["key"]]


def test_the_registered_pyfunc_answers_as_batch_scoring_does(pipeline, monkeypatch):
    """Every photo of the scored batch gets the batch table's label and confidence; the bad
    photos of the same request get their reason, and the good ones are answered anyway."""
    table, photos = scored_batch(pipeline)
    monkeypatch.setenv("FRUITOPS_HOME", str(pipeline.settings.home))
    tracking = Tracking(pipeline.settings)
    model = mlflow.pyfunc.load_model(tracking.champion_uri)
    bad = bad_photos(photos[0])
    frame = pd.DataFrame({"image": [*photos, *bad.values()]})
    answers = model.predict(frame)
    assert list(answers.columns) == ANSWER_COLUMNS
    good, failed = answers.iloc[: len(photos)], answers.iloc[len(photos) :]
    assert good["error"].isna().all()
    assert good["label"].tolist() == table["label"].tolist()
    assert (good["confidence"] - table["confidence"]).abs().max() < 1e-5
    assert good["sha256"].tolist() == table["sha256"].tolist()
    assert [row[0]["label"] for row in good["top5"]] == table["label"].tolist()
    assert (answers["model_version"] == table["model_version"].iloc[0]).all()
    reasons = dict(zip(bad, failed["error"], strict=True))
    assert failed["label"].isna().all()
    assert "empty" in reasons["empty"]
    assert all(reasons.values()), reasons
    assert "pixels" in reasons["bomb"] or "limit" in reasons["bomb"], reasons["bomb"]


def test_plain_mlflow_models_serve_takes_base64_photos(pipeline, tmp_path: Path, free_port):
    """`mlflow models serve --env-manager local` serves the registered version as it is: every
    JSON input format MLflow knows takes base64 photos, and answers match the batch's."""
    table, photos = scored_batch(pipeline)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": Tracking(pipeline.settings).uri,
        "FRUITOPS_HOME": str(pipeline.settings.home),
        # MLflow starts `uvicorn` by name: the venv is on PATH, as for a user who activated it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            Tracking(pipeline.settings).champion_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(1)
        encoded = [base64.b64encode(p).decode() for p in photos[:3]]
        bodies = {
            "dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]},
            "dataframe_records": [{"image": e} for e in encoded],
            "inputs": {"image": encoded},
        }
        for key, body in bodies.items():
            request = urllib.request.Request(
                f"{url}/invocations",
                data=json.dumps({key: body}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers = json.load(response)["predictions"]
            errors = [a["error"] for a in answers]
            assert [a["label"] for a in answers] == table["label"].tolist()[:3], (key, errors)
            assert all(a["error"] is None for a in answers), key
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_version_registered_before_photos_is_upgraded_then_served(
    settings, tmp_path: Path, request
):
    """A version logged the old way (a pt2 network taking tensors) is refused by `fruitops
    serve` with the command that fixes it; `fruitops models upgrade` registers the same network
    again as a version that takes photos, the champion follows, and it answers photos."""
    import filecmp

    import numpy as np
    import torch

    from fruitops_models.architectures import build_model, for_inference
    from fruitops_models.registry import png

    previous = mlflow.get_tracking_uri()  # this test's store is not the next test's
    request.addfinalizer(lambda: mlflow.set_tracking_uri(previous))
    tracking = Tracking(settings)
    name, classes = tracking.registered_model, ["apple", "banana", "cherry", "kiwi"]
    network = for_inference(build_model("cnn", len(classes)))
    example = torch.rand(2, 3, 32, 32)
    with tracking.start_run(kind="train", run_name="before-photos"):
        mlflow.log_params({"classes": len(classes), "arch": "cnn"})
        mlflow.log_metric("val_macro_f1", 0.625)
        mlflow.pytorch.log_model(  # how versions were logged before they took photos
            network,
            name="model",
            serialization_format="pt2",
            input_example=example.numpy(),
            registered_model_name=name,
            metadata={"classes": classes, "image_size": 32, "arch": "cnn",
                      "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3}},
        )  # fmt: skip
    tracking.client.set_registered_model_alias(name, "champion", "1")
    fruitops = [str(Path(sys.executable).parent / "fruitops")]

    refused = subprocess.run(
        [*fruitops, "serve", "--port", "1"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert "fruitops models upgrade 1" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    as_json = subprocess.run(
        [*fruitops, "serve", "--json"], capture_output=True, text=True, timeout=120
    )
    assert as_json.returncode == 1
    assert "fruitops models upgrade 1" in json.loads(as_json.stdout)["error"]

    done = subprocess.run(
        [*fruitops, "models", "upgrade", "1", "--json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["version"] == 2
    assert int(tracking.champion().version) == 2
    again = subprocess.run(
        [*fruitops, "models", "upgrade", "2"], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "takes photos already" in again.stdout
    missing = subprocess.run(
        [*fruitops, "models", "upgrade", "9"], capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 1 and "no version 9" in missing.stderr
    listed = subprocess.run(
        [*fruitops, "models", "list", "--json"], capture_output=True, text=True, timeout=120
    )
    v1, v2 = json.loads(listed.stdout)["versions"]
    assert v2["aliases"] == ["champion"] and v1["aliases"] == []
    assert (v2["classes"], v2["val_macro_f1"], v2["arch"]) == (4, 0.625, "cnn")

    old = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=tmp_path / "1"))
    new = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/2", dst_path=tmp_path / "2"))
    pt2 = [p.relative_to(old) for p in old.joinpath("data").rglob("*") if p.is_file()]
    assert pt2 and all(filecmp.cmp(old / f, new / "data" / "network" / f, False) for f in pt2)

    model = mlflow.pyfunc.load_model(tracking.champion_uri)
    photo = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    answers = model.predict(pd.DataFrame({"image": [png(photo)]}))
    assert answers["error"].isna().all() and answers["label"].iloc[0] in classes
    assert int(answers["model_version"].iloc[0]) == 2
