"""The online server's settings that depend on the machine."""

import pytest

from fruitops_serving.config import ServingConfig


@pytest.mark.parametrize(("cores", "int8"), [(1, 1), (2, 1), (3, 1), (8, 4)])
def test_int8_takes_half_the_cores_and_fp32_all_of_them(monkeypatch, cores, int8):
    monkeypatch.delenv("FRUITOPS_SERVE_MODEL_THREADS", raising=False)
    monkeypatch.setattr("fruitops_models.hardware.usable_cores", lambda: cores)
    assert ServingConfig().threads("int8") == int8
    assert ServingConfig().threads("fp32") == ServingConfig().threads("bf16") == cores


def test_model_threads_set_in_the_environment_win(monkeypatch):
    monkeypatch.setenv("FRUITOPS_SERVE_MODEL_THREADS", "3")
    assert ServingConfig().threads("int8") == ServingConfig().threads("fp32") == 3


def test_zero_model_threads_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("FRUITOPS_SERVE_MODEL_THREADS", "0")
    with pytest.raises(ValueError, match="model_threads"):
        ServingConfig()
