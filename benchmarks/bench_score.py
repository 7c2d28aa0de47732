"""Batch scoring end to end: `fruitops score` against the original project's evaluation loop.

    .venv/bin/python benchmarks/quality_real.py          # once: a champion trained on real photos
    .venv/bin/python benchmarks/bench_score.py --home .fruitops/bench/quality

Both score the same 1,925 real JPEGs of ../shared/datasets/fruits-real with the same
registered champion. Naive: a torch Dataset with PIL open + torchvision Resize/ToTensor, a
DataLoader of batch 32 without workers, fp32 eager. FruitOps: `score()` as the CLI runs it
(threaded draft decoding overlapped with inference, the default back end, bf16 only where
the gate passed, streamed Parquet). Each is timed twice and the better run kept.

Also, for the model part alone (batch 128, the held-out photos): every back end measured here
(torch eager fp32 and bf16 + channels_last, torch.compile with freezing, ONNX Runtime,
OpenVINO f32 and bf16) with its top-1 agreement with the fp32 module: the table the default
back end is chosen from. And peak RSS of `fruitops score` at 2,000 and 20,000 images (a list
repeating the photos), and the model part's share of this CPU's bf16 matmul peak.
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

import numpy as np
import torch
from PIL import Image
from roofline import matmul_peak_gflops

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"


def naive_seconds(model, files: list[Path]) -> float:
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    tf = transforms.Compose(
        [transforms.Resize((model.image_size, model.image_size)), transforms.ToTensor()]
    )

    class Photos(Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> torch.Tensor:
            with Image.open(files[i]) as image:
                return tf(image.convert("RGB"))

    start = time.perf_counter()
    with torch.no_grad():
        for batch in DataLoader(Photos(), batch_size=32, num_workers=0):
            torch.softmax(model.module(batch), dim=1).argmax(1)
    return time.perf_counter() - start


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


def backend_table(model, images: torch.Tensor, workdir: Path) -> dict[str, dict]:
    """Model-only images/s of each back end and its top-1 agreement with the fp32 module."""
    from fruitops_serving.scoring import Predictor

    reference = Predictor(model).probabilities(images).argmax(1)
    candidates = {
        "torch_fp32": lambda: Predictor(model).probabilities,
        "torch_bf16_channels_last": lambda: Predictor(model, bf16=True).probabilities,
        "torch_compile_fp32_freezing": lambda: _torch_compiled(model, bf16=False),
        "torch_compile_bf16_freezing": lambda: _torch_compiled(model, bf16=True),
        "onnxruntime_fp32": lambda: _onnxruntime(model, model.image_size, workdir),
        "openvino_f32": lambda: Predictor(model, backend="openvino").probabilities,
        "openvino_bf16": lambda: Predictor(model, bf16=True, backend="openvino").probabilities,
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
        "from fruitops_core.tracking import champion_uri, configure_mlflow\n"
        "from fruitops_serving.gate import choose_predictor\n"
        "from fruitops_serving.inputs import resolve_input\n"
        "from fruitops_serving.scoring import load_model, score\n"
        "s = FruitOpsSettings(); configure_mlflow(s)\n"
        "m = load_model(champion_uri(s)); p, _ = choose_predictor(m, open_lake(s), s)\n"
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path(".fruitops/bench/quality"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score.json"))
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["FRUITOPS_HOME"] = str(home)
    from torch.utils.flop_counter import FlopCounterMode

    from fruitops_core.lake import LocalLake, open_lake
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_core.tracking import champion_uri, configure_mlflow
    from fruitops_data.images import decode_array
    from fruitops_serving.gate import choose_predictor
    from fruitops_serving.inputs import resolve_input
    from fruitops_serving.scoring import load_model, score

    settings = FruitOpsSettings()
    configure_mlflow(settings)
    model = load_model(champion_uri(settings))
    predictor, gate = choose_predictor(model, open_lake(settings), settings)
    files = sorted((REAL / "Fruit_dataset").rglob("*.jpg"))
    held_out = sorted((REAL / "Fruit_dataset" / "val1").rglob("*.jpg"))
    held_out_batch = torch.from_numpy(
        np.stack([decode_array(p.read_bytes(), model.image_size) for p in held_out])
    ).permute(0, 3, 1, 2)
    with tempfile.TemporaryDirectory() as tmp:
        backends = backend_table(model, held_out_batch, Path(tmp))
    naive_s = min(naive_seconds(model, files) for _ in range(2))  # best of 2, warm cache
    with tempfile.TemporaryDirectory() as tmp:
        source = resolve_input(str(REAL / "Fruit_dataset"))
        ours = min(
            (score(source, predictor, LocalLake(Path(tmp)), "p.parquet") for _ in range(2)),
            key=lambda r: r["seconds"],
        )
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
    model_ips = _rate(predictor.probabilities, batch)
    peak = matmul_peak_gflops(torch.bfloat16) / 1000  # TFLOP/s
    result = {
        "images": len(files),
        "image_size": model.image_size,
        "model": model.uri,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "gate": gate,
        "backends_model_only": backends,
        "naive_img_per_s": round(len(files) / naive_s, 1),
        "fruitops_img_per_s": round(len(files) / ours["seconds"], 1),
        "speedup": round(naive_s / ours["seconds"], 2),
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
