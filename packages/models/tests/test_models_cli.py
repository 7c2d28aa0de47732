"""`fruitops train`, `fruitops models promote` and `fruitops models list` as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FRUITOPS = str(Path(sys.executable).parent / "fruitops")
pytestmark = pytest.mark.slow


def run(*args: str) -> tuple[int, dict]:
    done = subprocess.run([FRUITOPS, *args, "--json"], capture_output=True, text=True, timeout=600)
    return done.returncode, json.loads(done.stdout)


def test_train_promote_list(settings):
    code, trained = run("train", "--arch", "cnn", "--epochs", "2", "--image-size", "32")
    assert code == 0, trained
    assert set(trained) >= {
        "run_id",
        "model_name",
        "model_version",
        "metrics",
        "seconds",
        "images_per_second",
    }
    assert set(trained["metrics"]) == {
        "val_accuracy",
        "val_macro_f1",
        "test_accuracy",
        "test_macro_f1",
    }
    assert trained["model_version"] == 1 and trained["images_per_second"] > 0
    code, promoted = run("models", "promote")
    assert code == 0 and promoted["promoted"] and promoted["champion_version"] == 1
    code, second = run("train", "--arch", "resnet18", "--epochs", "1", "--image-size", "32")
    assert code == 0 and second["model_version"] == 2
    code, decision = run("models", "promote", "--margin", "0.99")
    assert code == 0 and not decision["promoted"] and decision["champion_version"] == 1
    code, listing = run("models", "list")
    assert [v["version"] for v in listing["versions"]] == [1, 2]
    assert listing["versions"][0]["aliases"] == ["champion"]
    assert listing["versions"][1]["arch"] == "resnet18"


def test_bad_arch_and_size_fail_with_the_reason(settings):
    code, error = run("train", "--arch", "vgg")
    assert code == 1 and "unknown architecture 'vgg'" in error["error"]
    code, error = run("train", "--image-size", "0")
    assert code == 1 and "image_size" in error["error"]
