"""Scoring with the champion of the shared pipeline run, as the asset and as `fruitops score`."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fruitops_core.lake import LocalLake, lake_from_uri
from fruitops_core.tracking import Tracking
from fruitops_data.layout import JUNK_REASON, LINK_REASON
from fruitops_models.registry import ModelNotFound, load_model
from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.inputs import InputError, resolve_input
from fruitops_serving.precision import compare
from fruitops_serving.predictions import PREDICTION_COLUMNS
from fruitops_serving.predictor import BATCH_HINT, ONLINE_HINT, Predictor
from fruitops_serving.scoring import score

pytestmark = pytest.mark.slow
FRUITOPS = str(Path(sys.executable).parent / "fruitops")
REAL_SAMPLE = Path(__file__).parents[2] / "data" / "tests" / "fixtures" / "fruits-real-sample"


def cli(pipeline, *args: str) -> tuple[int, dict]:
    env = {"FRUITOPS_HOME": str(pipeline.settings.home), "PATH": str(Path(sys.executable).parent)}
    import os

    done = subprocess.run(
        [FRUITOPS, "score", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    return done.returncode, json.loads(done.stdout)


def bad_files(folder: Path, good: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "cut.jpg").write_bytes(good.read_bytes()[:300])
    buffer = io.BytesIO()
    Image.new("1", (14_000, 14_000)).save(buffer, format="PNG")
    (folder / "bomb.png").write_bytes(buffer.getvalue())


def test_batch_predictions_asset(pipeline):
    record = pipeline.lake.read_json("assets/serving/batch_predictions/current/data.json")
    predictions = pipeline.lake.read_parquet(
        "assets/serving/batch_predictions/current/predictions.parquet"
    )
    incoming = pipeline.lake.read_json("assets/data/incoming_batch/current/data.json")
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert sorted(predictions["key"]) == sorted(incoming["keys"])
    assert record["scored"] == len(predictions) and record["quarantined"] == []
    assert predictions["confidence"].between(0, 1).all()
    assert (predictions["model_version"] == 1).all()
    first_top5 = list(predictions["top5"].iloc[0])
    assert len(first_top5) == 4 and first_top5[0]["label"] == predictions["label"].iloc[0]
    truth = predictions["key"].str.split("/").str[-2]  # keys are …/test/<class>/<file>
    assert (truth == predictions["label"]).mean() > 0.6
    assert record["precision"] == record["gate"]["precision"] and "passed" in record["gate"]
    assert record["backend"] == "openvino"  # the default, chosen by benchmarks/bench_score.py


def test_daily_scoring_keeps_one_table_per_day_and_names_the_latest(pipeline, tmp_path: Path):
    """The scoring DAG gives each run its day: each day's table stays, latest.json names the
    last; a date that is not a day is refused before anything runs."""
    from fruitops_core.materialize import materialize

    shutil.copytree(pipeline.lake.root, tmp_path / "lake", symlinks=True)
    lake = LocalLake(tmp_path / "lake")  # a copy: the shared run's lake stays as it is

    def score_day(day: str) -> None:
        materialize(
            ["serving/batch_predictions"],
            settings=pipeline.settings,
            graph=pipeline.graph,
            lake=lake,
            config={"serving/batch_predictions": {"date": day}},
        )

    for day in ("2026-11-30", "2026-12-01"):
        score_day(day)
    keys = lake.read_json("assets/data/incoming_batch/current/data.json")["keys"]
    for day in ("2026-11-30", "2026-12-01"):
        table = lake.read_parquet(f"predictions/{day}/predictions.parquet")
        assert len(table) == len(keys)
        assert lake.exists(f"predictions/{day}/quarantine.json")
    assert lake.read_json("predictions/latest.json") == {
        "predictions_uri": lake.uri("predictions/2026-12-01/predictions.parquet"),
        "date": "2026-12-01",
    }
    with pytest.raises(ValueError, match=r"'\{ds\}' is not a day in the form YYYY-MM-DD"):
        score_day("{ds}")


def test_bf16_agrees_with_fp32_on_real_photos(pipeline):
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    files = sorted(REAL_SAMPLE.rglob("*.jpg"))
    from fruitops_data.images import decode_array

    images = np.stack(
        [decode_array(p.read_bytes(), model.image_size).transpose(2, 0, 1) for p in files]
    )
    fp32, bf16 = Predictor(model).top1(images), Predictor(model, "bf16").top1(images)
    assert compare(fp32, bf16, None, PrecisionGateConfig())["agreement"] >= 0.99
    few = compare(fp32[:3], bf16[:3], None, PrecisionGateConfig())
    assert few["passed"] is False and "only 3 held-out images (needs 20)" in few["refused"]
    fp32 = Predictor(model).probabilities(torch.from_numpy(images))
    assert torch.allclose(fp32.sum(1), torch.ones(len(files)), atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_agrees_with_the_fp32_module_on_real_photos(pipeline, precision):
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    from fruitops_data.images import decode_array

    files = sorted(REAL_SAMPLE.rglob("*.jpg"))
    # stacked from H×W×3 arrays, as scoring stacks them: NHWC memory behind an NCHW view
    images = torch.from_numpy(
        np.stack([decode_array(p.read_bytes(), model.image_size) for p in files])
    ).permute(0, 3, 1, 2)
    fp32 = Predictor(model).probabilities(images)
    served = Predictor(model, precision, backend="openvino").probabilities(images)
    assert (served.argmax(1) == fp32.argmax(1)).float().mean() >= 0.99
    assert torch.allclose(served.sum(1), torch.ones(len(files)), atol=1e-3)
    if precision == "fp32":  # the same arithmetic, reordered
        assert torch.allclose(served, fp32, atol=1e-4)


def test_one_photo_at_a_time_on_one_thread_answers_as_a_batch_does(pipeline):
    """The online server's setting (one stream on the threads it is given, each photo run
    on the calling thread) gives every photo the probabilities batch scoring gives it (two
    streams, a share of the batch each)."""
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    from fruitops_data.images import decode_array

    nhwc = np.stack(
        [decode_array(p.read_bytes(), model.image_size) for p in sorted(REAL_SAMPLE.rglob("*.jpg"))]
    )
    batch = Predictor(model, backend="openvino", hint=BATCH_HINT).probabilities_nhwc(nhwc)
    online = Predictor(model, backend="openvino", hint=ONLINE_HINT, threads=1)
    assert online.threads == 1
    alone = np.concatenate([online.probabilities_nhwc(nhwc[i : i + 1]) for i in range(len(nhwc))])
    assert np.allclose(alone, batch, atol=1e-5)


def test_openvino_model_is_cached_per_run_and_reused_without_the_pt2(pipeline, tmp_path):
    """A second start finds the converted model: it neither loads the pt2 nor converts it."""
    from fruitops_models.registry import LoadedModel

    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    images = torch.randint(0, 256, (3, 3, model.image_size, model.image_size), dtype=torch.uint8)
    first = Predictor(model, backend="openvino", cache_dir=tmp_path).probabilities(images)
    assert len(list(tmp_path.glob("*/model.xml"))) == 1
    assert not list(tmp_path.glob("*/partial.*"))

    def no_pt2():
        raise AssertionError("the cached model should be used, not the pt2")

    again = LoadedModel(no_pt2, model.classes, model.image_size, model.name, model.version,
                        model.run_id, model.uri)  # fmt: skip
    second = Predictor(again, backend="openvino", cache_dir=tmp_path).probabilities(images)
    assert torch.allclose(first, second, atol=1e-6)
    assert any((tmp_path / "compiled").iterdir())  # OpenVINO's own compiled-kernel cache


def test_cli_quarantines_and_writes_every_row(pipeline, tmp_path: Path):
    folder = tmp_path / "batch"
    folder.mkdir()
    images = sorted((pipeline.lake.root / "raw").rglob("*.jpg"))[:5]
    for image in images:
        shutil.copy(image, folder / image.name)
    bad_files(folder, images[0])
    (folder / ".DS_Store").write_bytes(b"junk")
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "passwd.jpg").symlink_to(secret)  # left out with why, never read
    out = tmp_path / "out" / "preds.csv"
    code, result = cli(pipeline, str(folder), "--output", str(out), "--format", "csv")
    assert code == 0, result
    assert result["ignored"] == [
        {"path": ".DS_Store", "reason": JUNK_REASON},
        {"path": "passwd.jpg", "reason": LINK_REASON},
    ]
    reasons = {q["key"]: q["reason"] for q in result["quarantined"]}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "cut.jpg", "bomb.png"}
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["notes.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert result["images"] == 9 and result["scored"] == 5
    assert set(result) >= {
        "images",
        "scored",
        "quarantined",
        "predictions_uri",
        "model_uri",
        "model_version",
        "seconds",
        "images_per_second",
    }
    table = pd.read_csv(out)
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 5
    assert json.loads(table["top5"].iloc[0])[0]["label"] == table["label"].iloc[0]


def test_empty_input_gives_an_empty_table(pipeline, tmp_path: Path):
    (tmp_path / "nothing").mkdir()
    code, result = cli(pipeline, str(tmp_path / "nothing"), "--output", str(tmp_path / "e.parquet"))
    assert code == 0 and result["scored"] == 0 and "no files found" in result["warning"]
    assert pd.read_parquet(tmp_path / "e.parquet").empty


def test_missing_input_and_model_are_clear(pipeline, tmp_path: Path):
    code, result = cli(pipeline, str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in result["error"]
    with pytest.raises(InputError, match="image:FILE"):
        bad = tmp_path / "list.csv"
        bad.write_text("name\nx.jpg\n")
        resolve_input(str(bad))
    with pytest.raises(ModelNotFound, match="does not exist in the registry"):
        load_model(Tracking(pipeline.settings), "models:/no-such-model@champion")
    code, result = cli(pipeline, str(tmp_path), "--model", "models:/fruit-classifier/99")
    assert code == 1 and "fruitops train" in result["error"]


def test_rerun_replaces_atomically_and_interruption_leaves_old_table(pipeline, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for image in sorted((pipeline.lake.root / "raw").rglob("*.jpg"))[:6]:
        shutil.copy(image, folder / image.name)
    out_lake = LocalLake(tmp_path / "out")
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    source = resolve_input(str(folder))
    first = score(source, Predictor(model), out_lake, "p.parquet", batch_size=2)
    before = (tmp_path / "out" / "p.parquet").read_bytes()
    second = score(source, Predictor(model), out_lake, "p.parquet", batch_size=4)
    assert first["scored"] == second["scored"] == 6
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p.parquet"]

    class Boom(Predictor):
        calls = 0

        def probabilities(self, images):
            Boom.calls += 1
            if Boom.calls == 2:
                raise KeyboardInterrupt("killed mid-run")
            return super().probabilities(images)

    with pytest.raises(KeyboardInterrupt):
        score(source, Boom(model), out_lake, "p.parquet", batch_size=2)
    assert len(pd.read_parquet(tmp_path / "out" / "p.parquet")) == 6  # old table intact
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p.parquet"]
    assert before  # the first table was complete too


def test_s3_input_and_output_against_a_real_s3_server(pipeline, s3_server, tmp_path):
    bucket = lake_from_uri(f"s3://{s3_server.bucket}/incoming", endpoint_url=s3_server.endpoint)
    images = sorted((pipeline.lake.root / "raw").rglob("*.jpg"))[:4]
    for image in images:
        bucket.put_file(image, f"day1/{image.name}")
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    source = resolve_input(
        f"s3://{s3_server.bucket}/incoming/day1", endpoint_url=s3_server.endpoint
    )
    out = lake_from_uri(f"s3://{s3_server.bucket}/predictions", endpoint_url=s3_server.endpoint)
    result = score(source, Predictor(model), out, "day1.parquet")
    assert result["predictions_uri"] == f"s3://{s3_server.bucket}/predictions/day1.parquet"
    table = out.read_parquet("day1.parquet")
    assert len(table) == 4 and table["source_uri"].iloc[0].startswith("s3://")


@pytest.mark.parametrize(
    ("option", "value"), [("--backend", "tensorrt"), ("--format", "xlsx"), ("--precision", "int8")]
)
def test_unknown_choices_are_refused_by_the_parser(settings, tmp_path, option, value):
    done = subprocess.run(
        [FRUITOPS, "score", str(tmp_path), option, value, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    payload = json.loads(done.stdout)
    assert done.returncode == 2 and payload["error_type"] == "UsageError"
    assert f"'{value}' is not one of" in payload["error"] and option in payload["error"]
