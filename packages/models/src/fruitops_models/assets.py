"""Assets of the ``models/`` group: a trained, registered model and the champion decision."""

from __future__ import annotations

from typing import Any

from fruitops_core.assets import AssetContext, asset
from fruitops_core.tracking import champion_uri, configure_mlflow
from fruitops_models.config import PromotionConfig, TrainConfig

# torch, MLflow and the training code are imported inside the asset functions: the asset
# graph (and so every Airflow DAG file) must load in a moment, without them.


@asset("models/trained_model", deps=["data/training_cache"], config=TrainConfig)
def trained_model(ctx: AssetContext[TrainConfig], training_cache: dict[str, Any]) -> dict[str, Any]:
    """A model trained on the manifest's train split, logged and registered in MLflow."""
    import mlflow
    import numpy as np
    import torch

    from fruitops_data.cache import open_split
    from fruitops_models import plots
    from fruitops_models.registry import log_and_register
    from fruitops_models.train import evaluate, train

    config = ctx.config
    classes = training_cache["classes"]
    image_size = training_cache["image_size"]
    workdir = ctx.settings.home / "cache-local"
    splits = {s: open_split(ctx.lake, training_cache, s, workdir) for s in ("train", "val", "test")}
    configure_mlflow(ctx.settings)
    tags = {
        "fruitops_kind": "training",
        "fruitops_asset_run_id": ctx.run_id,
        "manifest_hash": training_cache["manifest_hash"],
        "validation_success": str(training_cache["validation_success"]),
        "dataset_source": training_cache["source"],
    }
    with mlflow.start_run(run_name=f"{config.arch}-{ctx.run_id}", tags=tags) as run:
        mlflow.log_params(
            {
                **config.model_dump(),
                "image_size": image_size,
                "classes": len(classes),
                "train_images": len(splits["train"]),
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
            if len(splits[split]) == 0:
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
            image_size,
            torch.from_numpy(
                splits["val" if len(splits["val"]) >= 2 else "train"].take(np.arange(2))
            ),
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
