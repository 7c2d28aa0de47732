"""What the recipe takes from the hardware: the CPU's features, bf16 or not, and why."""

import pytest
import torch

from fruitops_models import hardware
from fruitops_models.config import TrainConfig


@pytest.fixture
def fresh_detection():
    detections = (hardware.cpu_has_bf16, hardware.cpu_has_vnni)  # before a test replaces one
    for detect in detections:
        detect.cache_clear()
    yield
    for detect in detections:
        detect.cache_clear()


def test_capping_onednn_at_avx2_makes_any_cpu_an_avx2_only_one(monkeypatch, fresh_detection):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.cpu_has_bf16() is False
    features = hardware.cpu_features()
    assert features["bf16"] is False and features["onednn_max_isa"] == "AVX2"
    assert hardware.cpu_has_vnni() is False and features["vnni"] is False  # int8 saturates
    assert hardware.cpu_summary(features).endswith("(oneDNN capped at AVX2), no bf16")
    dtype, why = hardware.precision_choice(TrainConfig(arch="cnn"), torch.device("cpu"))
    assert dtype is None and why.startswith("fp32: the CPU has no bf16")


def test_each_architecture_gets_the_precision_that_trains_it_faster(monkeypatch, fresh_detection):
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)  # a bf16 CPU, whatever this is
    cpu = torch.device("cpu")
    dtype, why = hardware.precision_choice(TrainConfig(arch="efficientnet_lite0"), cpu)
    assert dtype is None and "trains faster in fp32" in why
    dtype, why = hardware.precision_choice(TrainConfig(arch="resnet18"), cpu)
    assert dtype is torch.bfloat16 and why.startswith("bf16 autocast")
    forced = hardware.precision_choice(
        TrainConfig(arch="efficientnet_lite0", precision="bf16"), cpu
    )
    assert forced == (torch.bfloat16, "bf16: asked for")


def test_runs_record_what_the_hardware_decided():
    settings = hardware.hardware_settings(torch.device("cpu"), None, TrainConfig(arch="cnn"))
    assert settings["hardware"] == hardware.cpu_summary()
    assert {"precision_used", "precision_reason", "threads", "torch_version"} <= set(settings)


@pytest.mark.parametrize(
    "flags,cap,vnni",
    [
        ("fpu avx2 fma", None, False),  # AVX2 only
        ("avx2 avx512f avx512_vnni", None, True),
        ("avx2 avx_vnni", None, True),  # Alder Lake and later laptops
        ("avx2 avx512f avx512_vnni", "AVX2", False),
        ("avx2 avx512f avx512_vnni", "AVX512_CORE_VNNI", True),
        ("avx2 avx_vnni", "AVX2_VNNI", True),
    ],
)
def test_vnni_is_read_from_the_cpu_flags_and_the_cap(
    monkeypatch, fresh_detection, flags, cap, vnni
):
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: {"flags": flags})
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert hardware.cpu_has_vnni() is vnni
