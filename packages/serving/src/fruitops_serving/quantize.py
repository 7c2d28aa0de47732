"""int8: the converted model quantized after training (NNCF, OpenVINO's own tool).

int8 runs on any x86 CPU, where bf16 needs one that has it, and cuts the model's CPU time
(Lite0, 2 cores: 2.5 against 5.5 ms a photo with AVX-512 VNNI; 6.0 against 8.5 ms under an
AVX2 cap, measured in December 2026). It is made once per model version by
the precision gate, which then compares it with fp32 like bf16 and keeps it in the lake
beside its verdict, so every scorer and server loads the model that was checked.

How: symmetric weights, asymmetric activations (NNCF's "mixed" preset), calibrated on
training-cache photos (never the held-out ones the gate judges on), with bias correction;
the first convolution and the classifier stay in f32 (measured on the real-photo Lite0:
99.0–99.3 % agreement with fp32 on 288 held-out photos, against 96.9–98.3 % with every layer
quantized). A CPU without VNNI multiplies int8 with AVX2 instructions that saturate at 16
bits, so there the weights keep to 7 bits (NNCF's overflow fix), which costs agreement but
not the wrong answers the saturation gives (95 % agreement without it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fruitops_models.registry import LoadedModel

#: layer types whose first and last occurrence stay in f32
KEPT_F32 = ("Convolution", "GroupConvolution", "MatMul")


def kept_in_f32(converted: Any) -> list[str]:
    """The first and the last weighted layer: the ones that carry most of int8's error."""
    layers = [op for op in converted.get_ordered_ops() if op.get_type_name() in KEPT_F32]
    return [layers[0].get_friendly_name(), layers[-1].get_friendly_name()] if layers else []


def quantize_int8(model: LoadedModel, calibration: np.ndarray, vnni: bool) -> Any:
    """``model`` converted to OpenVINO and quantized to int8 on ``calibration`` (uint8
    N×3×S×S photos at the model's size); ``vnni``: whether the CPU it serves on has VNNI."""
    import logging

    # NNCF loads torch's extension builder, which warns that there is no CUDA; and it logs
    # each layer it leaves alone: its progress bars say enough
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf

    nncf.set_log_level(logging.WARNING)

    from fruitops_serving.predictor import converted_model

    converted = converted_model(model)
    nhwc = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1))
    fix = nncf.OverflowFix.FIRST_LAYER if vnni else nncf.OverflowFix.ENABLE
    return nncf.quantize(
        converted,
        nncf.Dataset([nhwc[i : i + 1] for i in range(len(nhwc))]),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(nhwc),
        fast_bias_correction=False,
        ignored_scope=nncf.IgnoredScope(names=kept_in_f32(converted)),
        advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=fix),
    )


def save_int8(quantized: Any, lake: Any, folder: str) -> str:
    """The quantized IR written to ``folder`` of the lake; its ``.xml`` key."""
    import openvino as ov

    from fruitops_serving.predictor import save_ir

    with tempfile.TemporaryDirectory(prefix="fruitops-int8-") as tmp:
        ir = Path(tmp) / "model.xml"
        save_ir(ov, quantized, ir)
        lake.put_file(ir.with_suffix(".bin"), f"{folder}/model.bin")
        lake.put_file(ir, f"{folder}/model.xml")
    return f"{folder}/model.xml"


def local_int8(lake: Any, key: str, cache_dir: Path) -> Path:
    """The quantized IR at ``key`` of the lake, copied once into ``cache_dir`` (through a
    folder of this process's own, as `save_ir` does: two servers starting at once never
    read each other's half copies)."""
    import hashlib
    import shutil

    local = cache_dir / "int8" / hashlib.sha256(lake.uri(key).encode()).hexdigest()[:16]
    xml = local / "model.xml"
    if not xml.exists():
        local.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=local))
        try:
            lake.get_file(key.removesuffix(".xml") + ".bin", staging / "model.bin")
            lake.get_file(key, staging / "model.xml")
            (staging / "model.bin").replace(local / "model.bin")
            (staging / "model.xml").replace(xml)  # last: its presence says the pair is whole
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return xml
