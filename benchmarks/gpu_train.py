"""One short CUDA + AMP training on real photos, with the naive loop on the same GPU.

    python benchmarks/gpu_train.py --photos PATH/fruits-real --out result.json

For a machine with an NVIDIA GPU (CI has none; this is run by hand and its figures go on
docs/benchmarks.md). For each architecture: the naive loop of ``bench_train.py`` (PIL decode
every epoch, fp32 eager, Adam) moved to the GPU, against ``train()`` with its defaults, which on
CUDA means AMP (bf16 autocast where the GPU has bf16, fp16 with a GradScaler elsewhere) and
channels_last, from the uint8 cache. Also reported: val macro-F1 after the short run, the
peak GPU memory, and, with ``--compile``, the same run under ``torch.compile``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from bench_train import naive_images_per_second

from fruitops_data.cache import CachedSplit
from fruitops_data.images import decode_array
from fruitops_models.config import TrainConfig
from fruitops_models.train import train


def load_split(root: Path, classes: list[str], size: int) -> tuple[CachedSplit, list[Path]]:
    files = sorted((p, i) for i, c in enumerate(classes) for p in (root / c).glob("*.jpg"))
    with ThreadPoolExecutor(8) as pool:
        arrays = list(
            pool.map(lambda f: decode_array(f[0].read_bytes(), size).transpose(2, 0, 1), files)
        )
    labels = np.asarray([i for _, i in files], np.int64)
    return CachedSplit([np.stack(arrays)], labels, [str(p) for p, _ in files]), [
        p for p, _ in files
    ]


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="a fruits-real folder")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--archs", nargs="+", default=["cnn", "resnet18"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_train.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a machine with an NVIDIA GPU")
    root = args.photos / "Fruit_dataset"
    classes = sorted(p.name for p in (root / "train1").iterdir() if p.is_dir())
    t0 = time.perf_counter()
    train_split, train_files = load_split(root / "train1", classes, args.size)
    val_split, _ = load_split(root / "val1", classes, args.size)
    result = {
        "cpu": cpu_features(),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cache_seconds": round(time.perf_counter() - t0, 2),
        "train_images": len(train_split),
        "val_images": len(val_split),
        "image_size": args.size,
        "epochs": args.epochs,
        "batch": args.batch,
        "archs": {},
    }
    for arch in args.archs:
        naive = naive_images_per_second(
            arch,
            train_files,
            train_split.labels.tolist(),
            classes,
            args.size,
            2,  # the first is a warm-up
            args.batch,
            device="cuda",
        )
        runs = {}
        for compiled in [False, True] if args.compile else [False]:
            torch.cuda.reset_peak_memory_stats()
            config = TrainConfig(
                arch=arch,
                epochs=args.epochs,
                batch_size=args.batch,
                patience=args.epochs + 1,
                compile=compiled,
            )
            out = train(config, train_split, val_split, classes)
            runs["compiled" if compiled else "eager"] = {
                "img_per_s": round(out.images_per_second, 1),
                "seconds": round(out.seconds, 1),
                "precision": out.precision,
                "best_val_macro_f1": round(max(h["val_macro_f1"] for h in out.history), 3),
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20),
            }
        result["archs"][arch] = {
            "naive_fp32_img_per_s": round(naive, 1),
            **runs,
            "speedup": round(runs["eager"]["img_per_s"] / naive, 2),
        }
        print(json.dumps({arch: result["archs"][arch]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
