"""The predictor: a logged model's probabilities from one back end at one precision.

Two back ends: OpenVINO (the default, measured fastest on CPUs here, see
benchmarks/bench_score.py) and torch eager, kept as the fp32 reference every other back end
and precision is compared with (`fruitops_serving.precision`). Three precisions: fp32, bf16
(on CPUs that have it) and int8 (OpenVINO only: the model quantized by
`fruitops_serving.quantize`). Scoring, the precision gate and the benchmarks all build a
`Predictor`, so what is measured is what serves.

OpenVINO's conversion is paid once per model run: the converted model and OpenVINO's
compiled kernels are kept on local disk, so a later start loads neither the pt2 nor
converts it again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fruitops_models.registry import LoadedModel
from fruitops_serving.config import BACKENDS


def converted_model(model: LoadedModel) -> Any:
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


PRECISIONS = ("fp32", "bf16", "int8")

#: OpenVINO's hint for batches (several streams, each a share of the cores on a share of the
#: chunk: depthwise convolutions keep one stream's threads waiting; EfficientNet-Lite0 on 2
#: cores: 170 against 143 img/s in one stream) and for online photos, one at a time (one
#: stream, on `ServingConfig.model_threads` of the cores)
BATCH_HINT, ONLINE_HINT = "THROUGHPUT", "LATENCY"


def compile_openvino(
    model: LoadedModel,
    precision: str = "fp32",
    cache_dir: Path | None = None,
    hint: str = BATCH_HINT,
    int8_ir: Path | None = None,
    threads: int | None = None,
) -> Any:
    """The logged network as an OpenVINO CPU model that takes uint8 NHWC batches.

    Scaling to [0, 1] and the NHWC → NCHW transpose run inside OpenVINO's graph. OpenVINO
    silently runs bf16 on CPUs that have it unless told otherwise, so the precision is always
    set explicitly: ``f32`` unless bf16 passed the gate (an int8 model's layers that stay
    unquantized run f32 too). With ``cache_dir`` the converted model is kept per MLflow run
    (as OpenVINO IR) and OpenVINO keeps its compiled kernels there (``CACHE_DIR``): a later
    start neither loads the pt2 nor converts it again. int8 is the quantized IR at
    ``int8_ir``, which the gate made and checked. ``threads`` caps the threads it computes
    on (default: OpenVINO's choice, every core).
    """
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": hint,
    }
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    if cache_dir is not None:
        core.set_property({"CACHE_DIR": str(cache_dir / "compiled")})
    if precision == "int8":
        if int8_ir is None:
            raise ValueError("int8 needs the quantized model the precision gate made")
        compiled = core.compile_model(int8_ir, "CPU", config)
    elif cache_dir is None:
        compiled = core.compile_model(converted_model(model), "CPU", config)
    else:
        ir = cache_dir / f"{model.run_id}-{model.image_size}" / "model.xml"
        if not ir.exists():
            save_ir(ov, converted_model(model), ir)
        compiled = core.compile_model(ir, "CPU", config)
    return OpenVinoStreams(compiled)


def save_ir(ov: Any, converted: Any, ir: Path) -> None:
    """Save the IR (``.xml`` + ``.bin``) in a folder of this process's own, then move both
    into place: a killed save leaves no half model, and two processes converting one model
    at once never write into each other's files (they shared ``partial.xml`` before)."""
    ir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=ir.parent))
    try:
        ov.save_model(converted, staging / "model.xml", compress_to_fp16=False)
        (staging / "model.bin").replace(ir.with_suffix(".bin"))
        (staging / "model.xml").replace(ir)  # last: its presence says the pair is whole
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OpenVinoStreams:
    """A compiled model run on all its streams at once: each takes a slice of the batch.

    A batch that goes to one stream (the online hint's only stream, or a single photo) runs
    synchronously on the calling thread, which then computes beside OpenVINO's own: one
    photo in 1.2 ms and 2.4 ms of CPU against 1.8 and 3.6 through the queue (int8 Lite0,
    AMD EPYC, 2 cores). Not for several threads at once (callers take turns, as `Batcher`
    does). The first call for a batch shape prepares its kernels; that is paid by the first
    chunk scored, not by a warm-up at load time (which a one-image run would pay for nothing).
    """

    def __init__(self, compiled: Any):
        import openvino as ov

        self.streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        self.queue = ov.AsyncInferQueue(compiled, self.streams)
        self.request = compiled.create_infer_request()

    def __call__(self, nhwc: np.ndarray) -> np.ndarray:
        if self.streams == 1 or len(nhwc) == 1:
            self.request.infer([np.ascontiguousarray(nhwc)])
            return self.request.get_output_tensor(0).data.copy()
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
    is the reference; bf16 and int8 are used only after they passed the gate
    (`gate.choose_predictor`).
    """

    def __init__(
        self,
        model: LoadedModel,
        precision: str = "fp32",
        backend: str = "torch",
        cache_dir: Path | None = None,
        hint: str = BATCH_HINT,
        int8_ir: Path | None = None,
        threads: int | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
        if precision not in PRECISIONS or (precision == "int8" and backend != "openvino"):
            raise ValueError(f"no {precision} on {backend}: fp32, bf16, or int8 on openvino")
        self.model = model
        self.precision = precision
        self.backend = backend
        self._compiled = (
            compile_openvino(model, precision, cache_dir, hint, int8_ir, threads)
            if backend == "openvino"
            else None
        )

    @property
    def threads(self) -> int | None:
        """The threads OpenVINO computes on (None for torch, which uses its own setting)."""
        return self._compiled.threads if self._compiled is not None else None

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
            if self.precision == "bf16":
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return torch.softmax(self.model.module(x).float(), dim=1)
            return torch.softmax(self.model.module(x), dim=1)

    def top1(self, images: np.ndarray, chunk: int = 64) -> np.ndarray:
        """The top-1 class of each uint8 N×3×S×S image, ``chunk`` images at a time."""
        import torch

        parts = [
            self.probabilities(torch.from_numpy(images[i : i + chunk])).argmax(1).numpy()
            for i in range(0, len(images), chunk)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
