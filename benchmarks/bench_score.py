"""Batch scoring as a user sees it: the whole `fruitops score` process against the original
project's evaluation loop, each with its own start-up.

    .venv/bin/python benchmarks/quality_real.py          # once: a champion trained on real photos
    .venv/bin/python benchmarks/bench_score.py --home .fruitops/bench/quality

Both score the same batch of real JPEGs (every photo of ../shared/datasets/fruits-real,
hard-linked --copies times: 5,775 files) with the same registered champion, each as its own
process timed from start to exit. Naive: import torch and MLflow, load the logged module, a
torch Dataset with PIL open + torchvision Resize/ToTensor, a DataLoader of batch 32 without
workers, fp32 eager. FruitOps: `fruitops score FOLDER` (threaded draft decoding overlapped
with inference, the default back end in the precision the gate chose, streamed Parquet),
once cold (no OpenVINO cache: the pt2 is loaded, converted and compiled) and once warm.
Start-up is `fruitops score` on a folder of one photo, warm. Top-1 agreement of the two
tables is reported.

Also, for the model part alone (batch 128, the held-out photos): every back end measured here
(torch eager fp32 and bf16 + channels_last, torch.compile with freezing, ONNX Runtime,
OpenVINO f32, bf16 and int8) with its top-1 agreement with the fp32 module: the table the default
back end is chosen from. And peak RSS of scoring 2,000 and 20,000 images (a list repeating
the photos), and the model part's share of this CPU's bf16 matmul peak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from roofline import matmul_peak_gflops

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"


NAIVE = """
import json, sys, time
import mlflow, torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_models.registry import load_model
tracking = Tracking(FruitOpsSettings())
model = load_model(tracking, tracking.champion_uri)
files = json.load(open(sys.argv[1]))
tf = transforms.Compose(
    [transforms.Resize((model.image_size, model.image_size)), transforms.ToTensor()])
class Photos(Dataset):
    def __len__(self):
        return len(files)
    def __getitem__(self, i):
        with Image.open(files[i]) as image:
            return tf(image.convert("RGB"))
labels = []
with torch.no_grad():
    for batch in DataLoader(Photos(), batch_size=32, num_workers=0):
        labels += torch.softmax(model.module(batch), dim=1).argmax(1).tolist()
json.dump([model.classes[i] for i in labels], open(sys.argv[2], "w"))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    """Wall seconds of a whole process, from start to exit, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return time.perf_counter() - start, done.stdout


def linked_batch(files: list[Path], folder: Path, copies: int) -> list[Path]:
    """``copies`` hard-linked copies of every photo: a big batch of real JPEGs, no disk cost."""
    out = []
    for c in range(copies):
        for i, path in enumerate(files):
            target = folder / f"copy{c}" / f"{i:05d}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(path, target)
            out.append(target)
    return out


def end_to_end(home: Path, files: list[Path], copies: int, workdir: Path) -> dict:
    """`fruitops score` (cold, warm, start-up) and the naive loop, each as a whole process."""
    import pandas as pd

    env = {**os.environ, "FRUITOPS_HOME": str(home), "TQDM_DISABLE": "1"}
    batch = workdir / "batch"
    paths = linked_batch(files, batch, copies)
    one = workdir / "one"
    linked_batch(files[:1], one, 1)
    fruitops = [str(Path(sys.executable).parent / "fruitops"), "score"]
    shutil.rmtree(home / "cache-local" / "openvino", ignore_errors=True)
    out = workdir / "ours.parquet"
    cold, _ = timed([*fruitops, str(batch), "--output", str(out), "--json"], env)
    warm, stdout = timed([*fruitops, str(batch), "--output", str(out), "--json"], env)
    startup, _ = timed([*fruitops, str(one), "--output", str(workdir / "one.parquet")], env)
    listed = workdir / "files.json"
    listed.write_text(json.dumps([str(p) for p in paths]))
    script = workdir / "naive.py"
    script.write_text(NAIVE)
    naive_labels = workdir / "naive.json"
    naive, _ = timed([sys.executable, str(script), str(listed), str(naive_labels)], env)
    ours = pd.read_parquet(out).set_index("key")["label"]
    theirs = json.loads(naive_labels.read_text())
    keys = [str(p.relative_to(batch)) for p in paths]
    agreement = float(np.mean([ours.get(k) == t for k, t in zip(keys, theirs, strict=True)]))
    scored = json.loads(stdout)
    return {
        "images": len(paths),
        "naive_seconds": round(naive, 1),
        "fruitops_cold_seconds": round(cold, 1),
        "fruitops_warm_seconds": round(warm, 1),
        "fruitops_warm_startup_seconds": round(startup, 2),
        "speedup_warm": round(naive / warm, 2),
        "speedup_cold": round(naive / cold, 2),
        "top1_agreement": round(agreement, 4),
        "backend": scored["backend"],
        "precision": scored["precision"],
        "gate": scored["precision_gate"],
    }


def _rate(fn, batch: torch.Tensor, repeats: int = 5) -> float:
    fn(batch)  # warm-up: kernels built, caches filled
    start = time.perf_counter()
    for _ in range(repeats):
        fn(batch)
    return repeats * len(batch) / (time.perf_counter() - start)


def _torch_compiled(model, bf16: bool):
    import torch._inductor.config as inductor

    inductor.freezing = True  # weights become constants: folded BN, prepacked convolutions
    compiled = torch.compile(model.module)

    def run(batch: torch.Tensor) -> torch.Tensor:
        x = batch.float().div_(255.0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return compiled(x.contiguous(memory_format=torch.channels_last)).float()

    return run


class _Frozen(torch.nn.Module):
    """Holds the exported program's module without registering it: the TorchScript-based
    ONNX exporter switches modes with train(), which an exported module refuses."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        self.__dict__["inner"] = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _onnxruntime(model, size: int, workdir: Path):
    import onnxruntime as ort

    path = workdir / "model.onnx"
    torch.onnx.export(
        _Frozen(model.module),
        (torch.zeros(2, 3, size, size),),
        str(path),
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
        dynamo=False,  # the torch.export-based exporter needs onnxscript
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: torch.from_numpy(
        session.run(None, {"x": batch.float().div_(255.0).numpy()})[0]
    )


def backend_table(
    model, images: torch.Tensor, workdir: Path, int8_ir: Path | None
) -> dict[str, dict]:
    """Model-only images/s of each back end and its top-1 agreement with the fp32 module
    (int8: the model the precision gate quantized, where it made one)."""
    from fruitops_serving.predictor import Predictor

    reference = Predictor(model).probabilities(images).argmax(1)
    candidates = {
        "torch_fp32": lambda: Predictor(model).probabilities,
        "torch_bf16_channels_last": lambda: Predictor(model, "bf16").probabilities,
        "torch_compile_fp32_freezing": lambda: _torch_compiled(model, bf16=False),
        "torch_compile_bf16_freezing": lambda: _torch_compiled(model, bf16=True),
        "onnxruntime_fp32": lambda: _onnxruntime(model, model.image_size, workdir),
        "openvino_f32": lambda: Predictor(model, backend="openvino").probabilities,
        "openvino_bf16": lambda: Predictor(model, "bf16", backend="openvino").probabilities,
        "openvino_int8": lambda: (
            Predictor(model, "int8", "openvino", int8_ir=int8_ir).probabilities
        ),
    }
    table: dict[str, dict] = {}
    batch = images[:128]
    for name, make in candidates.items():
        try:
            start = time.perf_counter()
            fn = make()
            agreement = float((fn(images).argmax(1) == reference).float().mean())
            setup = time.perf_counter() - start
            table[name] = {
                "img_per_s": round(_rate(fn, batch), 1),
                "top1_agreement_with_fp32": round(agreement, 4),
                "setup_seconds": round(setup, 1),
            }
        except Exception as err:  # a back end that cannot run here is reported, not fatal
            table[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
        print(name, table[name], file=sys.stderr, flush=True)
    return table


def rss_of_score(home: Path, list_file: Path) -> dict:
    code = (
        "import json, resource\n"
        "from pathlib import Path\n"
        "from fruitops_core.lake import LocalLake, open_lake\n"
        "from fruitops_core.settings import FruitOpsSettings\n"
        "from fruitops_core.tracking import Tracking\n"
        "from fruitops_models.registry import load_model\n"
        "from fruitops_serving.gate import choose_predictor\n"
        "from fruitops_serving.inputs import resolve_input\n"
        "from fruitops_serving.scoring import score\n"
        "s = FruitOpsSettings(); t = Tracking(s)\n"
        "m = load_model(t, t.champion_uri); p, _ = choose_predictor(m, open_lake(s), s)\n"
        f"out = LocalLake(Path({str(list_file.parent)!r}))\n"
        f"r = score(resolve_input({str(list_file)!r}), p, out, 'out.parquet')\n"
        "print(json.dumps({'images': r['images'], 'seconds': r['seconds'],"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    env = {**os.environ, "FRUITOPS_HOME": str(home), "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    print("CPU:", cpu_summary(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".fruitops/bench/quality"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score.json"))
    parser.add_argument("--copies", type=int, default=3, help="copies of the 1,925 photos")
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["FRUITOPS_HOME"] = str(home)
    from torch.utils.flop_counter import FlopCounterMode

    from fruitops_core.lake import open_lake
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_core.tracking import Tracking
    from fruitops_data.images import decode_array
    from fruitops_models.registry import load_model
    from fruitops_serving.gate import choose_predictor, current_gate
    from fruitops_serving.quantize import local_int8

    settings = FruitOpsSettings()
    tracking = Tracking(settings)
    model = load_model(tracking, tracking.champion_uri)
    predictor, gate = choose_predictor(model, open_lake(settings), settings)
    files = sorted((REAL / "Fruit_dataset").rglob("*.jpg"))
    held_out = sorted((REAL / "Fruit_dataset" / "val1").rglob("*.jpg"))
    held_out_batch = torch.from_numpy(
        np.stack([decode_array(p.read_bytes(), model.image_size) for p in held_out])
    ).permute(0, 3, 1, 2)
    stored = current_gate(model, open_lake(settings), settings, tracking).int8_ir
    int8_ir = (
        local_int8(open_lake(settings), stored, settings.local_cache / "openvino")
        if stored
        else None
    )
    with tempfile.TemporaryDirectory() as tmp:
        backends = backend_table(model, held_out_batch, Path(tmp), int8_ir)
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        whole = end_to_end(home, files, args.copies, Path(tmp))
        lists = {}
        for n in (2000, 20000):
            path = Path(tmp) / f"list-{n}.csv"
            paths = [str(files[i % len(files)]) for i in range(n)]
            path.write_text("path\n" + "\n".join(paths) + "\n")
            lists[n] = rss_of_score(home, path)
    batch = held_out_batch[:128]
    with FlopCounterMode(display=False) as counter:
        model.module(batch[:1].float() / 255)
    flops_per_image = counter.get_total_flops()
    model_ips = _rate(predictor.probabilities, batch)  # in the precision the gate chose
    peak = matmul_peak_gflops(torch.bfloat16) / 1000  # TFLOP/s
    result = {
        "cpu": cpu_features(),
        "image_size": model.image_size,
        "model": model.uri,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "gate": gate.shown(),
        "backends_model_only": backends,
        "end_to_end": whole,
        "peak_rss_mb": {str(n): round(r["peak_rss_mb"]) for n, r in lists.items()},
        "rss_growth_2k_to_20k": round(
            lists[20000]["peak_rss_mb"] / lists[2000]["peak_rss_mb"] - 1, 3
        ),
        "model_only_img_per_s": round(model_ips, 1),
        "model_tflops": round(flops_per_image * model_ips / 1e12, 4),
        "bf16_matmul_peak_tflops": round(peak, 3),
        "share_of_peak": round(flops_per_image * model_ips / 1e12 / peak, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
