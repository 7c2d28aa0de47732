"""Every online answer, recorded in the lake for monitoring, appended in batches.

The server hands each answered photo here; a thread appends what waited as one part file of
the day's table (``predictions/online/<day>/part-….parquet``, the batch table's columns plus
the request's latency) every `ServingConfig.record_seconds`, or sooner once
`ServingConfig.record_rows` wait. The photos themselves are kept once each, by content
(``predictions/online/photos/<sha256>``), and the table's ``key``/``source_uri`` point at
them: drift reads online photos exactly as it reads a scored batch's.

Recording never stops serving: a full disk or an unreachable lake is logged and counted
(`/health`), and what could not be written is kept for the next try up to a bound, then
counted as lost, never silently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fruitops_core.lake import Lake
from fruitops_serving.config import ServingConfig, online_folder
from fruitops_serving.predictions import SCHEMA

log = logging.getLogger(__name__)

PHOTOS = "predictions/online/photos"
ONLINE_SCHEMA = SCHEMA.append(pa.field("latency_ms", pa.float64()))
#: photo bytes and answers waiting to be written at most; beyond, answers are counted lost
MAX_PENDING_BYTES = 256 * 1024**2
MAX_PENDING_ROWS = 200_000


@dataclass
class RecorderStats:
    recorded: int = 0  # answers written to the lake
    pending: int = 0  # answers waiting to be written
    lost: int = 0  # answers dropped because too many waited (the lake failing for long)
    failures: int = 0  # writes that failed (each retried with the next flush)
    last_error: str | None = None
    parts: list[str] = field(default_factory=list)  # the last part files written

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "pending": self.pending,
            "lost": self.lost,
            "failures": self.failures,
            "last_error": self.last_error,
        }


def photo_key(sha256: str) -> str:
    return f"{PHOTOS}/{sha256[:2]}/{sha256}"


class OnlineRecorder:
    """Appends answered photos to the day's online table, from a thread of its own."""

    def __init__(self, lake: Lake, config: ServingConfig):
        self.lake, self.config = lake, config
        self.stats = RecorderStats()
        self._rows: list[dict[str, Any]] = []
        self._photos: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fruitops-recorder", daemon=True)
        self._thread.start()

    def add(self, photo: bytes, answer: dict[str, Any], model: Any, latency_ms: float) -> None:
        """Keep one answered photo for the next flush (never blocks on the lake)."""
        sha = answer["sha256"]
        with self._lock:
            full = self._pending_bytes + len(photo) > MAX_PENDING_BYTES
            if full or len(self._rows) >= MAX_PENDING_ROWS:
                self.stats.lost += 1
                return
            if sha not in self._photos:
                self._photos[sha] = photo
                self._pending_bytes += len(photo)
            self._rows.append(
                {
                    "key": photo_key(sha),
                    "sha256": sha,
                    "label": answer["label"],
                    "confidence": answer["confidence"],
                    "top5": answer["top5"],
                    "model_name": model.name,
                    "model_version": model.version,
                    "run_id": model.run_id,
                    "scored_at": datetime.now(UTC),
                    "source_uri": self.lake.root_uri,
                    "latency_ms": latency_ms,
                }
            )
            self.stats.pending = len(self._rows)
            full = len(self._rows) >= self.config.record_rows
        if full:
            self._wake.set()

    def close(self) -> None:
        """Write what waits, then stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.record_seconds)
            self._wake.clear()
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write the waiting photos and rows; on failure keep them for the next flush."""
        with self._lock:
            rows, photos = self._rows, self._photos
            self._rows, self._photos, self._pending_bytes = [], {}, 0
        if not rows:
            return
        try:
            for sha, data in photos.items():
                key = photo_key(sha)
                if not self.lake.exists(key):
                    self.lake.write_bytes(key, data)
            for day, part in _by_day(rows).items():
                name = f"part-{time.strftime('%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                table = pa.Table.from_pandas(part, schema=ONLINE_SCHEMA, preserve_index=False)
                buffer = pa.BufferOutputStream()
                pq.write_table(table, buffer)
                path = f"{online_folder(day)}/{name}.parquet"
                self.lake.write_bytes(path, buffer.getvalue().to_pybytes())
                self.stats.parts = [*self.stats.parts[-9:], path]
        except Exception as err:  # a full disk, an unreachable lake: serving goes on
            log.warning("recording %d online answers failed (kept for the next try): %s",
                        len(rows), err)  # fmt: skip
            with self._lock:
                self.stats.failures += 1
                self.stats.last_error = f"{type(err).__name__}: {err}"
                self._rows = rows + self._rows
                self._photos = {**photos, **self._photos}
                self._pending_bytes = sum(len(p) for p in self._photos.values())
                self.stats.pending = len(self._rows)
            return
        with self._lock:
            self.stats.recorded += len(rows)
            self.stats.pending = len(self._rows)


def _by_day(rows: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """The rows of each UTC day (a flush just after midnight may hold two)."""
    frame = pd.DataFrame(rows)
    days = frame["scored_at"].map(lambda t: t.date().isoformat())
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(days)}
