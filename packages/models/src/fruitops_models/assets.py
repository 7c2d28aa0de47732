"""Assets of the ``models/`` group: a trained, registered model and the champion decision."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from fruitops_core.assets import AssetContext, asset
from fruitops_core.tracking import champion_uri, configure_mlflow
from fruitops_models.config import PromotionConfig, TrainConfig

# torch, MLflow and the training code are imported inside the asset functions: the asset
# graph (and so every Airflow DAG file) must load in a moment, without them.


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short hash of what the model was trained on: every key and its content hash."""
    digest = hashlib.sha256()
    for key, sha in sorted(zip(manifest["key"], manifest["sha256"], strict=True)):
        digest.update(f"{key}\0{sha}\n".encode())
    return digest.hexdigest()[:16]


@asset("models/trained_model", deps=["data/image_manifest"], config=TrainConfig)
def trained_model(ctx: AssetContext[TrainConfig], image_manifest: pd.DataFrame) -> dict[str, Any]:
    """A model trained on the manifest's train split, logged and registered in MLflow."""
    import mlflow
    import torch

    from fruitops_models import plots
    from fruitops_models.registry import log_and_register
    from fruitops_models.train import evaluate, load_split, train

    config = ctx.config
    usable = image_manifest[image_manifest["readable"] & image_manifest["label"].notna()]
    classes = sorted(usable.loc[usable["split"] == "train", "label"].unique())
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    splits = {
        split: load_split(image_manifest, split, classes, ctx.lake.read_bytes, config.image_size)
        for split in ("train", "val", "test")
    }
    configure_mlflow(ctx.settings)
    tags = {
        "fruitops_kind": "training",
        "fruitops_asset_run_id": ctx.run_id,
        "manifest_hash": manifest_hash(image_manifest),
        "dataset_source": ctx.settings.source,
    }
    with mlflow.start_run(run_name=f"{config.arch}-{ctx.run_id}", tags=tags) as run:
        mlflow.log_params(
            {
                **config.model_dump(),
                "classes": len(classes),
                "train_images": len(splits["train"].labels),
            }
        )
        result = train(
            config,
            splits["train"],
            splits["val"],
            classes,
            on_epoch=lambda epoch, row: mlflow.log_metrics(
                {f"epoch/{k}": v for k, v in row.items()}, step=epoch
            ),
        )
        # per-epoch curves live under epoch/…; the plain names hold the chosen model's scores
        final: dict[str, float] = {}
        for split in ("val", "test"):
            if len(splits[split].labels) == 0:
                continue
            metrics, confusion = evaluate(result.model, splits[split], len(classes))
            final.update({f"{split}_{k}": v for k, v in metrics.items()})
            mlflow.log_figure(
                plots.confusion_matrix(confusion, classes, f"{split} confusion"),
                f"plots/confusion_{split}.png",
            )
        mlflow.log_metrics(final)
        mlflow.log_figure(
            plots.training_curves(result.history, f"{config.arch} training"),
            "plots/training_curves.png",
        )
        mlflow.log_dict({"classes": classes}, "classes.json")
        registered = log_and_register(
            result.model,
            classes,
            config.image_size,
            splits["val"].images[:2]
            if len(splits["val"].labels) >= 2
            else splits["train"].images[:2],
            ctx.settings,
            config.arch,
        )
    ctx.add_metadata(
        run_id=run.info.run_id,
        version=registered["version"],
        **{k: round(v, 4) for k, v in final.items()},
    )
    return {
        "run_id": run.info.run_id,
        "arch": config.arch,
        "classes": classes,
        "metrics": final,
        **registered,
    }


@asset("models/champion_model", deps=["models/trained_model"], config=PromotionConfig)
def champion_model(
    ctx: AssetContext[PromotionConfig], trained_model: dict[str, Any]
) -> dict[str, Any]:
    """The registry's champion after weighing the new candidate against it."""
    import mlflow

    from fruitops_models.registry import promote_if_better

    configure_mlflow(ctx.settings)
    decision = promote_if_better(
        ctx.settings, trained_model["version"], ctx.config.metric, ctx.config.margin
    )
    client = mlflow.MlflowClient()
    current = client.get_model_version_by_alias(ctx.settings.registered_model, "champion")
    ctx.add_metadata(promoted=decision["promoted"], champion_version=int(current.version))
    ctx.log.info("promotion: %s", decision["reason"])
    return {
        "name": current.name,
        "version": int(current.version),
        "run_id": current.run_id,
        "model_uri": f"models:/{current.name}/{current.version}",
        "alias_uri": champion_uri(ctx.settings),
        "decision": decision,
    }
