"""The predictions table as files people open: CSV cells never run as spreadsheet formulas."""

import csv
from datetime import UTC, datetime

import pandas as pd

from fruitops_serving.predictions import PredictionWriter


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text(tmp_path):
    keys = ['=HYPERLINK("http://x")|a.jpg', "+cmd.jpg", "-2+3.jpg", "@sum.jpg", "plain.jpg"]
    frame = pd.DataFrame(
        {
            "key": keys,
            "sha256": ["0" * 64] * 5,
            "label": ["apple"] * 5,
            "confidence": [-0.5, 0.9, 0.9, 0.9, 0.9],  # a number stays a number
            "top5": [[{"label": "apple", "probability": 0.9}]] * 5,
            "model_name": ["fruit-classifier"] * 5,
            "model_version": [1] * 5,
            "run_id": ["r"] * 5,
            "scored_at": [datetime(2026, 12, 3, tzinfo=UTC)] * 5,
            "source_uri": ["/batch"] * 5,
        }
    )
    writer = PredictionWriter("csv", tmp_path)
    writer.write(frame)
    with open(writer.close(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["key"] for r in rows] == ["'" + k for k in keys[:4]] + ["plain.jpg"]
    assert rows[0]["confidence"] == "-0.5" and rows[0]["label"] == "apple"


def test_two_conversions_of_one_model_at_once_never_share_files(tmp_path):
    """Each conversion saves into a folder of its own, then moves the pair into place (two
    processes shared `partial.xml` before, and could publish each other's half files)."""
    import threading
    import time

    from fruitops_serving.predictor import save_ir

    both_saving = threading.Barrier(2)

    class SlowOpenVino:
        @staticmethod
        def save_model(model, path, compress_to_fp16):
            both_saving.wait()  # both conversions are half-way at once
            path.with_suffix(".bin").write_bytes(model * 1000)
            time.sleep(0.05)
            path.write_text(f"<net weights='{len(model) * 1000}'/>")

    ir = tmp_path / "run-224" / "model.xml"
    threads = [threading.Thread(target=save_ir, args=(SlowOpenVino, b"w", ir)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (
        ir.read_text() == "<net weights='1000'/>"
        and ir.with_suffix(".bin").read_bytes() == b"w" * 1000
    )
    assert sorted(p.name for p in ir.parent.iterdir()) == ["model.bin", "model.xml"]
