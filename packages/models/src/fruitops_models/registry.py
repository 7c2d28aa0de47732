"""The MLflow model registry: log and register a trained model, promote by alias.

The model is logged in the ``pt2`` format (``torch.export``): self-contained, so loading it
needs neither this package's classes nor pickle. Class names and the image size travel as
model metadata, so a scorer needs nothing but the model URI.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import CHAMPION_ALIAS
from fruitops_models.architectures import IMAGENET_MEAN, IMAGENET_STD

INPUT_DESCRIPTION = "float32 RGB in [0, 1], NCHW, resized to image_size x image_size"


def log_and_register(
    model: torch.nn.Module,
    classes: list[str],
    image_size: int,
    example: torch.Tensor,
    settings: FruitOpsSettings,
    arch: str,
) -> dict[str, Any]:
    """Log ``model`` to the active run and register it; return its URI and version."""
    if example.shape[0] < 2:
        raise ValueError("the input example needs at least 2 images (pt2 export traces batch>1)")
    model.eval()
    example_np = example[:2].float().div(255.0).numpy().astype(np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example_np)).numpy()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pt2",
        signature=infer_signature(example_np, output),
        input_example=example_np,
        registered_model_name=settings.registered_model,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        metadata={
            "classes": classes,
            "image_size": image_size,
            "input": INPUT_DESCRIPTION,
            "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "inside_model": True},
            "arch": arch,
        },
    )
    version = int(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(settings.registered_model, str(version), "arch", arch)
    return {
        "model_uri": f"models:/{settings.registered_model}/{version}",
        "logged_model_uri": info.model_uri,
        "name": settings.registered_model,
        "version": version,
    }


def promote_if_better(
    settings: FruitOpsSettings, version: int, metric: str, margin: float
) -> dict[str, Any]:
    """Give ``version`` the champion alias if its ``metric`` beats the champion's by ``margin``.

    The first model becomes champion. The decision and both scores are recorded as tags on
    the candidate version.
    """
    client = mlflow.MlflowClient()
    name = settings.registered_model
    candidate = client.get_model_version(name, str(version))
    candidate_score = client.get_run(candidate.run_id).data.metrics.get(metric)
    if candidate_score is None:
        raise ValueError(f"run {candidate.run_id} of {name} v{version} has no metric {metric!r}")
    try:
        current = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        current = None
    champion_score = None
    if current is None:
        promoted, reason = True, "no champion yet"
    elif int(current.version) == version:
        promoted, reason = True, "already champion"
        champion_score = candidate_score
    else:
        champion_score = client.get_run(current.run_id).data.metrics.get(metric, float("-inf"))
        promoted = candidate_score > champion_score + margin
        reason = (
            f"{metric} {candidate_score:.4f} vs champion v{current.version} "
            f"{champion_score:.4f} (margin {margin})"
        )
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    decision = {
        "promoted": promoted,
        "reason": reason,
        "metric": metric,
        "candidate_version": version,
        "candidate_score": candidate_score,
        "previous_champion_version": int(current.version) if current else None,
        "previous_champion_score": champion_score,
    }
    for key in ("promoted", "reason", "candidate_score", "previous_champion_score"):
        client.set_model_version_tag(name, str(version), f"promotion.{key}", str(decision[key]))
    return decision
