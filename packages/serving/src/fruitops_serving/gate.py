"""The precision gate: which precision may serve a model version, decided once, in the lake.

bf16 (on CPUs that have it) and int8 (OpenVINO, any x86 CPU) score faster than fp32 but may
change a model's answers; so each is used only after it passed a gate against the plain fp32
module (`fruitops_serving.precision`: agreement, accuracy drop and McNemar's test on held-out
photos), and of those that passed, and fp32, the one measured fastest here serves.

The gate is the asset ``serving/precision_gate``. Its upstream assets say what it depends
on: ``models/champion_model`` (the model checked, unless its config names another) and
``data/training_cache`` (its held-out photos: up to `MAX_IMAGES` of the val split; int8's
calibration photos: some of the train split). Its value holds one verdict per back end, so
the scoring DAG's `backend` param may pick either, and the int8 model it checked (in its own
folder of the lake). `materialize` makes it again when the champion or the cache changes; a
run that is asked for it anyway (an Airflow task always is) keeps the stored verdict while
what it is made of is the same (`gate_inputs`, the asset's `reuse_key`: core records
``reused``), so every daily scoring does not pay for it.

Scoring reads it: ``serving/batch_predictions`` as its upstream value, `fruitops score`,
`fruitops serve` and the benchmarks through `choose_predictor`, which makes the gate only
when it is missing or stale or was made for another model or kind of CPU. A lake without a
training cache (a model registered elsewhere) has no held-out photos: nothing can be
compared, so no gate is made and scoring uses fp32, saying why (`NO_HELD_OUT`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fruitops_core.asset_keys import CHAMPION_MODEL, PRECISION_GATE, TRAINING_CACHE
from fruitops_core.assets import AssetContext
from fruitops_core.lake import Lake
from fruitops_core.records import REUSE_KEY, load_value, read_record, staleness
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_data.records import TrainingCache
from fruitops_models.records import GATE_TAG, Champion
from fruitops_models.registry import LoadedModel, load_model
from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.precision import GATE_MIN_IMAGES, compare
from fruitops_serving.predictor import BATCH_HINT, Predictor
from fruitops_serving.records import PrecisionCheck, PrecisionGate, Verdict

#: held-out images compared at most (the first ones of the val split)
MAX_IMAGES = 512
#: photos each precision's speed is measured on (best of two passes, after a warm-up)
TIMED_IMAGES = 64
NO_HELD_OUT = "no held-out images in the lake to check a faster precision against fp32"
NO_FASTER = "no faster precision to check here (bf16 needs a CPU with it, int8 OpenVINO)"
FP32_ASKED = "fp32 asked for"
#: reasons for fp32 that the user chose or cannot change: not worth a line of output
NOT_ASKED = (FP32_ASKED, NO_FASTER)


def _split_images(
    model: LoadedModel,
    lake: Lake,
    cache: TrainingCache,
    settings: FruitOpsSettings,
    split_name: str,
    count: int,
    sample: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to ``count`` photos of a cache split at the model's size (the first ones, or a
    seeded sample), with their labels; None when the split is missing or empty."""
    import torch

    from fruitops_data.cache import open_split
    from fruitops_models.augment import resize

    if split_name not in cache.splits:
        return None
    split = open_split(lake, cache, split_name, settings.local_cache)
    if len(split) == 0:
        return None
    if sample and len(split) > count:
        rows = np.sort(np.random.default_rng(0).choice(len(split), count, replace=False))
    else:
        rows = np.arange(min(len(split), count))
    images = split.take(rows)
    if images.shape[-1] != model.image_size:
        resized = resize(torch.from_numpy(images).float(), model.image_size)
        images = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    return images, np.asarray(split.labels)[rows]


def held_out(
    model: LoadedModel, lake: Lake, cache: TrainingCache, settings: FruitOpsSettings
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Up to `MAX_IMAGES` of the cache's val split at the model's size, and their labels when
    the cache's classes are the model's; None when the split is empty."""
    found = _split_images(model, lake, cache, settings, "val", MAX_IMAGES)
    if found is None:
        return None
    images, labels = found
    return images, (labels if list(cache.classes) == model.classes else None)


def cpu_kind() -> dict[str, Any]:
    """What about this CPU decides a verdict: its instruction sets and any cap on them."""
    from fruitops_models.hardware import cpu_features

    features = cpu_features()
    return {key: features[key] for key in ("flags", "bf16", "vnni", "onednn_max_isa")}


def faster_precisions(backend: str) -> list[str]:
    """The precisions to weigh against fp32 on ``backend`` on this CPU."""
    from fruitops_models.hardware import cpu_has_bf16

    # OpenVINO runs f32 on a CPU without bf16 whatever it is told: a "pass" there would say
    # nothing about bf16, so such a CPU does not compare it
    return [
        precision
        for precision, here in (("int8", backend == "openvino"), ("bf16", cpu_has_bf16()))
        if here
    ]


def gate_inputs(
    ctx: AssetContext[PrecisionGateConfig],
    champion_model: Champion,
    training_cache: TrainingCache,
) -> dict[str, Any]:
    """What a verdict is made of (the gate asset's `reuse_key`): the same model version and
    run, held-out photos, kind of CPU, rule and back ends give the same verdict."""
    model = load_model(ctx.tracking, ctx.config.model_uri or champion_model.model_uri)
    return {
        "model_uri": model.pinned_uri,
        "run_id": model.run_id,
        "held_out_from": {
            "prefix": training_cache.prefix,
            "manifest_hash": training_cache.manifest_hash,
        },
        "cpu": cpu_kind(),
        "rule": {
            **ctx.config.model_dump(exclude={"model_uri", "backends"}),
            "min_images": GATE_MIN_IMAGES,
            "max_images": MAX_IMAGES,
        },
        "checked": list(ctx.config.backends),
    }


def images_per_second(predictor: Predictor, images: np.ndarray) -> float:
    """``predictor``'s speed on up to `TIMED_IMAGES` photos: best of two passes, warmed up."""
    timed = images[:TIMED_IMAGES]
    predictor.top1(timed)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        predictor.top1(timed)
        best = min(best, time.perf_counter() - started)
    return round(len(timed) / best, 1)


def _weigh_backend(
    ctx: AssetContext[PrecisionGateConfig],
    backend: str,
    build: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray | None,
    reference: np.ndarray,
) -> Verdict:
    """One back end's verdict: each faster precision ``build`` can make compared with fp32
    (``reference``), and of those that passed, and fp32, the fastest measured."""
    speeds = {"fp32": images_per_second(build["fp32"](backend), images)}
    checks: dict[str, PrecisionCheck] = {}
    for precision in (p for p in faster_precisions(backend) if p in build):
        predictor = build[precision](backend)
        check = PrecisionCheck(**compare(reference, predictor.top1(images), labels, ctx.config))
        if check.passed:
            speeds[precision] = check.images_per_second = images_per_second(predictor, images)
        checks[precision] = check
        ctx.log.info(
            "%s on %s %s the gate: %.1f%% agreement with fp32 on %d held-out photos%s",
            precision,
            backend,
            "passed" if check.passed else "failed",
            100 * check.agreement,
            len(images),
            "" if check.passed else f" ({check.refused})",
        )
    chosen = max(speeds, key=speeds.__getitem__)
    reason = None
    if not checks:
        reason = NO_FASTER
    elif chosen == "fp32":
        reason = "; ".join(
            f"{p}: {c.refused}" if not c.passed else f"{p}: not faster than fp32 here"
            for p, c in checks.items()
        )
    ctx.log.info("%s serves %s (%.0f img/s measured)", backend, chosen, speeds[chosen])
    return Verdict(
        backend=backend,
        images=len(images),
        precision=chosen,
        passed=chosen != "fp32",
        reason=reason,
        fp32_images_per_second=speeds["fp32"],
        precisions=checks,
    )


def check_precision(
    ctx: AssetContext[PrecisionGateConfig],
    champion_model: Champion,
    training_cache: TrainingCache,
) -> PrecisionGate:
    """The gate asset's value: for each configured back end, the faster precisions against
    fp32 on the cache's held-out split, and the precision chosen; for the configured model
    (default: the champion)."""
    model = load_model(ctx.tracking, ctx.config.model_uri or champion_model.model_uri)
    value = PrecisionGate(
        **gate_inputs(ctx, champion_model, training_cache), model_version=model.version
    )
    found = held_out(model, ctx.lake, training_cache, ctx.settings)
    if found is None:
        value.reason = NO_HELD_OUT
    else:
        images, labels = found
        cache_dir = ctx.settings.local_cache / "openvino"
        int8_ir: list[Path] = []  # made once, by the first back end that weighs it
        calibration = _split_images(
            model,
            ctx.lake,
            training_cache,
            ctx.settings,
            "train",
            ctx.config.calibration_images,
            True,
        )

        def int8(backend: str) -> Predictor:
            if not int8_ir:
                value.int8_ir = _make_int8(ctx, model, calibration[0])
                int8_ir.append(_local_int8(ctx, value.int8_ir))
            return Predictor(model, "int8", backend, cache_dir, int8_ir=int8_ir[0])

        build = {
            "fp32": lambda backend: Predictor(model, "fp32", backend, cache_dir),
            "bf16": lambda backend: Predictor(model, "bf16", backend, cache_dir),
        }
        if calibration is not None:  # never calibrated on the photos it is judged on
            build["int8"] = int8
        reference = Predictor(model).top1(images)
        for backend in value.checked:
            value.backends[backend] = _weigh_backend(ctx, backend, build, images, labels, reference)
    ctx.add_metadata(
        model_uri=value.model_uri,
        model_version=value.model_version,
        **{f"{b}_precision": v.precision for b, v in value.backends.items()},
    )
    if model.version:  # on the version itself, for `fruitops models list` and MLflow's UI
        ctx.tracking.client.set_model_version_tag(
            model.name, str(model.version), GATE_TAG, gate_summary(value)
        )
    return value


def gate_summary(value: PrecisionGate) -> str:
    """The verdicts in one line: each back end's precision and the test's numbers."""
    from fruitops_serving.precision import describe

    if not value.backends:
        return value.reason or "not checked"
    parts = []
    for backend, verdict in value.backends.items():
        check = verdict.precisions.get(verdict.precision)
        why = describe(check) if check else verdict.reason
        parts.append(f"{backend} {verdict.precision} ({why})")
    return "; ".join(parts)


def _make_int8(
    ctx: AssetContext[PrecisionGateConfig], model: LoadedModel, calibration: np.ndarray
) -> str:
    """The model quantized on training photos, kept in the gate's folder; its lake key."""
    from fruitops_models.hardware import cpu_has_vnni
    from fruitops_serving.quantize import quantize_int8, save_int8

    ctx.log.info("quantizing %s to int8 on %d training photos", model.pinned_uri, len(calibration))
    quantized = quantize_int8(model, calibration, cpu_has_vnni())
    return save_int8(quantized, ctx.lake, f"{ctx.asset_dir}/int8")


def _local_int8(ctx: AssetContext[PrecisionGateConfig], key: str) -> Path:
    from fruitops_serving.quantize import local_int8

    return local_int8(ctx.lake, key, ctx.settings.local_cache / "openvino")


def verdict_for(gate: PrecisionGate, model: LoadedModel, backend: str) -> Verdict:
    """The gate's verdict on ``backend`` for ``model`` on this CPU; fp32, with why, where it
    has none."""
    checked = gate.model_uri
    if checked is not None and (checked, gate.run_id) != (model.pinned_uri, model.run_id):
        reason = (
            f"the precision gate checked {checked}, not {model.pinned_uri} "
            f"(set the model_uri of {PRECISION_GATE} to check that one)"
        )
    elif gate.cpu not in (None, cpu_kind()):
        reason = "the precision gate was checked on another kind of CPU"
    elif backend in gate.backends:
        return gate.backends[backend]
    else:
        reason = gate.reason or f"the gate did not check {backend}"
    return Verdict(reason=reason)


def current_gate(
    model: LoadedModel,
    lake: Lake,
    settings: FruitOpsSettings,
    tracking: Tracking | None = None,
) -> PrecisionGate:
    """The gate for ``model`` from the lake: the stored one while it is fresh and made for
    this model on this kind of CPU, else materialized now; `unchecked` when the lake lacks
    what it is made of."""
    from fruitops_core.materialize import materialize

    graph = AssetGraph.from_entry_points()
    spec = graph[PRECISION_GATE]
    if read_record(lake, graph[TRAINING_CACHE]) is None:
        return PrecisionGate(reason=NO_HELD_OUT)
    if read_record(lake, graph[CHAMPION_MODEL]) is None:
        return PrecisionGate(
            reason=f"no {CHAMPION_MODEL} in the lake for {PRECISION_GATE} to depend on "
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
        if made_for and made_from.get("cpu") == cpu_kind():
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
    gate: PrecisionGate | None = None,
    tracking: Tracking | None = None,
    hint: str = BATCH_HINT,
    threads: Callable[[str], int] | None = None,
) -> tuple[Predictor, Verdict]:
    """``backend`` in the precision the gate chose for this model version (auto), or fp32;
    with the verdict (or why there is none). ``hint``: `Predictor`'s; ``threads``: its
    threads for the chosen precision (default: OpenVINO's choice).

    ``gate`` is the value of ``serving/precision_gate`` where the caller has it (the scoring
    asset); without it, it comes from the lake (`current_gate`)."""
    from fruitops_serving.quantize import local_int8

    cache_dir = settings.local_cache / "openvino"
    int8_ir = None
    if precision == "fp32":
        verdict = Verdict(reason=FP32_ASKED)
    elif not faster_precisions(backend):
        verdict = Verdict(reason=NO_FASTER)
    else:
        if gate is None:
            gate = current_gate(model, lake, settings, tracking)
        verdict = verdict_for(gate, model, backend)
        if verdict.precision == "int8" and gate.int8_ir:
            int8_ir = local_int8(lake, gate.int8_ir, cache_dir)
    count = threads(verdict.precision) if threads is not None else None
    predictor = Predictor(model, verdict.precision, backend, cache_dir, hint, int8_ir, count)
    return predictor, verdict
