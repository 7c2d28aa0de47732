"""`fruitops serve` as a real server process, asked by a real HTTP client (httpx)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from PIL import Image

from fruitops_core.lake import LocalLake, lake_from_uri
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_serving.config import ServingConfig, online_folder
from fruitops_serving.predictions import read_predictions
from fruitops_serving.recorder import ONLINE_SCHEMA, photo_key

pytestmark = pytest.mark.slow
FRUITOPS = str(Path(sys.executable).parent / "fruitops")
MAX_PHOTOS = 4
MAX_BYTES = 400_000


@dataclass
class Served:
    url: str
    home: Path
    process: subprocess.Popen
    log: Path
    table: pd.DataFrame  # the shared run's batch table: what each photo must be answered
    photos: list[bytes]

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=60, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=60, **kw)


def start(
    home: Path, tmp: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str, Path]:
    log = tmp / f"serve-{port}.log"
    env = {
        **os.environ,
        "FRUITOPS_HOME": str(home),
        "FRUITOPS_SERVE_RECORD_SECONDS": "0.5",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    process = subprocess.Popen(
        [FRUITOPS, "serve", "--port", str(port), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log.read_text()[-5000:]
        assert time.monotonic() < deadline, log.read_text()[-5000:]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def served(_pipeline_run, tmp_path_factory, free_port) -> Iterator[Served]:
    """The champion of a copy of the shared run's home, served with small limits."""
    tmp = tmp_path_factory.mktemp("serve")
    home = tmp / "home"
    shutil.copytree(_pipeline_run.settings.home, home, symlinks=True)
    table = _pipeline_run.lake.read_parquet(
        "assets/serving/batch_predictions/current/predictions.parquet"
    )
    source = lake_from_uri(table["source_uri"].iloc[0], strict=True)
    photos = [source.read_bytes(key) for key in table["key"]]
    process, url, log = start(
        home,
        tmp,
        free_port(),
        "--watch-seconds", "1",
        "--max-photos", str(MAX_PHOTOS),
        # a setting from the environment, as in a container: typed options' defaults yield
        env={"FRUITOPS_SERVE_MAX_REQUEST_BYTES": str(MAX_BYTES)},
    )  # fmt: skip
    yield Served(url, home, process, log, table, photos)
    process.terminate()  # uvicorn shuts down cleanly, then exits by the signal it caught
    assert process.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()[-5000:]
    assert "Application shutdown complete" in log.read_text()


def jpeg(photo: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(photo)).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_predict_takes_uploads_and_answers_each_as_batch_scoring_did(served: Served):
    photos, table = served.photos[:3], served.table.iloc[:3]
    files = [("image", (f"photo-{i}.png", p, "image/png")) for i, p in enumerate(photos)]
    files.append(("image", ("notes.jpg", b"not a photo", "image/jpeg")))
    response = served.post("/predict", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "models:/fruit-classifier/1"
    answers = body["predictions"]
    assert [a["filename"] for a in answers] == ["photo-0.png", "photo-1.png", "photo-2.png",
                                               "notes.jpg"]  # fmt: skip
    assert [a["label"] for a in answers[:3]] == table["label"].tolist()
    for answer, confidence in zip(answers, table["confidence"], strict=False):
        assert abs(answer["confidence"] - confidence) < 1e-5
        assert len(answer["top5"]) == 4 and answer["top5"][0]["label"] == answer["label"]
        assert answer["model_version"] == 1 and answer["error"] is None
    assert answers[3]["label"] is None and "not an image" in answers[3]["error"]


def test_invocations_takes_mlflows_json_with_base64_photos(served: Served):
    encoded = [base64.b64encode(jpeg(p)).decode() for p in served.photos[:2]]
    response = served.post(
        "/invocations",
        json={"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]}},
    )
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [a["model_version"] for a in answers] == [1, 1]
    assert all(a["label"] and a["error"] is None for a in answers)


def test_health_names_the_version_and_the_page_is_served(served: Served):
    health = served.get("/health").json()
    assert health["model"]["uri"] == "models:/fruit-classifier/1"
    assert health["model"]["served_as"] == "models:/fruit-classifier@champion"
    assert health["model"]["backend"] == "openvino"
    assert health["model"]["threads"] == ServingConfig().threads(health["model"]["precision"])
    page = served.get("/")
    assert page.status_code == 200 and "Drop photos here" in page.text
    assert f"up to {MAX_PHOTOS} at once" in page.text
    assert served.get("/version").status_code == 200


@pytest.mark.parametrize(
    "case",
    ["declared length", "chunked body", "photo count", "invocations photo count", "no photo",
     "not multipart"],
)  # fmt: skip
def test_a_bad_request_gets_a_4xx_naming_its_limit_and_the_server_goes_on(served, case):
    big = b"\xff" * (MAX_BYTES + 1)
    small = served.photos[0]
    if case == "declared length":
        response = served.post("/predict", files=[("image", ("big.jpg", big, "image/jpeg"))])
        assert response.status_code == 413
        assert "FRUITOPS_SERVE_MAX_REQUEST_BYTES" in response.json()["message"]
    elif case == "chunked body":  # no Content-Length: read up to the limit, no further
        response = served.post(
            "/invocations",
            content=iter([big[:200_000], big[200_000:]]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "--max-request-bytes" in response.json()["message"]
    elif case == "photo count":
        files = [("image", (f"{i}.png", small, "image/png")) for i in range(MAX_PHOTOS + 1)]
        response = served.post("/predict", files=files)
        assert response.status_code == 413
        assert "FRUITOPS_SERVE_MAX_PHOTOS" in response.json()["message"]
    elif case == "invocations photo count":
        encoded = base64.b64encode(small).decode()
        response = served.post(
            "/invocations", json={"inputs": {"image": [encoded] * (MAX_PHOTOS + 1)}}
        )
        assert response.status_code == 400
        assert "FRUITOPS_SERVE_MAX_PHOTOS" in response.json()["message"]
    elif case == "no photo":
        response = served.post("/predict", data={"image": "apple"})
        assert response.status_code == 400 and "curl -F" in response.json()["message"]
    else:
        response = served.post("/predict", content=b"{}", headers={"Content-Type": "text/plain"})
        assert response.status_code == 400
        broken = served.post(
            "/predict",
            content=b"--x\r\nnot a part",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert broken.status_code == 400, broken.text
        assert broken.json()["message"].startswith("not a multipart upload: "), broken.text
        assert "400:" not in broken.json()["message"]
    assert "Traceback" not in response.text
    assert served.get("/ping").status_code == 200


def test_every_answer_is_recorded_in_the_days_online_table(served: Served):
    """Answers are appended in part files (not one per request) to predictions/online/<day>/,
    with the photo kept by content, so drift reads them as a batch table."""
    photo = served.photos[5]
    for _ in range(3):
        assert served.post("/predict", files=[("image", ("a.png", photo, "image/png"))]).is_success
    lake = LocalLake(served.home / "lake")
    day = datetime.now(UTC).date().isoformat()
    deadline = time.monotonic() + 30
    while True:
        table = read_predictions(lake, online_folder(day)) if lake.exists(
            online_folder(day)) else pd.DataFrame()  # fmt: skip
        if (table.get("sha256", pd.Series()) == served.table["sha256"].iloc[5]).sum() >= 3:
            break
        assert time.monotonic() < deadline, served.get("/health").json()
        time.sleep(0.5)
    parts = list(lake.list(online_folder(day) + "/"))
    assert len(parts) < len(table), "a part file per flush, not per request"
    assert list(table.columns) == ONLINE_SCHEMA.names
    row = table[table["sha256"] == served.table["sha256"].iloc[5]].iloc[0]
    assert row["label"] == served.table["label"].iloc[5] and row["model_version"] == 1
    assert row["latency_ms"] > 0 and row["key"] == photo_key(row["sha256"])
    assert lake_from_uri(row["source_uri"]).read_bytes(row["key"]) == photo
    health = served.get("/health").json()["recording"]
    assert health["recorded"] >= 3 and health["failures"] == 0 and health["lost"] == 0


def test_a_new_champion_is_served_without_a_dropped_request(served: Served):
    """While requests keep coming, the alias moves: every request is answered, first by v1,
    then by v2 once it is loaded, never by a half-swapped model."""
    settings = FruitOpsSettings(home=served.home)
    tracking = Tracking(settings)
    tracking.activate()  # MLflow resolves the models:/m-… source by the global tracking URI
    client = tracking.client
    first = client.get_model_version("fruit-classifier", "1")
    second = client.create_model_version("fruit-classifier", first.source, run_id=first.run_id)
    seen: list[tuple[float, float, int]] = []  # (asked, answered, version)
    failures: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        files = [("image", ("a.png", served.photos[0], "image/png"))]
        while not stop.is_set():
            asked = time.monotonic()
            response = served.post("/predict", files=files)
            if response.status_code != 200:
                failures.append(response.text)
            else:
                version = response.json()["predictions"][0]["model_version"]
                seen.append((asked, time.monotonic(), version))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    client.set_registered_model_alias("fruit-classifier", "champion", second.version)
    deadline = time.monotonic() + 90
    v2 = int(second.version)
    while not any(version == v2 for *_, version in seen):
        assert time.monotonic() < deadline, served.log.read_text()[-3000:]
        time.sleep(0.5)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures
    swapped = min(answered for _, answered, version in seen if version == v2)
    assert {version for asked, _, version in seen if asked < swapped} >= {1}
    assert {version for asked, _, version in seen if asked > swapped} == {v2}
    assert served.get("/health").json()["model"]["version"] == v2
    assert "now serving models:/fruit-classifier/2" in served.log.read_text()


def test_monitor_drift_reads_a_day_of_online_answers(served: Served):
    """`fruitops monitor drift --batch <lake>/predictions/online/<day>/` compares online
    traffic with the reference as it does a scored batch."""
    for photo in served.photos[:6]:
        assert served.post("/predict", files=[("image", ("a.png", photo, "image/png"))]).is_success
    day = datetime.now(UTC).date().isoformat()
    folder = served.home / "lake" / online_folder(day)
    deadline = time.monotonic() + 30
    while served.get("/health").json()["recording"]["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    env = {**os.environ, "FRUITOPS_HOME": str(served.home)}
    done = subprocess.run(
        [FRUITOPS, "monitor", "drift", "--batch", f"{folder}/", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["current_rows"] >= 6 and report["quarantined"] == [], report
    assert report["reference_model_uri"] == "models:/fruit-classifier/1"


def test_a_person_drops_photos_on_the_page_and_sees_the_top5(served: Served, chromium, tmp_path):
    """The page at / in headless Chromium: photos chosen as in the file dialog, each shown
    with its top-5; a file that is not a photo says why, its name shown as text, not HTML."""
    photos = [tmp_path / "first.png", tmp_path / "second.png"]
    for path, photo in zip(photos, served.photos, strict=False):
        path.write_bytes(photo)
    hostile = tmp_path / "<img src=x onerror=alert(1)>.jpg"
    hostile.write_bytes(b"not a photo")
    chromium.open(f"{served.url}/")
    chromium.wait_for_text("What fruit is this?", "Model models:/fruit-classifier/")
    chromium.choose_files("#files", [*photos, hostile])
    body = chromium.wait_for_text("Cannot use this photo", "model version")
    assert body.count("model version") == len(photos)
    assert hostile.name in body  # shown as text
    assert chromium.evaluate("document.querySelectorAll('.answer .row').length") == 4 * len(
        photos
    )  # the tiny model knows 4 classes: its whole top-5
    assert chromium.evaluate("document.querySelectorAll('.answer img').length") == 0
    out = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    shot = chromium.screenshot(out / "serve-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
