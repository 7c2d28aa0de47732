"""What the recipe takes from the hardware: the CPU's features, bf16 or not, and why."""

import pytest
import torch

from fruitops_models import hardware
from fruitops_models.config import TrainConfig


@pytest.fixture
def fresh_detection():
    detect = hardware.cpu_has_bf16
    detect.cache_clear()
    yield
    detect.cache_clear()


def test_capping_onednn_at_avx2_makes_any_cpu_an_avx2_only_one(monkeypatch, fresh_detection):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert hardware.cpu_has_bf16() is False
    features = hardware.cpu_features()
    assert features["bf16"] is False and features["onednn_max_isa"] == "AVX2"
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
