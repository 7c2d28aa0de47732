"""Quality on real photos over several seeds: `fruitops train`'s defaults (or any recipe) on
fruits-real, through the whole asset graph, with the spread a single run hides.

    .venv/bin/python benchmarks/quality_real.py                      # the default recipe, 3 seeds
    .venv/bin/python benchmarks/quality_real.py --set ema_epochs=0 --name no-ema   # a variant
    .venv/bin/python benchmarks/quality_real.py --archs cnn --name scratch         # from scratch
    .venv/bin/python benchmarks/quality_real.py --test                # the chosen one, on test

Each seed is one run of the asset graph up to the training report (ingest, validation and
the training cache once, then training, evaluation, promotion and report per seed) in its own
FRUITOPS_HOME. The registered models are then scored as serving loads them (the logged pt2
in fp32) on val, and on test only with ``--test``: variants are chosen on val, and test is
reported once per choice. Written to ``results/quality_<name>.json`` (mean, standard
deviation and range over seeds; a 95 % bootstrap interval over photos of the mean; the
per-class F1 table with the weakest classes; training time and img/s; the CPU) and
``results/quality_<name>_curves.png`` (validation macro-F1 per epoch, one line per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from fruitops_core.asset_keys import RAW_IMAGES, TRAINED_MODEL, TRAINING_CACHE, TRAINING_REPORT

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs, seeds 0..N-1 (default 3)")
    parser.add_argument("--archs", nargs="+", default=None, help="default: fruitops train's")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="recipe fields of models/trained_model (fruitops train --help lists them)",
    )
    parser.add_argument("--image-size", type=int, help="the cache's side; default: the asset's")
    parser.add_argument("--test", action="store_true", help="also score the test split")
    parser.add_argument("--name", default="default", help="names the result files")
    parser.add_argument("--home", type=Path, default=Path(".fruitops/bench/quality"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if not REAL.exists():
        raise SystemExit(f"{REAL} is missing: this benchmark needs the real fruit photos")
    shutil.rmtree(args.home, ignore_errors=True)
    os.environ["FRUITOPS_HOME"] = str(args.home.resolve())

    import numpy as np

    from fruitops_core.lake import lake_from_uri
    from fruitops_core.materialize import materialize
    from fruitops_core.records import load_value
    from fruitops_core.registry import AssetGraph
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_core.tracking import Tracking
    from fruitops_data.cache import open_split
    from fruitops_models.evaluation import predict_names
    from fruitops_models.hardware import cpu_features, cpu_summary
    from fruitops_models.metrics import bootstrap_interval, confusion_matrix, macro_f1, per_class

    recipe = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.archs:
        recipe["architectures"] = args.archs
    settings = FruitOpsSettings()
    graph = AssetGraph.from_entry_points()
    lake = lake_from_uri(settings.lake_root)
    tracking = Tracking(settings)
    data_config = {
        RAW_IMAGES: {"source": str(REAL)},
        TRAINING_CACHE: {"image_size": args.image_size} if args.image_size else {},
    }
    start = time.perf_counter()
    materialize([TRAINING_CACHE], with_upstream=True, settings=settings, config=data_config)
    data_seconds = time.perf_counter() - start

    runs = []
    for seed in range(args.seeds):
        materialize(
            [TRAINING_REPORT],
            with_upstream=True,
            settings=settings,
            config={**data_config, TRAINED_MODEL: {**recipe, "seed": seed}},
        )
        trained = load_value(lake, graph[TRAINED_MODEL])
        runs += [{"seed": seed, **c.model_dump()} for c in trained.candidates]

    cache = load_value(lake, graph[TRAINING_CACHE])
    classes = cache.classes
    splits = ["val", "test"] if args.test else ["val"]
    data = {s: open_split(lake, cache, s, settings.local_cache) for s in splits}
    truth = {s: np.asarray(d.labels) for s, d in data.items()}
    index = {name: i for i, name in enumerate(classes)}
    predicted: dict[tuple[str, str], list[np.ndarray]] = {}
    for run in runs:
        for split in splits:
            names = predict_names(tracking, run["model_uri"], data[split])
            predicted.setdefault((run["arch"], split), []).append(
                np.array([index[n] for n in names])
            )

    result = {
        "photos": f"fruits-real ({len(classes)} classes, "
        + " / ".join(f"{cache.splits[s].count} {s}" for s in ("train", "val", "test"))
        + ")",
        "recipe": recipe or "fruitops train's defaults",
        "seeds": args.seeds,
        "cpu": cpu_features(),
        "cpu_summary": cpu_summary(),
        "data_seconds": round(data_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "architectures": {},
    }
    for arch in dict.fromkeys(r["arch"] for r in runs):
        mine = [r for r in runs if r["arch"] == arch]
        summary: dict = {
            "per_seed": [
                {
                    "seed": r["seed"],
                    "version": r["version"],
                    "best_epoch": r["metrics"].get("best_epoch"),
                    "epochs_run": len(r["history"]),
                    "train_seconds": r["seconds"],
                    "images_per_second": r["images_per_second"],
                    "precision": r["precision"],
                }
                for r in mine
            ],
            "train_minutes": spread([r["seconds"] / 60 for r in mine]),
            "images_per_second": spread([r["images_per_second"] for r in mine]),
        }
        for split in splits:
            rows = predicted[(arch, split)]
            y = truth[split]
            confusions = [confusion_matrix(y, p, len(classes)) for p in rows]
            summary[split] = {
                "macro_f1": spread([macro_f1(c) for c in confusions]),
                "accuracy": spread([float((p == y).mean()) for p in rows]),
                "interval_of_mean": bootstrap_interval(y, np.stack(rows), len(classes)),
            }
            for run, confusion, p in zip(mine, confusions, rows, strict=True):
                run.setdefault("scores", {})[split] = {
                    "macro_f1": round(macro_f1(confusion), 4),
                    "accuracy": round(float((p == y).mean()), 4),
                }
            f1 = np.stack([per_class(c)[2] for c in confusions])  # seeds × classes
            table = sorted(
                (
                    {
                        "class": name,
                        "f1_mean": round(float(f1[:, i].mean()), 3),
                        "f1_min": round(float(f1[:, i].min()), 3),
                        "photos": int((y == i).sum()),
                    }
                    for i, name in enumerate(classes)
                ),
                key=lambda row: row["f1_mean"],
            )
            summary[split]["per_class"] = table
            summary[split]["weakest"] = table[:5]
        for run, row in zip(mine, summary["per_seed"], strict=True):
            row["scores"] = run["scores"]
        result["architectures"][arch] = summary

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"quality_{args.name}.json").write_text(json.dumps(result, indent=2))
    plot_curves(runs, args.out / f"quality_{args.name}_curves.png", cpu_summary())
    print(json.dumps(result["architectures"], indent=2))
    print(markdown(result, splits))


def markdown(result: dict, splits: list[str]) -> str:
    """docs/benchmarks.md's table: one row per architecture, mean ± sd over seeds, range."""
    headers = ["arch"]
    for split in splits:
        headers += [f"{split} macro-F1", f"{split} accuracy"]
    headers += ["training (min)", "img/s"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for arch, s in result["architectures"].items():
        cells = [f"`{arch}`"]
        for split in splits:
            for metric in ("macro_f1", "accuracy"):
                m = s[split][metric]
                cells.append(f"{m['mean']:.3f} ± {m['sd']:.3f} ({m['min']:.3f}–{m['max']:.3f})")
        cells += [f"{s['train_minutes']['mean']:.1f}", f"{s['images_per_second']['mean']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], path: Path, cpu: str) -> None:
    """Validation macro-F1 per epoch, one line per seed and architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        f1 = [h["val_macro_f1"] for h in run["history"]]
        ax.plot(range(1, len(f1) + 1), f1, "o-", label=f"{run['arch']} seed {run['seed']}")
    ax.set(xlabel="epoch", ylabel="val macro-F1", title=f"fruits-real, per seed\n{cpu}")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
