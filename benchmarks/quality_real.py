"""Quality on real photos: `fruitops train`'s defaults (the pretrained EfficientNet-Lite0
fine-tuned) on fruits-real on this CPU, or any architectures with their recipes.

    .venv/bin/python benchmarks/quality_real.py                         # the defaults
    .venv/bin/python benchmarks/quality_real.py --archs cnn resnet18    # from scratch

Runs the asset graph up to the training report (ingest, validation, cache, both candidates,
evaluation, promotion) in its own FRUITOPS_HOME, then writes the per-architecture scores and
times to results/quality_real.json and the report's validation curves to
results/quality_curves.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, help="default: each architecture's recipe")
    parser.add_argument("--image-size", type=int, help="the cache's side; default: the asset's")
    parser.add_argument("--batch-size", type=int, help="default: each architecture's recipe")
    parser.add_argument("--home", type=Path, default=Path(".fruitops/bench/quality"))
    parser.add_argument("--archs", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if not REAL.exists():
        raise SystemExit(f"{REAL} is missing: this benchmark needs the real fruit photos")
    shutil.rmtree(args.home, ignore_errors=True)
    os.environ["FRUITOPS_HOME"] = str(args.home.resolve())
    from fruitops_core.lake import lake_from_uri
    from fruitops_core.materialize import materialize
    from fruitops_core.settings import FruitOpsSettings

    settings = FruitOpsSettings()
    start = time.perf_counter()
    materialize(
        ["models/training_report"],
        with_upstream=True,
        settings=settings,
        config={
            "data/raw_images": {"source": str(REAL)},
            "data/training_cache": {"image_size": args.image_size} if args.image_size else {},
            "models/trained_model": {
                "architectures": args.archs,
                **({"epochs": args.epochs} if args.epochs else {}),
                **({"batch_size": args.batch_size} if args.batch_size else {}),
            },
        },
    )
    lake = lake_from_uri(settings.lake_root)
    trained = lake.read_json("assets/models/trained_model/current/data.json")
    report = lake.read_json("assets/models/training_report/current/data.json")
    result = {
        "photos": "fruits-real (28 classes, 1349 train / 288 val / 288 test)",
        "cache_image_size": args.image_size or "default",
        "epochs_max": args.epochs or "each recipe's",
        "total_seconds": round(time.perf_counter() - start, 1),
        "candidates": {
            c["arch"]: {
                **{
                    k: c["metrics"].get(k)
                    for k in (
                        "val_accuracy",
                        "val_macro_f1",
                        "test_accuracy",
                        "test_macro_f1",
                        "best_epoch",
                    )
                },
                "epochs_run": len(c["history"]),
                "train_minutes": round(c["seconds"] / 60, 2),
                "train_seconds": c["seconds"],
                "images_per_second": c["images_per_second"],
            }
            for c in trained["candidates"]
        },
        "winner_version": report["winner_version"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality_real.json").write_text(json.dumps(result, indent=2))
    shutil.copyfile(
        Path(lake.root) / "assets/models/training_report/current/curves.png",
        args.out / "quality_curves.png",
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
