"""Online predictions as a client sees them: `fruitops serve` against a tutorial server.

Each server is a process of its own; a real HTTP client posts photos to both on loopback.

    .venv/bin/python benchmarks/quality_real.py --seeds 1   # once: a champion on real photos
    .venv/bin/python benchmarks/bench_online.py --home .fruitops/bench/quality

Both servers answer with the same registered champion and the same photos: real 348×348 JPEGs
of ../shared/datasets/fruits-real, one per request, a multipart POST /predict on both.
Naive: Flask's server one request at a time (threaded=False), PIL open + torchvision
Resize/ToTensor, the logged module in fp32 eager, softmax top-5 as JSON, as the usual tutorial
does. FruitOps: `fruitops serve` with its defaults (MLflow's scoring app under uvicorn, the
precision gate's back end, concurrent requests merged, every answer recorded in the lake).

Measured, the servers taking turns for --rounds rounds: latency p50/p95/p99 at concurrency 1;
throughput at concurrency 8; top-1 agreement of the two servers' answers. Then FruitOps alone
for --soak requests at concurrency 8: its RSS after 1,000 and after all of them (flat: the
recorder flushes, nothing accumulates per request). `--avx2` runs both servers as on an
AVX2-only CPU (oneDNN and ATen capped; no bf16). The client shares the CPU with the servers,
so it is the standard library's `http.client` on kept-alive connections, each photo's
multipart body encoded once beforehand: 0.17 ms of CPU a request, where httpx took 0.7.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psutil
from PIL import Image

REAL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fruits-real"
FRUITOPS = str(Path(sys.executable).parent / "fruitops")
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}

NAIVE = """
import io, sys
import torch
from flask import Flask, jsonify, request
from PIL import Image
from torchvision import transforms
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_models.registry import load_model

tracking = Tracking(FruitOpsSettings())
model = load_model(tracking, tracking.champion_uri)
tf = transforms.Compose(
    [transforms.Resize((model.image_size, model.image_size)), transforms.ToTensor()])
app = Flask(__name__)

@app.get("/ping")
def ping():
    return "ok"

@app.post("/predict")
def predict():
    image = Image.open(io.BytesIO(request.files["image"].read())).convert("RGB")
    with torch.no_grad():
        probabilities = torch.softmax(model.module(tf(image).unsqueeze(0)), dim=1)[0]
    top = probabilities.topk(5)
    return jsonify({"predictions": [{"top5": [
        {"label": model.classes[i], "probability": p}
        for p, i in zip(top.values.tolist(), top.indices.tolist())]}]})

app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """A server process, once it answers /ping."""
    process = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{cmd[:3]} did not answer in 300 s:\n{log.read_text()[-3000:]}")


BOUNDARY = "fruitops-bench-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(photo: bytes) -> bytes:
    """The body of a multipart upload of ``photo`` as field ``image`` (``curl -F``'s)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
        'filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    )
    return head.encode() + photo + f"\r\n--{BOUNDARY}--\r\n".encode()


class Client:
    """One client on one connection (kept alive where the server allows it): the standard
    library's HTTP client sending bodies encoded once beforehand, so that the client, which
    shares the CPU with the server it measures, takes as little of it as it can."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.path = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def post(self, body: bytes) -> tuple[float, str]:
        """One photo, one request: its wall milliseconds and the top label."""
        start = time.perf_counter()
        self.connection.request("POST", self.path, body, {"Content-Type": CONTENT_TYPE})
        response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            raise RuntimeError(f"{self.path} answered {response.status}: {data[:300]!r}")
        return elapsed, json.loads(data)["predictions"][0]["top5"][0]["label"]

    def close(self) -> None:
        self.connection.close()


def sequential(url: str, bodies: list[bytes], n: int) -> tuple[list[float], list[str]]:
    """Concurrency 1: ``n`` requests one after another (after 20 not counted)."""
    client = Client(url)
    try:
        for body in bodies[:20]:
            client.post(body)
        answers = [client.post(bodies[i % len(bodies)]) for i in range(n)]
    finally:
        client.close()
    return [ms for ms, _ in answers], [label for _, label in answers]


def concurrent(url: str, bodies: list[bytes], n: int, clients: int = 8) -> float:
    """Photos per second with ``clients`` clients each sending one request after another."""

    def worker(k: int) -> None:
        client = Client(url)
        try:
            for i in range(k, n, clients):
                client.post(bodies[i % len(bodies)])
        finally:
            client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return n / (time.perf_counter() - start)


def rss_mb(process: subprocess.Popen) -> float:
    """Resident memory of a server and its children."""
    tree = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)]) / 2**20


def percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "p99_ms": round(p99, 2)}


def main() -> None:
    from fruitops_models.hardware import cpu_features, cpu_summary

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0]
        + " First train a champion on real photos: benchmarks/quality_real.py --seeds 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--home", type=Path, default=Path(".fruitops/bench/quality"),
        help="FRUITOPS_HOME holding the champion (quality_real.py's)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default: results/online.json)"
    )
    parser.add_argument("--photos", type=int, default=200, help="distinct photos sent")
    parser.add_argument("--requests", type=int, default=400, help="per server, round and test")
    parser.add_argument("--rounds", type=int, default=3, help="turns the servers take")
    parser.add_argument("--soak", type=int, default=10_000, help="FruitOps requests for RSS")
    parser.add_argument("--avx2", action="store_true", help="both servers as on AVX2 only")
    args = parser.parse_args()
    if args.avx2:
        os.environ.update(AVX2)  # this process's features line too
    print("CPU:", cpu_summary(), flush=True)
    out = args.out or Path(f"benchmarks/results/online{'_avx2' if args.avx2 else ''}.json")
    files = sorted((REAL / "Fruit_dataset").rglob("*.jpg"))
    photos = []
    for path in files[:: max(1, len(files) // (3 * args.photos))]:
        with Image.open(path) as image:
            if image.size == (348, 348):  # the Kaggle set's usual photo
                photos.append(path.read_bytes())
    bodies = [multipart(photo) for photo in photos[: args.photos]]
    home = args.home.resolve()
    env = {**os.environ, "FRUITOPS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-online-") as tmp:
        naive_py = Path(tmp) / "naive_server.py"
        naive_py.write_text(NAIVE)
        ports = {"fruitops": free_port(), "naive": free_port()}
        servers = {
            "fruitops": start(
                [FRUITOPS, "serve", "--port", str(ports["fruitops"])],
                env, ports["fruitops"], Path(tmp) / "fruitops.log",
            ),
            "naive": start(
                [sys.executable, str(naive_py), str(ports["naive"])],
                env, ports["naive"], Path(tmp) / "naive.log",
            ),
        }  # fmt: skip
        urls = {name: f"http://127.0.0.1:{port}/predict" for name, port in ports.items()}
        try:
            latencies: dict[str, list[float]] = {name: [] for name in servers}
            rates: dict[str, list[float]] = {name: [] for name in servers}
            labels: dict[str, list[str]] = {}
            for round_ in range(args.rounds):
                for name, url in urls.items():
                    ms, labels[name] = sequential(url, bodies, args.requests)
                    latencies[name] += ms
                    rates[name].append(concurrent(url, bodies, args.requests))
                    rate = f"{rates[name][-1]:.1f} photos/s at concurrency 8"
                    print(f"round {round_ + 1}: {name} {percentiles(ms)}, {rate}", flush=True)
            servers["naive"].terminate()  # the soak is FruitOps alone
            servers["naive"].wait(60)
            before = rss_mb(servers["fruitops"])
            concurrent(urls["fruitops"], bodies, 1000)
            at_1k = rss_mb(servers["fruitops"])
            soak_rate = concurrent(urls["fruitops"], bodies, args.soak - 1000)
            at_end = rss_mb(servers["fruitops"])
            health = httpx.get(f"http://127.0.0.1:{ports['fruitops']}/health").json()
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(60)
        served_log = (Path(tmp) / "fruitops.log").read_text()
    agree = np.mean([a == b for a, b in zip(labels["fruitops"], labels["naive"], strict=True)])
    summary = {
        name: {
            **percentiles(latencies[name]),
            "requests_c1": len(latencies[name]),
            "photos_per_s_c8": round(float(np.median(rates[name])), 1),
        }
        for name in latencies
    }
    fruitops, naive = summary["fruitops"], summary["naive"]
    result = {
        "cpu": cpu_features(),
        "model": health["model"],
        "photos": len(bodies),
        "photo_size": "348x348 JPEG",
        "client": "http.client, 8 threads, bodies encoded once",
        "rounds": args.rounds,
        "servers": summary,
        "p99_goal_ms": 30,
        "p99_ms": fruitops["p99_ms"],
        "throughput_ratio_c8": round(fruitops["photos_per_s_c8"] / naive["photos_per_s_c8"], 2),
        "p50_ratio_c1": round(naive["p50_ms"] / fruitops["p50_ms"], 2),
        "top1_agreement": round(float(agree), 4),
        "rss_mb": {
            "start": round(before),
            "after_1000": round(at_1k),
            f"after_{args.soak}": round(at_end),
        },  # fmt: skip
        "rss_growth_1k_to_end": round(at_end / at_1k - 1, 3),
        "soak_photos_per_s": round(soak_rate, 1),
        "health": {k: health[k] for k in ("answered", "photo_errors", "recording")},
        "served_as": next((ln for ln in served_log.splitlines() if "serving models:/" in ln), ""),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
