"""Ingest + manifest + validation of many images, against a naive one-file-at-a-time loop.

    .venv/bin/python benchmarks/bench_ingest.py --files 50000 --small 5000

1. Draws a synthetic set in the Kaggle layout at the real photos' sizes (348x348, with
   348x464 and 464x348 in the proportions of fruits-real; every file distinct), once,
   under --workdir.
2. On the small set, times the naive manifest loop (read, hash, fully decode, one file after
   the other) against FruitOps' `build_manifest` (parallel threads, bounded windows) over the
   same files in the same run: the ratio is the speed-up of the decode stage.
3. Runs ingest + manifest + Great Expectations validation on the small and on the full set,
   each in a fresh process, and reports seconds and peak memory (RSS) of each.

Prints one JSON object and writes it to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fruitops_core.asset_keys import DATA_VALIDATION

CLASSES = 20
SPLITS = (("train1", 0.7), ("val1", 0.15), ("test1", 0.15))
#: width x height mix of the real fruit photos (1682 / 220 / 23 of 1925)
SIZES = ((348, 348), (348, 464), (464, 348))
SIZE_SHARES = (1682 / 1925, 220 / 1925, 23 / 1925)


def _draw_chunk(args: tuple[Path, int, int, int]) -> int:
    from fruitops_data.synthetic import FRUIT_NAMES, draw_image

    root, start, stop, seed = args
    rng = np.random.default_rng(seed)
    bases = [np.asarray(draw_image(c, 348, rng)) for c in range(CLASSES)]
    for i in range(start, stop):
        cls = i % CLASSES
        split = (
            SPLITS[0][0]
            if (i // CLASSES) % 20 < 14
            else (SPLITS[1][0] if (i // CLASSES) % 20 < 17 else SPLITS[2][0])
        )
        pixels = bases[cls]
        shape = rng.choice(len(SIZES), p=SIZE_SHARES)
        image = Image.fromarray(pixels).resize(SIZES[shape])
        folder = root / "Fruit_dataset" / split / FRUIT_NAMES[cls]
        folder.mkdir(parents=True, exist_ok=True)
        # the comment makes every file's bytes (and sha256) unique: no false leakage
        image.save(folder / f"img_{i:06d}.jpg", quality=88, comment=f"fruitops bench {i}")
    return stop - start


def make_dataset(root: Path, files: int) -> Path:
    done = root / ".complete"
    if done.exists() and done.read_text() == str(files):
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    step = 2000
    jobs = [(root, s, min(s + step, files), s) for s in range(0, files, step)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        drawn = sum(pool.map(_draw_chunk, jobs))
    done.write_text(str(drawn))
    return root


def naive_manifest(files: list[Path]) -> float:
    """The loop a notebook would write: every file read, hashed and decoded in turn."""
    start = time.perf_counter()
    rows = []
    for path in files:
        data = path.read_bytes()
        row = {"key": str(path), "sha256": hashlib.sha256(data).hexdigest()}
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            row["size"] = ImageOps.exif_transpose(image).size
        rows.append(row)
    return time.perf_counter() - start


def fruitops_manifest(files: list[Path]) -> float:
    from fruitops_data.manifest import build_manifest

    start = time.perf_counter()
    build_manifest(
        [(str(p), "train", p.parent.name) for p in files],
        lambda key: Path(key).read_bytes(),
        total=len(files),
    )
    return time.perf_counter() - start


def run_child(dataset: Path, assets: list[str]) -> dict:
    """Materialize ``assets`` in a fresh process; return its seconds and peak RSS."""
    home = Path(tempfile.mkdtemp(prefix="fruitops-bench-"))
    code = (
        "import json, resource, time\n"
        "from fruitops_core.materialize import materialize\n"
        "t = time.perf_counter()\n"
        f"records = materialize({assets!r}, with_upstream=True, config={{"
        f"'data/raw_images': {{'source': {str(dataset)!r}}},"
        "'data/data_validation': {'min_train_per_class': 1}})\n"
        "print(json.dumps({'seconds': time.perf_counter() - t,"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'stages': {r.asset_key: r.seconds for r in records},"
        " 'files': records[0].metadata['files']}))\n"
    )
    env = {**os.environ, "FRUITOPS_HOME": str(home), "MLFLOW_TRACKING_URI": "", "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    shutil.rmtree(home, ignore_errors=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--workdir", type=Path, default=Path(".fruitops/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest.json"))
    args = parser.parse_args()

    small = make_dataset(args.workdir / f"set-{args.small}", args.small)
    full = make_dataset(args.workdir / f"set-{args.files}", args.files)
    files = sorted((small / "Fruit_dataset").rglob("*.jpg"))
    naive_s = min(naive_manifest(files) for _ in range(2))  # best of 2, warm page cache
    ours_s = min(fruitops_manifest(files) for _ in range(2))
    with_validation = [DATA_VALIDATION]
    result = {
        "cpu": cpu_features(),
        "machine": {"cpus": os.cpu_count()},
        "manifest_decode": {
            "files": len(files),
            "naive_seconds": round(naive_s, 2),
            "fruitops_seconds": round(ours_s, 2),
            "speedup": round(naive_s / ours_s, 2),
        },
        "with_validation": {
            str(n): run_child(ds, with_validation)
            for n, ds in ((args.small, small), (args.files, full))
        },
    }
    result["target"] = {
        "files": args.files,
        "under_seconds": 120,
        "met": result["with_validation"][str(args.files)]["seconds"] < 120,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
