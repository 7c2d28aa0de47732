"""The precision gate as the asset serving/precision_gate: its upstreams, when it is made
again, and scoring where the lake has no held-out images to make it from."""

import shutil
from pathlib import Path

import pytest

from fruitops_core.asset_keys import PRECISION_GATE
from fruitops_core.lake import LocalLake, lake_from_uri
from fruitops_core.materialize import materialize
from fruitops_core.records import load_value, read_record, staleness
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_models.hardware import cpu_has_bf16
from fruitops_models.registry import load_model
from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.gate import (
    NO_FASTER,
    NO_HELD_OUT,
    choose_predictor,
    faster_precisions,
    held_out,
    verdict_for,
)
from fruitops_serving.precision import compare
from fruitops_serving.predictor import Predictor
from fruitops_serving.quantize import local_int8
from fruitops_serving.records import PrecisionCheck, PrecisionGate, Verdict

pytestmark = pytest.mark.slow
SCORING = "serving/batch_predictions"


def test_the_gate_declares_what_it_is_made_of_and_scoring_reads_it(pipeline):
    gate_spec = pipeline.graph[PRECISION_GATE]
    assert gate_spec.deps == ("models/champion_model", "data/training_cache")
    assert PRECISION_GATE in pipeline.graph[SCORING].deps
    order = pipeline.graph.topological_order()
    assert order.index("models/champion_model") < order.index(PRECISION_GATE) < order.index(SCORING)
    gate = load_value(pipeline.lake, gate_spec)
    assert isinstance(gate, PrecisionGate)  # a typed record, stored as plain JSON
    stored = pipeline.lake.read_json(read_record(pipeline.lake, gate_spec).artifact_path)
    assert PrecisionGate.model_validate(stored) == gate
    assert gate.model_uri == "models:/fruit-classifier/1" and gate.checked == ["openvino", "torch"]
    scored = pipeline.lake.read_json("assets/serving/batch_predictions/current/data.json")
    assert set(gate.backends) == {"openvino", "torch"}
    verdict = gate.backends["openvino"]  # int8 is weighed on OpenVINO on every CPU
    int8 = verdict.precisions["int8"]
    assert verdict.backend == "openvino" and verdict.images > 0
    assert 0 <= int8.agreement <= 1 and int8.images == verdict.images
    assert None not in (int8.fp32_accuracy, int8.accuracy_drop, int8.mcnemar_p)  # labelled
    assert pipeline.lake.exists(gate.int8_ir)  # the model it checked, for every scorer
    passed = [p for p, check in verdict.precisions.items() if check.passed]
    assert verdict.precision in ("fp32", *passed)
    assert scored["gate"] == verdict.shown()  # what scoring used is the asset's verdict
    assert scored["precision"] == verdict.precision
    # the version carries the verdict in a line, as `fruitops models list` shows it
    tags = Tracking(pipeline.settings).client.get_model_version("fruit-classifier", "1").tags
    assert tags["precision_gate"].startswith(f"openvino {verdict.precision} (")
    torch_verdict = gate.backends["torch"]
    if cpu_has_bf16():
        assert set(torch_verdict.precisions) == {"bf16"}
    else:
        assert torch_verdict.precision == "fp32" and torch_verdict.reason == NO_FASTER
    # no verdict for another model: that one is scored in fp32, and the reason says why
    other = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    other.version = 7
    assert (
        "checked models:/fruit-classifier/1, not models:/fruit-classifier/7"
        in verdict_for(gate, other, "openvino").reason
    )


def _copy(pipeline, tmp_path: Path) -> FruitOpsSettings:
    home = tmp_path / "home"
    shutil.copytree(pipeline.settings.home, home, symlinks=True)
    return FruitOpsSettings(home=home, source=pipeline.settings.source)


def _ran(records) -> list[str]:
    return [r.asset_key for r in records]


def test_the_gate_is_made_again_when_the_champion_changes_and_kept_otherwise(pipeline, tmp_path):
    import mlflow

    settings = _copy(pipeline, tmp_path)  # the shared run's lake and registry stay as they are
    tracking = Tracking(settings)
    tracking.activate()
    lake = lake_from_uri(settings.lake_root)
    graph = pipeline.graph
    spec = graph[PRECISION_GATE]
    before = read_record(lake, spec)
    assert staleness(spec, graph, lake, {}) is None

    # nothing changed: scoring with its upstream runs only the scoring
    run = {"settings": settings, "graph": graph, "lake": lake, "tracking": tracking}
    assert _ran(materialize([SCORING], with_upstream=True, **run)) == [SCORING]
    # asked for anyway (as an Airflow task always is), it keeps its verdict: same version
    (again,) = materialize([PRECISION_GATE], **run)
    assert again.metadata["reused"] is True and again.version == before.version
    assert staleness(graph[SCORING], graph, lake, {}) is None

    # a new champion (v2): the gate is stale and made again for it, before the scoring
    v1 = tracking.client.get_model_version("fruit-classifier", "1")
    v2 = mlflow.register_model(f"runs:/{v1.run_id}/model", "fruit-classifier")
    tracking.client.set_registered_model_alias("fruit-classifier", "champion", v2.version)
    materialize(["models/model_evaluation", "models/champion_model"], **run)
    assert load_value(lake, graph["models/champion_model"]).version == 2
    assert (
        staleness(spec, graph, lake, {})
        == "upstream models/champion_model changed since it was made"
    )
    records = materialize([SCORING], with_upstream=True, **run)
    assert _ran(records) == [PRECISION_GATE, SCORING]
    made = records[0]
    assert made.metadata["reused"] is False and made.metadata["model_version"] == 2
    gate = load_value(lake, spec)
    assert gate.model_uri == "models:/fruit-classifier/2"
    scored = load_value(lake, graph[SCORING])
    assert scored.model_version == 2 and "not models:/" not in scored.gate.get("reason", "")
    assert _ran(materialize([SCORING], with_upstream=True, **run)) == [SCORING]

    # `fruitops score --model …/1` asks for a verdict on v1: the gate is made for it
    model = load_model(tracking, "models:/fruit-classifier/1")
    predictor, verdict = choose_predictor(model, lake, settings, backend="torch", tracking=tracking)
    if cpu_has_bf16():
        assert load_value(lake, spec).model_uri == "models:/fruit-classifier/1"
        assert read_record(lake, spec).config["model_uri"] == "models:/fruit-classifier/1"
        assert verdict.backend == "torch"
        assert predictor.precision == verdict.precision
        # and found again, not made again, by the next run for that model
        kept = read_record(lake, spec).version
        choose_predictor(model, lake, settings, backend="torch", tracking=tracking)
        assert read_record(lake, spec).version == kept
    else:
        assert verdict == Verdict(reason=NO_FASTER) and verdict.precision == "fp32"


def test_scoring_loads_the_int8_model_the_gate_checked(pipeline, tmp_path):
    """Another machine (an empty local cache) serves the very int8 model in the lake, in the
    precision the gate chose, and answers as the gate measured."""
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    fresh = FruitOpsSettings(
        home=tmp_path / "home",
        source=pipeline.settings.source,
        lake_uri=pipeline.settings.lake_root,
        mlflow_tracking_uri=pipeline.settings.tracking_uri,
    )
    gate = load_value(pipeline.lake, pipeline.graph[PRECISION_GATE])
    predictor, verdict = choose_predictor(model, pipeline.lake, fresh, gate=gate)
    assert verdict == gate.backends["openvino"] and predictor.precision == verdict.precision
    int8 = Predictor(
        model,
        "int8",
        "openvino",
        int8_ir=local_int8(pipeline.lake, gate.int8_ir, fresh.local_cache / "openvino"),
    )
    assert (fresh.local_cache / "openvino" / "int8").is_dir()
    cache = load_value(pipeline.lake, pipeline.graph["data/training_cache"])
    images, labels = held_out(model, pipeline.lake, cache, fresh)
    fp32 = Predictor(model).top1(images)
    check = compare(fp32, int8.top1(images), labels, PrecisionGateConfig())
    assert PrecisionCheck(**check) == verdict.precisions["int8"].model_copy(
        update={"images_per_second": None}
    )


def test_no_training_cache_scores_in_fp32_and_says_why(pipeline, tmp_path):
    """A model registered without this lake's training: no held-out images, no gate made."""
    settings = FruitOpsSettings(home=tmp_path / "home", source=pipeline.settings.source)
    lake = LocalLake(tmp_path / "empty-lake")
    model = load_model(Tracking(pipeline.settings), "models:/fruit-classifier/1")
    predictor, gate = choose_predictor(model, lake, settings, backend="torch")
    assert predictor.precision == "fp32" and gate.passed is False
    assert gate.reason == (NO_HELD_OUT if faster_precisions("torch") else NO_FASTER)
    assert not lake.exists(f"assets/{PRECISION_GATE}/materialization.json")
    predictor, gate = choose_predictor(model, lake, settings, precision="fp32", backend="torch")
    assert predictor.precision == "fp32"
    assert gate.shown() == {"passed": False, "precision": "fp32", "reason": "fp32 asked for"}


def test_score_and_models_list_say_which_precision_serves_and_why(pipeline, tmp_path):
    """As a user reads it: the precision that passed with the test's numbers, or why fp32."""
    import os
    import subprocess
    import sys

    fruitops = str(Path(sys.executable).parent / "fruitops")
    env = {**os.environ, "FRUITOPS_HOME": str(pipeline.settings.home)}
    folder = tmp_path / "batch"
    folder.mkdir()
    for photo in sorted((pipeline.lake.root / "raw").rglob("*.jpg"))[:3]:
        shutil.copy(photo, folder / photo.name)
    args = [fruitops, "score", str(folder), "--output", str(tmp_path / "p.parquet")]
    scored = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert scored.returncode == 0, scored.stderr
    verdict = load_value(pipeline.lake, pipeline.graph[PRECISION_GATE]).backends["openvino"]
    if verdict.precision == "fp32":
        assert f"fp32 was used: {verdict.reason}" in scored.stdout
    else:
        assert f"{verdict.precision} passed the precision gate: " in scored.stdout
        assert "held-out photos kept fp32's answer, accuracy " in scored.stdout
        assert "McNemar p = " in scored.stdout
    listing = subprocess.run(
        [fruitops, "models", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert f"served in: openvino {verdict.precision} (" in listing.stdout
