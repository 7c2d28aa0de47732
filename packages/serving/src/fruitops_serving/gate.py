"""The precision gate: whether a model version may be served in bf16, decided once, in the lake.

bf16 scores faster on CPUs that have it, but may change a model's answers; so it is used
only after it passed a gate against the plain fp32 module (`fruitops_serving.precision`:
top-1 agreement and accuracy drop on held-out images), else fp32.

The gate is the asset ``serving/precision_gate``. Its upstream assets say what it depends
on: ``models/champion_model`` (the model checked, unless its config names another) and
``data/training_cache`` (its held-out images: up to `MAX_IMAGES` of the val split). Its value
holds one verdict per back end, so the scoring DAG's `backend` param may pick either.
`materialize` makes it again when the champion or the cache changes; a run that is asked
for it anyway (an Airflow task always is) keeps the stored verdict while what it is made of
is the same (`gate_inputs`, the asset's `reuse_key`: core records ``reused``), so every daily
scoring does not pay for it.

Scoring reads it: ``serving/batch_predictions`` as its upstream value, `fruitops score` and
the benchmarks through `choose_predictor`, which makes the gate only when it is missing or
stale or was made for another model. A lake without a training cache (a model registered
elsewhere) has no held-out images: nothing can be compared, so no gate is made and scoring
uses fp32, saying why (`NO_HELD_OUT`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fruitops_core.asset_keys import CHAMPION_MODEL, PRECISION_GATE, TRAINING_CACHE
from fruitops_core.assets import AssetContext
from fruitops_core.lake import Lake
from fruitops_core.records import REUSE_KEY, load_value, read_record, staleness
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_models.records import Champion
from fruitops_models.registry import LoadedModel, load_model
from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.precision import (
    GATE_ACCURACY_DROP,
    GATE_AGREEMENT,
    GATE_MIN_IMAGES,
    fp32_top1,
    precision_gate,
)
from fruitops_serving.predictor import BATCH_HINT, Predictor

#: held-out images compared at most (the first ones of the val split)
MAX_IMAGES = 512
NO_HELD_OUT = "no held-out images in the lake to check bf16 against fp32"
NO_BF16 = "this CPU has no bf16"
FP32_ASKED = "fp32 asked for"
#: reasons for fp32 that the user chose or cannot change: not worth a line of output
NOT_ASKED = (FP32_ASKED, NO_BF16)


def _held_out(
    model: LoadedModel, lake: Lake, cache: dict[str, Any], settings: FruitOpsSettings
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Up to `MAX_IMAGES` of the cache's val split at the model's size, and their labels when
    the cache's classes are the model's; None when the split is empty."""
    import torch

    from fruitops_data.cache import open_split
    from fruitops_models.augment import resize

    if "val" not in cache["splits"]:
        return None
    split = open_split(lake, cache, "val", settings.local_cache)
    if len(split) == 0:
        return None
    images = split.take(np.arange(min(len(split), MAX_IMAGES)))
    if images.shape[-1] != model.image_size:
        resized = resize(torch.from_numpy(images).float(), model.image_size)
        images = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    labels = None
    if list(cache["classes"]) == model.classes:
        labels = split.labels[: len(images)]
    return images, labels


def gate_inputs(
    ctx: AssetContext[PrecisionGateConfig],
    champion_model: Champion,
    training_cache: dict[str, Any],
) -> dict[str, Any]:
    """What a verdict is made of (the gate asset's `reuse_key`): the same model version and
    run, held-out images, kind of CPU, rule and back ends give the same verdict."""
    from fruitops_models.hardware import cpu_has_bf16

    model = load_model(ctx.tracking, ctx.config.model_uri or champion_model.model_uri)
    return {
        "model_uri": model.pinned_uri,
        "run_id": model.run_id,
        "held_out_from": {
            "prefix": training_cache["prefix"],
            "manifest_hash": training_cache.get("manifest_hash"),
        },
        # OpenVINO runs f32 on a CPU without bf16 whatever it is told: a "pass" there would
        # say nothing about bf16, so such a CPU compares nothing
        "bf16_cpu": cpu_has_bf16(),
        "rule": {
            "agreement": GATE_AGREEMENT,
            "accuracy_drop": GATE_ACCURACY_DROP,
            "min_images": GATE_MIN_IMAGES,
            "max_images": MAX_IMAGES,
        },
        "checked": list(ctx.config.backends),
    }


def check_precision(
    ctx: AssetContext[PrecisionGateConfig],
    champion_model: Champion,
    training_cache: dict[str, Any],
) -> dict[str, Any]:
    """The gate asset's value: each configured back end in bf16 against fp32, on the cache's
    held-out split, for the configured model (default: the champion)."""
    model = load_model(ctx.tracking, ctx.config.model_uri or champion_model.model_uri)
    value: dict[str, Any] = {
        **gate_inputs(ctx, champion_model, training_cache),
        "model_version": model.version,
        "backends": {},
    }
    if not value["bf16_cpu"]:
        value["reason"] = f"{NO_BF16}: bf16 was not compared with fp32"
    elif (held_out := _held_out(model, ctx.lake, training_cache, ctx.settings)) is None:
        value["reason"] = NO_HELD_OUT
    else:
        images, labels = held_out
        cache_dir = ctx.settings.local_cache / "openvino"
        reference = fp32_top1(model, images)
        for backend in value["checked"]:
            verdict = precision_gate(model, images, labels, backend, cache_dir, reference)
            value["backends"][backend] = verdict
            ctx.log.info(
                "bf16 on %s %s the gate: %.1f%% agreement with fp32 on %d held-out images "
                "(it needs %.1f%% on %d at least)",
                backend,
                "passed" if verdict["passed"] else "failed",
                100 * verdict["agreement"],
                verdict["images"],
                100 * GATE_AGREEMENT,
                GATE_MIN_IMAGES,
            )
    ctx.add_metadata(
        model_uri=value["model_uri"],
        model_version=value["model_version"],
        **{f"{b}_bf16_passed": v["passed"] for b, v in value["backends"].items()},
        **{f"{b}_agreement": v["agreement"] for b, v in value["backends"].items()},
    )
    return value


def unchecked(reason: str) -> dict[str, Any]:
    """A gate with no verdict, for scoring where none can be made: fp32, and why."""
    return {"backends": {}, "reason": reason}


def verdict_for(gate: dict[str, Any], model: LoadedModel, backend: str) -> dict[str, Any]:
    """The gate's verdict on ``backend`` for ``model``; not passed, with why, where it has none."""
    checked = gate.get("model_uri")
    if checked is not None and (checked, gate.get("run_id")) != (model.pinned_uri, model.run_id):
        return {
            "passed": False,
            "reason": f"the precision gate checked {checked}, not {model.pinned_uri} "
            f"(set the model_uri of {PRECISION_GATE} to check that one)",
        }
    if backend in gate["backends"]:
        return gate["backends"][backend]
    return {"passed": False, "reason": gate.get("reason") or f"the gate did not check {backend}"}


def current_gate(
    model: LoadedModel,
    lake: Lake,
    settings: FruitOpsSettings,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """The gate for ``model`` from the lake: the stored one while it is fresh and made for
    this model on a CPU with bf16, else materialized now; `unchecked` when the lake lacks
    what it is made of."""
    from fruitops_core.materialize import materialize
    from fruitops_models.hardware import cpu_has_bf16

    graph = AssetGraph.from_entry_points()
    spec = graph[PRECISION_GATE]
    if read_record(lake, graph[TRAINING_CACHE]) is None:
        return unchecked(NO_HELD_OUT)
    if read_record(lake, graph[CHAMPION_MODEL]) is None:
        return unchecked(
            f"no {CHAMPION_MODEL} in the lake for {PRECISION_GATE} to depend on "
            "(`fruitops models promote` makes it)"
        )
    pinned = model.pinned_uri
    champion = load_value(lake, graph[CHAMPION_MODEL])
    config = {} if champion.model_uri == pinned else {"model_uri": pinned}
    record = read_record(lake, spec)
    fresh = record is not None and staleness(spec, graph, lake, config) is None
    if fresh:  # made by this code from these upstream versions: still for this model here?
        made_from = record.metadata.get(REUSE_KEY) or {}
        made_for = (made_from.get("model_uri"), made_from.get("run_id")) == (pinned, model.run_id)
        if made_for and made_from.get("bf16_cpu") == cpu_has_bf16():
            return load_value(lake, spec, record)
    (record,) = materialize(
        [PRECISION_GATE],
        settings=settings,
        graph=graph,
        lake=lake,
        config={PRECISION_GATE: config},
        tracking=tracking,
    )
    return load_value(lake, spec, record)


def choose_predictor(
    model: LoadedModel,
    lake: Lake,
    settings: FruitOpsSettings,
    precision: str = "auto",
    backend: str = "openvino",
    gate: dict[str, Any] | None = None,
    tracking: Tracking | None = None,
    hint: str = BATCH_HINT,
) -> tuple[Predictor, dict[str, Any]]:
    """``backend`` in fp32, or in bf16 when asked for auto and bf16 passed the gate for this
    model version and back end; with the verdict (or why there is none).

    ``gate`` is the value of ``serving/precision_gate`` where the caller has it (the scoring
    asset); without it, it comes from the lake (`current_gate`)."""
    from fruitops_models.hardware import cpu_has_bf16

    cache_dir = settings.local_cache / "openvino"

    def predictor(bf16: bool = False) -> Predictor:
        return Predictor(model, bf16=bf16, backend=backend, cache_dir=cache_dir, hint=hint)

    if precision == "fp32":
        return predictor(), {"passed": False, "reason": FP32_ASKED}
    if not cpu_has_bf16():
        return predictor(), {"passed": False, "reason": NO_BF16}
    if gate is None:
        gate = current_gate(model, lake, settings, tracking)
    verdict = verdict_for(gate, model, backend)
    return predictor(bool(verdict["passed"])), verdict
