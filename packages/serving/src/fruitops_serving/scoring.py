"""Batch scoring: images → a predictions table, streamed, atomic, with a precision gate.

Everything the model needs (class names, image size) is read from the logged model. Files
are read and decoded a chunk at a time in threads (JPEG draft decoding down to the model's
size), scored, and written to a local temporary table that is published in one step when
the run completes: a reader sees the old table or the new one, never half of one, and an
interrupted run leaves nothing behind. Memory holds one chunk of images at a time.

The default back end is OpenVINO (measured fastest here, see benchmarks/bench_score.py);
torch eager stays as the reference. Reduced precision (bf16) is used only after it passed a
gate on held-out images against the fp32 module — top-1 agreement ≥ 99.5 %, accuracy drop
≤ 0.2 points — else fp32. The next chunk decodes while the current one is scored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fruitops_core.lake import Lake
from fruitops_core.progress import progress_bar
from fruitops_data.images import DECODE_ERRORS, decode_array, decode_failure_reason
from fruitops_data.manifest import windows
from fruitops_models.registry import LoadedModel, ModelNotFound, load_model
from fruitops_serving.assets import ScoringConfig
from fruitops_serving.inputs import ScoringInput

__all__ = ["LoadedModel", "ModelNotFound", "Predictor", "load_model", "precision_gate", "score"]

PREDICTION_COLUMNS = [
    "key",
    "sha256",
    "label",
    "confidence",
    "top5",
    "model_name",
    "model_version",
    "run_id",
    "scored_at",
    "source_uri",
]
SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("sha256", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("top5", pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("run_id", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("source_uri", pa.string()),
    ]
)
GATE_AGREEMENT = 0.995
GATE_ACCURACY_DROP = 0.002


BACKENDS: tuple[str, ...] = get_args(ScoringConfig.model_fields["backend"].annotation)
CHUNK: int = ScoringConfig.model_fields["batch_size"].default  # images at a time


def _openvino_model(model: LoadedModel) -> Any:
    """The logged network converted to OpenVINO, taking uint8 NHWC batches."""
    import openvino as ov
    import torch

    size = model.image_size
    # the logged pt2 program's module cannot be traced again (no eval()); exporting it
    # once more with a dynamic batch gives OpenVINO a graph it reads directly
    program = torch.export.export(
        model.module,
        (torch.zeros(2, 3, size, size),),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65_536)},),
    )
    converted = ov.convert_model(program)
    converted.reshape([-1, 3, size, size])
    ppp = ov.preprocess.PrePostProcessor(converted)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    return ppp.build()


def compile_openvino(model: LoadedModel, bf16: bool, cache_dir: Path | None = None) -> Any:
    """The logged network as an OpenVINO CPU model that takes uint8 NHWC batches.

    Scaling to [0, 1] and the NHWC → NCHW transpose run inside OpenVINO's graph. OpenVINO
    silently runs bf16 on CPUs that have it unless told otherwise, so the precision is always
    set explicitly: ``f32`` unless bf16 passed the gate. With ``cache_dir`` the converted
    model is kept per MLflow run (as OpenVINO IR) and OpenVINO keeps its compiled kernels
    there (``CACHE_DIR``): a later start neither loads the pt2 nor converts it again.
    """
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        # several streams, each a share of the cores on a share of the chunk: depthwise
        # convolutions keep one stream's threads waiting (EfficientNet-Lite0 on 2 cores:
        # 170 against 143 img/s in one stream)
        "PERFORMANCE_HINT": "THROUGHPUT",
    }
    if cache_dir is None:
        compiled = core.compile_model(_openvino_model(model), "CPU", config)
    else:
        ir = cache_dir / f"{model.run_id}-{model.image_size}" / "model.xml"
        if not ir.exists():
            ir.parent.mkdir(parents=True, exist_ok=True)
            partial = ir.with_name("partial.xml")  # a killed save leaves no half model.xml
            ov.save_model(_openvino_model(model), partial, compress_to_fp16=False)
            partial.with_suffix(".bin").replace(ir.with_suffix(".bin"))
            partial.replace(ir)
        core.set_property({"CACHE_DIR": str(cache_dir / "compiled")})
        compiled = core.compile_model(ir, "CPU", config)
    return OpenVinoStreams(compiled)


class OpenVinoStreams:
    """A compiled model run on all its streams at once: each takes a slice of the batch.

    The first call for a batch shape prepares its kernels; that is paid by the first chunk
    scored, not by a warm-up at load time (which a one-image run would pay for nothing).
    """

    def __init__(self, compiled: Any):
        import openvino as ov

        self.streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.queue = ov.AsyncInferQueue(compiled, self.streams)

    def __call__(self, nhwc: np.ndarray) -> np.ndarray:
        parts = [p for p in np.array_split(nhwc, self.streams) if len(p)]
        results: list[np.ndarray | None] = [None] * len(parts)

        def done(request: Any, index: int) -> None:
            results[index] = request.get_output_tensor(0).data.copy()

        self.queue.set_callback(done)
        for index, part in enumerate(parts):
            self.queue.start_async([np.ascontiguousarray(part)], userdata=index)
        self.queue.wait_all()
        return np.concatenate(results)  # type: ignore[arg-type]


class Predictor:
    """Probabilities for uint8 N×3×S×S batches from one back end at one precision.

    ``torch`` runs the logged module eagerly (bf16: autocast + channels_last); ``openvino``
    runs it compiled by OpenVINO, the default chosen by ``benchmarks/bench_score.py``. fp32
    is the reference; bf16 is used only after it passed the gate (`choose_predictor`).
    """

    def __init__(
        self,
        model: LoadedModel,
        bf16: bool = False,
        backend: str = "torch",
        cache_dir: Path | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
        self.model = model
        self.bf16 = bf16
        self.backend = backend
        self._compiled = compile_openvino(model, bf16, cache_dir) if backend == "openvino" else None

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def probabilities_nhwc(self, nhwc: np.ndarray) -> np.ndarray:
        """N×C probabilities for a uint8 N×H×W×3 batch (decoded images stacked as they come).

        OpenVINO takes it as it is, so scoring with it never imports torch."""
        if self._compiled is not None:
            logits = self._compiled(np.ascontiguousarray(nhwc)).astype(np.float32)
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            return exp / exp.sum(axis=1, keepdims=True)
        import torch

        return self.probabilities(torch.from_numpy(nhwc).permute(0, 3, 1, 2)).numpy()

    def probabilities(self, images: Any) -> Any:
        """N×C probabilities (a torch tensor) for a uint8 N×3×H×W torch batch."""
        import torch

        if self._compiled is not None:
            # a batch stacked from H×W×3 arrays is NHWC in memory: this permute is free
            nhwc = images.permute(0, 2, 3, 1).contiguous().numpy()
            return torch.from_numpy(self.probabilities_nhwc(nhwc))
        x = images.float().div_(255.0)
        with torch.no_grad():
            if self.bf16:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return torch.softmax(self.model.module(x).float(), dim=1)
            return torch.softmax(self.model.module(x), dim=1)


def precision_gate(
    model: LoadedModel,
    images: np.ndarray,
    labels: np.ndarray | None,
    backend: str = "torch",
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Compare ``backend`` in bf16 with the plain fp32 module on held-out images (uint8
    N×3×S×S at the model's size): top-1 agreement and accuracy drop."""
    import torch

    batch = torch.from_numpy(images)
    fp32 = Predictor(model).probabilities(batch).argmax(1).numpy()
    bf16 = Predictor(model, bf16=True, backend=backend, cache_dir=cache_dir)
    bf16 = bf16.probabilities(batch).argmax(1).numpy()
    agreement = float((fp32 == bf16).mean()) if len(images) else 0.0
    result: dict[str, Any] = {"backend": backend, "images": len(images), "agreement": agreement}
    passed = len(images) >= 20 and agreement >= GATE_AGREEMENT
    if labels is not None and len(labels):
        result["fp32_accuracy"] = float((fp32 == labels).mean())
        result["bf16_accuracy"] = float((bf16 == labels).mean())
        passed = passed and result["fp32_accuracy"] - result["bf16_accuracy"] <= GATE_ACCURACY_DROP
    result["passed"] = passed
    return result


def _load(lake: Lake, key: str, size: int) -> tuple[str, str, np.ndarray | None, str | None]:
    try:
        data = lake.read_bytes(key)
    except Exception as err:  # a file that vanished or a storage error: keep it, with why
        return key, "", None, f"unreadable: {err}"
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        return key, sha, None, "empty file (0 bytes)"
    try:
        return key, sha, decode_array(data, size), None
    except DECODE_ERRORS as err:
        return key, sha, None, decode_failure_reason(err)


class PredictionWriter:
    """Rows go to a local temporary file; `publish` puts the finished table in place at once."""

    def __init__(self, fmt: str, workdir: Path):
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"unknown format {fmt!r}: use parquet or csv")
        self.fmt = fmt
        self.path = workdir / f"predictions.{fmt}"
        self._parquet: pq.ParquetWriter | None = None
        self._csv = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        if self.fmt == "parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, SCHEMA)
            self._parquet.write_table(
                pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
            )
            return
        if self._csv is None:
            self._csv = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
            csv.writer(self._csv).writerow(PREDICTION_COLUMNS)
        rows = frame.assign(
            top5=frame["top5"].map(json.dumps),
            scored_at=frame["scored_at"].map(lambda t: t.isoformat()),
        )
        csv.writer(self._csv).writerows(rows[PREDICTION_COLUMNS].itertuples(index=False))

    def close(self) -> Path:
        if self.fmt == "parquet":
            if self._parquet is None:  # no rows: still a valid, empty table
                pq.write_table(SCHEMA.empty_table(), self.path)
            else:
                self._parquet.close()
        else:
            if self._csv is None:
                self._csv = open(self.path, "w", newline="")  # noqa: SIM115
                csv.writer(self._csv).writerow(PREDICTION_COLUMNS)
            self._csv.close()
        return self.path


def score(
    source: ScoringInput,
    predictor: Predictor,
    output: Lake,
    output_key: str,
    fmt: str = "parquet",
    batch_size: int = CHUNK,
    workers: int = 4,
) -> dict[str, Any]:
    """Score every key of ``source``; publish the table at ``output_key`` of ``output``."""
    model = predictor.model
    k = min(5, len(model.classes))
    scored_at = datetime.now(UTC)
    quarantined: list[dict[str, str]] = []
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="fruitops-score-") as tmp,
        ThreadPoolExecutor(workers) as pool,
        progress_bar(len(source.keys), "score", "images") as bar,
    ):
        writer = PredictionWriter(fmt, Path(tmp))

        def decode(chunk: list[str]):  # submitted at once, collected later
            return pool.map(lambda key: _load(source.lake, key, model.image_size), chunk)

        chunks = windows(source.keys, batch_size)
        pending = decode(next(chunks, []))
        while loaded := list(pending):
            # the next chunk decodes in the threads while this one is scored: two chunks at
            # most are in memory
            pending = decode(next(chunks, []))
            chunk = [item[0] for item in loaded]
            quarantined += [{"key": key, "reason": err} for key, _, _, err in loaded if err]
            good = [item for item in loaded if item[2] is not None]
            bar.update(len(chunk))
            if not good:
                continue
            probabilities = predictor.probabilities_nhwc(np.stack([item[2] for item in good]))
            top_i = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            top_p = np.take_along_axis(probabilities, top_i, axis=1)
            writer.write(
                pd.DataFrame(
                    {
                        "key": [item[0] for item in good],
                        "sha256": [item[1] for item in good],
                        "label": [model.classes[i] for i in top_i[:, 0].tolist()],
                        "confidence": top_p[:, 0].astype(np.float64),
                        "top5": [
                            [
                                {"label": model.classes[i], "probability": float(p)}
                                for i, p in zip(row_i, row_p, strict=True)
                            ]
                            for row_i, row_p in zip(top_i.tolist(), top_p.tolist(), strict=True)
                        ],
                        "model_name": model.name,
                        "model_version": model.version,
                        "run_id": model.run_id,
                        "scored_at": scored_at,
                        "source_uri": source.lake.root_uri,
                    }
                )
            )
        uri = output.put_file(writer.close(), output_key)
    seconds = time.perf_counter() - start
    return {
        "images": len(source.keys),
        "scored": writer.rows,
        "quarantined": quarantined,
        "ignored": source.ignored,
        "predictions_uri": uri,
        "model_uri": model.uri,
        "model_version": model.version,
        "precision": predictor.precision,
        "backend": predictor.backend,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(source.keys) / seconds, 1) if seconds else 0.0,
    }
