"""Training throughput: FruitOps' defaults against the original project's naive loop.

    .venv/bin/python benchmarks/bench_train.py --size 128 --images 512 --epochs 3

Naive (like the original ``train.py``): a Dataset that opens every JPEG with PIL, resizes and
normalises it on every epoch, one process, fp32 eager, Adam. FruitOps: the same photos decoded
once into the uint8 training cache (its build time is reported apart), then ``train()`` with
its defaults (tensor augmentation, bf16 autocast + channels_last where the CPU has bf16,
AdamW, warm-up + cosine). Both train the same architecture on the same images for the same
number of epochs, batch 64, in this one run; the ratio is images per second over the epochs
after the first: the first epoch of each is a warm-up (oneDNN builds its kernels for the
shapes it meets, the allocator grows), excluded from both, as a user training for tens of
epochs never sees it again.

A shared VM's speed drifts by tens of percent over minutes, so naive and FruitOps take turns
for ``--rounds`` rounds and the reported ratio is the median of the rounds' ratios (each
round's pair ran back to back); every round is in the JSON. The roofline part says how close
each step is to what the CPU can do: the training FLOPs of one image (forward + backward, by
``torch.utils.flop_counter``) against this machine's fp32 and bf16 matmul peaks.

Photos: ../shared/datasets/fruits-real when present, else a synthetic set.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch
from PIL import Image
from roofline import matmul_peak_gflops
from torch import nn

from fruitops_data.cache import CachedSplit
from fruitops_data.images import decode_array
from fruitops_models.architectures import IMAGENET_MEAN, IMAGENET_STD, build_backbone
from fruitops_models.config import TrainConfig
from fruitops_models.train import train

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"


def photos(limit: int) -> tuple[list[Path], list[int], list[str]]:
    root = REAL / "Fruit_dataset" / "train1"
    if not root.exists():
        from fruitops_data.synthetic import SyntheticSpec, generate

        root = (
            generate(
                SyntheticSpec(classes=10, per_class=80, size=348, seed=0),
                Path(".fruitops/bench/train-synthetic"),
            )
            / "train1"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = sorted((p, i) for i, c in enumerate(classes) for p in (root / c).glob("*.jpg"))
    rng = np.random.default_rng(0)
    chosen = rng.permutation(len(files))[:limit]
    return [files[i][0] for i in chosen], [files[i][1] for i in chosen], classes


def steady_rate(images_per_epoch: int, epoch_ends: list[float]) -> float:
    """Images per second from the end of the first (warm-up) epoch to the end of the last."""
    if len(epoch_ends) < 2:
        raise ValueError("need at least 2 epochs: the first is the warm-up")
    return images_per_epoch * (len(epoch_ends) - 1) / (epoch_ends[-1] - epoch_ends[0])


def naive_images_per_second(
    arch: str, files, labels, classes, size: int, epochs: int, batch: int, device: str = "cpu"
) -> float:
    """PIL decode + resize + normalise of every image on every epoch, fp32 eager, Adam."""
    torch.manual_seed(0)
    model = build_backbone(arch, len(classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    epoch_ends = []
    for _ in range(epochs):
        order = np.random.permutation(len(files))
        model.train()
        for s in range(0, len(order), batch):
            idx = order[s : s + batch]
            tensors = []
            for i in idx:
                with Image.open(files[i]) as image:
                    array = np.asarray(image.convert("RGB").resize((size, size)), np.float32)
                tensors.append((torch.from_numpy(array).permute(2, 0, 1) / 255.0 - mean) / std)
            x = torch.stack(tensors).to(device)
            y = torch.tensor([labels[i] for i in idx], device=device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        loss.item()  # waits for the device's queue before the clock reads
        epoch_ends.append(time.perf_counter())
    return steady_rate(len(files), epoch_ends)


def fruitops_images_per_second(
    arch: str, files, labels, classes, size: int, epochs: int, batch: int
) -> tuple[float, float, str]:
    start = time.perf_counter()
    images = np.stack([decode_array(p.read_bytes(), size).transpose(2, 0, 1) for p in files])
    cache_seconds = time.perf_counter() - start
    split = CachedSplit([images], np.asarray(labels, np.int64), [str(p) for p in files])
    tiny_val = CachedSplit([images[:2]], split.labels[:2], split.keys[:2])
    config = TrainConfig(arch=arch, epochs=epochs, batch_size=batch, patience=epochs + 1)
    epoch_ends: list[float] = []
    result = train(
        config, split, tiny_val, classes, on_epoch=lambda *_: epoch_ends.append(time.perf_counter())
    )
    return steady_rate(len(files), epoch_ends), cache_seconds, result.precision


def training_gflop_per_image(arch: str, classes: int, size: int) -> float:
    """Forward + backward FLOPs of one image (convolutions and matmuls), batch 8."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_backbone(arch, classes)
    x = torch.rand(8, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 8 / 1e9


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--archs", nargs="+", default=["cnn", "resnet18"])
    parser.add_argument("--rounds", type=int, default=3, help="naive/FruitOps turns per arch")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train.json"))
    args = parser.parse_args()
    files, labels, classes = photos(args.images)
    result = {
        "cpu": cpu_features(),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "images": len(files),
        "image_size": args.size,
        "epochs": args.epochs,
        "batch": args.batch,
        "photos": "fruits-real" if REAL.exists() else "synthetic",
        "archs": {},
    }
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    result["matmul_peak_gflops"] = {k: round(v) for k, v in peaks.items()}
    for arch in args.archs:
        rounds = []
        for _ in range(args.rounds):
            naive = naive_images_per_second(
                arch, files, labels, classes, args.size, args.epochs, args.batch
            )
            ours, cache_s, precision = fruitops_images_per_second(
                arch, files, labels, classes, args.size, args.epochs, args.batch
            )
            rounds.append({"naive": round(naive, 1), "fruitops": round(ours, 1)})
        naive = median([r["naive"] for r in rounds])
        ours = median([r["fruitops"] for r in rounds])
        gflop = training_gflop_per_image(arch, len(classes), args.size)
        fruitops_peak = peaks["bf16" if precision == "bfloat16" else "fp32"]
        result["archs"][arch] = {
            "naive_img_per_s": naive,
            "fruitops_img_per_s": ours,
            "speedup": round(median([r["fruitops"] / r["naive"] for r in rounds]), 2),
            "speedup_per_round": [round(r["fruitops"] / r["naive"], 2) for r in rounds],
            "rounds": rounds,
            "precision": precision,
            "cache_build_seconds": round(cache_s, 2),
            "training_gflop_per_image": round(gflop, 2),
            "naive_share_of_fp32_peak": round(naive * gflop / peaks["fp32"], 2),
            "fruitops_share_of_peak": round(ours * gflop / fruitops_peak, 2),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
