"""Which precision a model is served in: bf16 only after it passed the gate against fp32.

The gate compares the chosen back end in bf16 with the plain fp32 module.

The gate runs once per model version on the held-out (val) split of the training cache and
its verdict is kept in the lake, so every later scoring run reuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fruitops_core.lake import Lake
from fruitops_core.materialize import load_value, read_record
from fruitops_core.registry import AssetGraph, AssetGraphError
from fruitops_core.settings import FruitOpsSettings
from fruitops_models.registry import LoadedModel
from fruitops_serving.scoring import Predictor, precision_gate


def _held_out(
    model: LoadedModel, lake: Lake, settings: FruitOpsSettings
) -> tuple[np.ndarray, np.ndarray | None] | None:
    import torch
    import torch.nn.functional as F

    from fruitops_data.cache import open_split

    try:
        spec = AssetGraph.from_entry_points()["data/training_cache"]
    except AssetGraphError:
        return None
    if read_record(lake, spec) is None:
        return None
    cache = load_value(lake, spec)
    split = open_split(lake, cache, "val", settings.home / "cache-local")
    if len(split) == 0:
        return None
    images = split.take(np.arange(min(len(split), 512)))
    if images.shape[-1] != model.image_size:
        resized = F.interpolate(
            torch.from_numpy(images).float(),
            size=model.image_size,
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        images = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    labels = None
    if list(cache["classes"]) == model.classes:
        labels = split.labels[: len(images)]
    return images, labels


def choose_predictor(
    model: LoadedModel,
    lake: Lake,
    settings: FruitOpsSettings,
    precision: str = "auto",
    backend: str = "openvino",
) -> tuple[Predictor, dict[str, Any]]:
    """``backend`` in fp32, or in bf16 when asked for auto and bf16 passed (or now passes)
    the gate for this model version and back end."""
    from fruitops_models.hardware import cpu_has_bf16

    cache_dir = settings.home / "cache-local" / "openvino"

    def predictor(bf16: bool = False) -> Predictor:
        return Predictor(model, bf16=bf16, backend=backend, cache_dir=cache_dir)

    if precision == "fp32":
        return predictor(), {"passed": False, "reason": "fp32 asked for"}
    if not cpu_has_bf16():
        return predictor(), {"passed": False, "reason": "this CPU has no bf16"}
    path = f"serving/precision_gates/{model.name}-v{model.version}-{backend}.json"
    if lake.exists(path):
        gate = lake.read_json(path)
    else:
        held_out = _held_out(model, lake, settings)
        if held_out is None:
            return predictor(), {
                "passed": False,
                "reason": "no held-out images in the lake to check bf16 against fp32",
            }
        gate = precision_gate(model, *held_out, backend=backend, cache_dir=cache_dir)
        lake.write_json(path, gate)
    return predictor(bool(gate["passed"])), gate
