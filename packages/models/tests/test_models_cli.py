"""`fruitops train`, `fruitops models promote` and `fruitops models list` as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FRUITOPS = str(Path(sys.executable).parent / "fruitops")
pytestmark = pytest.mark.slow
SMALL = ["--image-size", "32", "--batch-size", "16"]


def run(*args: str) -> tuple[int, dict]:
    done = subprocess.run([FRUITOPS, *args, "--json"], capture_output=True, text=True, timeout=600)
    return done.returncode, json.loads(done.stdout)


def test_first_model_is_champion_and_promote_weighs_separate_trainings(settings):
    code, trained = run("train", "--arch", "cnn", "--epochs", "2", *SMALL)
    assert code == 0, trained
    (cnn,) = trained["candidates"]
    assert set(cnn["metrics"]) == {"val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1"}
    assert cnn["model_version"] == 1 and cnn["images_per_second"] > 0
    assert trained["champion_version"] == 1  # usable at once, no promote needed
    assert trained["source"] == settings.source and trained["classes"] == 4
    code, second = run("train", "--arch", "resnet18", "--epochs", "1", *SMALL)
    assert code == 0 and second["candidates"][0]["model_version"] == 2
    assert second["champion_version"] == 1  # a later model waits for promotion
    code, decision = run("models", "promote")
    assert code == 0, decision
    # the candidate of the second command was weighed against the first one, on one split
    assert decision["candidate_version"] == 2 and decision["previous_champion_version"] == 1
    best = 2 if decision["candidate_score"] > decision["previous_champion_score"] else 1
    # it names every model it weighed, best first, not only the candidate of the decision
    assert {(s["version"], s["role"]) for s in decision["weighed"]} == {
        (2, "candidate"),
        (1, "champion"),
    }
    assert decision["weighed"][0]["macro_f1"] >= decision["weighed"][-1]["macro_f1"]
    assert decision["champion_version"] == best and decision["promoted"] == (best == 2)
    # weighed once: a third candidate is compared alone with the champion
    code, third = run("train", "--arch", "cnn", "--epochs", "1", "--seed", "1", *SMALL)
    assert code == 0
    code, again = run("models", "promote", "--margin", "0.99")
    assert code == 0 and again["candidate_version"] == 3 and not again["promoted"]
    assert again["champion_version"] == best
    code, listing = run("models", "list")
    assert [v["version"] for v in listing["versions"]] == [1, 2, 3]
    assert listing["versions"][best - 1]["aliases"] == ["champion"]
    assert listing["versions"][1]["arch"] == "resnet18"
    # every version has its card, in MLflow and the lake, shown by `models list --card`
    code, card = run("models", "list", "--card", "2")
    assert code == 0 and card["version"] == 2
    text = card["card"]
    assert text.startswith("# Model card: fruit-classifier v2 (resnet18)")
    parts = ["## Intended use", "## Limits", "manifest sha256", "## Scores", "95 %"]
    parts += ["## Weakest classes (test)", "## Per class (test)", "precision:", "hardware:"]
    for part in parts:
        assert part in text, part
    lake_card = settings.home / "lake" / "models" / "cards" / "fruit-classifier" / "v2.md"
    assert lake_card.read_text() == text
    done = subprocess.run(
        [FRUITOPS, "models", "list", "--card", "2"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == text.strip()
    code, missing = run("models", "list", "--card", "9")
    assert code != 0 and "has no version 9" in missing["error"]


def test_bad_choices_and_bounds_are_refused_before_anything_runs(settings):
    code, error = run("train", "--arch", "vgg")
    assert code == 2 and "'vgg' is not one of 'efficientnet_lite0'" in error["error"]
    code, error = run("train", "--image-size", "0")
    assert code == 2 and "--image-size" in error["error"]
    code, error = run("train", "--lr", "0")  # a bound the parser cannot see: pydantic's
    assert code == 1 and "lr" in error["error"] and "greater than 0" in error["error"]
    assert not (settings.home / "lake" / "raw").exists()  # nothing was ingested
