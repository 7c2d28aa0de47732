"""Monitoring at scale: features of 5,000 images, and a 5,000 vs 5,000 Evidently report.

    .venv/bin/python benchmarks/bench_monitor.py --images 5000

1. Features (image statistics and the model's view: class, confidence, entropy, margin,
   embedding components) of N real photos (the fruits-real JPEGs, repeated to N), streamed
   to a Parquet table by `build_features`, each size in a fresh process: seconds, images/s
   and peak RSS at N/10 and N (flat memory means the two peaks are close).
2. The drift report of N reference rows against N current rows (the same photos darkened,
   so the report has real work to show): seconds for `drift_report` + HTML + JSON.
   Target: under 30 s on this 2-core machine.

The model is a small CNN with fixed random weights at 128 px (`cnn`, as the champion of
`quality_real.py`): the benchmark needs no registry, and the cost of its forward pass is
the same as a trained one's. Prints one JSON object and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"

CHILD = """
import json, resource, sys, time
from pathlib import Path
import torch
from fruitops_models.architectures import FruitClassifier, build_backbone
from fruitops_models.registry import LoadedModel
from fruitops_monitoring.profile import build_features

files = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
torch.manual_seed(0)
model = LoadedModel(FruitClassifier(build_backbone("cnn", 28)).eval(),
                    [str(i) for i in range(28)], 128, "bench", 1, "-", "bench")
start = time.perf_counter()
built = build_features([str(p) for p in files], lambda k: Path(k).read_bytes(),
                       Path(sys.argv[2]), model=model, fit_components=4, total=len(files))
print(json.dumps({"images": len(files), "rows": built.rows,
                  "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def features_child(files: list[Path], workdir: Path) -> dict:
    listing = workdir / f"files-{len(files)}.json"
    listing.write_text(json.dumps([str(p) for p in files]))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(listing), str(workdir / f"features-{len(files)}.pq")],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/monitor.json"))
    args = parser.parse_args()
    if not REAL.exists():
        raise SystemExit(f"{REAL} is missing: this benchmark needs the real fruit photos")
    import pandas as pd

    from fruitops_monitoring.drift import DriftPolicy, drift_decision, drift_report

    photos = sorted((REAL / "Fruit_dataset").rglob("*.jpg"))
    files = [photos[i % len(photos)] for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = features_child(files[: args.images // 10], work)
        full = features_child(files, work)
        reference = pd.read_parquet(work / f"features-{len(files)}.pq")
    current = reference.copy()
    for column in ("brightness", "mean_r", "mean_g", "mean_b"):
        current[column] = current[column] * 0.6  # a dimmer camera
    start = time.perf_counter()
    snapshot = drift_report(reference, current, DriftPolicy())
    decision = drift_decision(snapshot.dict(), DriftPolicy())
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.save_html(str(Path(tmp) / "report.html"))
        html_mb = (Path(tmp) / "report.html").stat().st_size / 2**20
    snapshot.json()
    report_s = time.perf_counter() - start
    result = {
        "cpu": cpu_features(),
        "machine": {"cpus": os.cpu_count()},
        "features": {
            str(small["images"]): {
                "seconds": round(small["seconds"], 1),
                "img_per_s": round(small["images"] / small["seconds"], 1),
                "peak_rss_mb": round(small["peak_rss_mb"]),
            },
            str(full["images"]): {
                "seconds": round(full["seconds"], 1),
                "img_per_s": round(full["images"] / full["seconds"], 1),
                "peak_rss_mb": round(full["peak_rss_mb"]),
            },
        },
        "rss_growth": round(full["peak_rss_mb"] / small["peak_rss_mb"] - 1, 3),
        "report": {
            "reference_rows": len(reference),
            "current_rows": len(current),
            "columns": len(reference.columns) - 1,
            "seconds": round(report_s, 1),
            "html_mb": round(html_mb, 1),
            "target_seconds": 30,
            "met": report_s < 30,
            "drifted_columns": decision["drifted_columns"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
