"""Time to accuracy (the DAWNBench idea): wall time until val macro-F1 ≥ a target, fine-tuning
the same ImageNet EfficientNet-Lite0 two ways on fruits-real.

    .venv/bin/python benchmarks/bench_transfer.py --target 0.80 --naive-minutes 25

FruitOps: the training cache built from the photos (timed), then `train()` with the default
recipe (the precision the hardware gives, channels_last, the lower blocks frozen, the head at
a higher rate).
Naive, like the original project's loop: PIL decode and torchvision transforms every epoch,
fp32 eager, every layer fine-tuned with Adam. Both are scored on the val split after every
epoch, and the clock stops at the first epoch that reaches the target; the naive loop stops
at ``--naive-minutes`` (the ratio is then a lower bound, and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from fruitops_core.asset_keys import TRAINING_CACHE

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"
ARCH = "efficientnet_lite0"


class Reached(Exception):
    """Raised from the epoch callback: the target is reached, stop the clock."""


def fruitops_run(home: Path, target: float) -> dict:
    os.environ["FRUITOPS_HOME"] = str(home)
    from fruitops_core.lake import lake_from_uri
    from fruitops_core.materialize import materialize
    from fruitops_core.records import load_value
    from fruitops_core.registry import AssetGraph
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_models.config import TrainConfig
    from fruitops_models.train import train
    from fruitops_models.training_run import open_splits

    settings = FruitOpsSettings()
    start = time.perf_counter()
    config = {"data/raw_images": {"source": str(REAL)}}
    materialize([TRAINING_CACHE], with_upstream=True, settings=settings, config=config)
    lake = lake_from_uri(settings.lake_root)
    cache = load_value(lake, AssetGraph.from_entry_points()[TRAINING_CACHE])
    splits = open_splits(lake, cache, settings)
    cache_seconds = time.perf_counter() - start
    curve: list[dict] = []

    def on_epoch(epoch: int, row: dict) -> None:
        curve.append({"epoch": epoch, "seconds": round(time.perf_counter() - start, 1),
                      "val_macro_f1": round(row["val_macro_f1"], 4)})  # fmt: skip
        print("fruitops", curve[-1], flush=True)
        if row["val_macro_f1"] >= target:
            raise Reached

    try:
        train(TrainConfig(arch=ARCH), splits["train"], splits["val"], cache.classes,
              on_epoch=on_epoch)  # fmt: skip
    except Reached:
        pass
    reached = bool(curve) and curve[-1]["val_macro_f1"] >= target
    return {"seconds": curve[-1]["seconds"] if reached else None, "reached": reached,
            "cache_seconds": round(cache_seconds, 1), "curve": curve}  # fmt: skip


def naive_run(target: float, minutes: float) -> dict:
    """The original project's way: PIL + torchvision transforms each epoch, fp32, Adam."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from fruitops_models.architectures import build_model
    from fruitops_models.metrics import classification_metrics

    start = time.perf_counter()
    root = REAL / "Fruit_dataset"
    classes = sorted(p.name for p in (root / "train1").iterdir())
    normalise = transforms.Normalize([127 / 255] * 3, [128 / 255] * 3)
    augment = [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()]
    train_tf = transforms.Compose([*augment, transforms.ToTensor(), normalise])
    val_tf = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(), normalise])

    class Photos(Dataset):
        def __init__(self, split: str, tf):
            self.items = [(p, i) for i, c in enumerate(classes)
                          for p in sorted((root / split / c).glob("*.jpg"))]  # fmt: skip
            self.tf = tf

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int):
            path, label = self.items[i]
            with Image.open(path) as image:
                return self.tf(image.convert("RGB")), label

    torch.manual_seed(0)
    model = build_model(ARCH, len(classes), pretrained=True, finetune="full")
    # the normalisation is done by the transforms here, as in the original project
    net = model.backbone
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_loader = DataLoader(Photos("train1", train_tf), batch_size=32, shuffle=True)
    val_loader = DataLoader(Photos("val1", val_tf), batch_size=32)
    curve: list[dict] = []
    epoch = 0
    while time.perf_counter() - start < minutes * 60:
        epoch += 1
        net.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
            if time.perf_counter() - start > minutes * 60:
                break
        net.eval()
        probs, labels = [], []
        with torch.no_grad():
            for x, y in val_loader:
                probs.append(torch.softmax(net(x), 1).numpy())
                labels.append(y.numpy())
        f1 = classification_metrics(np.concatenate(labels), np.concatenate(probs), len(classes))[0][
            "macro_f1"
        ]
        curve.append({"epoch": epoch, "seconds": round(time.perf_counter() - start, 1),
                      "val_macro_f1": round(float(f1), 4)})  # fmt: skip
        print("naive", curve[-1], flush=True)
        if f1 >= target:
            return {"seconds": curve[-1]["seconds"], "reached": True, "curve": curve}
    stopped = round(time.perf_counter() - start, 1)
    return {"seconds": None, "reached": False, "stopped_after_seconds": stopped, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.80)
    parser.add_argument("--naive-minutes", type=float, default=25.0)
    parser.add_argument("--home", type=Path, default=Path(".fruitops/bench/transfer"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transfer.json"))
    args = parser.parse_args()
    if not REAL.exists():
        raise SystemExit(f"{REAL} is missing: this benchmark needs the real fruit photos")
    shutil.rmtree(args.home, ignore_errors=True)
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    ours = fruitops_run(args.home.resolve(), args.target)
    naive = naive_run(args.target, args.naive_minutes)
    naive_s = naive["seconds"] or naive["stopped_after_seconds"]
    result = {
        "target_val_macro_f1": args.target,
        "threads": torch.get_num_threads(),
        "cpu": cpu_features(),
        "fruitops": ours,
        "naive": naive,
        "speedup": round(naive_s / ours["seconds"], 2) if ours["seconds"] else None,
        "speedup_is_lower_bound": not naive["reached"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
