"""The online recorder: answers appended in part files; a broken lake never stops serving."""

import time
from types import SimpleNamespace

from fruitops_core.lake import LocalLake
from fruitops_serving.config import ServingConfig, online_folder
from fruitops_serving.predictions import read_predictions
from fruitops_serving.recorder import OnlineRecorder, photo_key

MODEL = SimpleNamespace(name="fruit-classifier", version=3, run_id="r1")


def answer(sha: str) -> dict:
    top5 = [{"label": "apple", "probability": 0.9}, {"label": "pear", "probability": 0.1}]
    return {"sha256": sha, "label": "apple", "confidence": 0.9, "top5": top5}


def test_answers_wait_for_a_flush_and_land_in_one_part(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    recorder = OnlineRecorder(lake, ServingConfig(record_seconds=3600, record_rows=1000))
    for i in range(5):
        recorder.add(b"photo-%d" % (i % 2), answer(f"{i % 2:064d}"), MODEL, 12.5)
    assert recorder.stats.pending == 5 and not lake.exists("predictions")
    recorder.close()  # writes what waits
    (day,) = [p.split("/")[2] for p in lake.list("predictions/online/") if "part-" in p]
    parts = [p for p in lake.list(online_folder(day) + "/")]
    assert len(parts) == 1
    table = read_predictions(lake, online_folder(day))
    assert len(table) == 5 and (table["model_version"] == 3).all()
    assert lake.read_bytes(photo_key(f"{1:064d}")) == b"photo-1"  # each photo once
    assert recorder.stats.recorded == 5 and recorder.stats.pending == 0


def test_a_lake_that_fails_is_counted_and_retried_never_fatal(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "predictions").write_text("a file where the folder should be")
    lake = LocalLake(tmp_path / "lake")
    recorder = OnlineRecorder(lake, ServingConfig(record_seconds=0.1))
    recorder.add(b"photo", answer("a" * 64), MODEL, 3.0)
    deadline = time.monotonic() + 10
    while recorder.stats.failures < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert recorder.stats.pending == 1 and recorder.stats.recorded == 0
    assert recorder.stats.last_error
    (tmp_path / "lake" / "predictions").unlink()  # the lake is back: what waited is written
    while recorder.stats.recorded < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    recorder.close()
    assert recorder.stats.lost == 0
