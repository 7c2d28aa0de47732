"""The README's "Using it" commands are a contract: run as written, in order, on real photos.

The block is taken from the README itself, so the two cannot differ; only the photo folder
is pointed at a copy of the shipped sample (`samples/fruits-real-mini`) and the FruitOps
home at a temporary one. Then what each command promises is checked where it lands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fruitops_data.config import TrainingCacheConfig
from fruitops_data.records import TrainingCache

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "fruits-real-mini"
pytestmark = pytest.mark.slow


def usage_block(readme: str) -> str:
    """The first ```bash block under the "## Using it" heading."""
    section = readme.split("\n## Using it\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README: no ```bash block under '## Using it'"
    return match.group(1)


def test_usage_block_is_found_and_names_the_sample():
    block = usage_block((ROOT / "README.md").read_text())
    assert re.search(r"^PHOTOS=samples/fruits-real-mini\b", block, re.M)
    assert "fruitops train" in block and "fruitops monitor drift" in block


def test_the_defaults_the_readme_states_are_the_configs():
    from fruitops_models.config import SCRATCH, CandidatesConfig, TrainConfig

    (arch,) = CandidatesConfig().architectures
    recipe = TrainConfig(arch=arch).sized(TrainingCacheConfig().image_size)
    stated = (
        f"fine-tunes the\n  `{arch}`\n  at {recipe.input_size} px (validated and served at "
        f"{recipe.serve_size}), batch "
        f"{recipe.batch_size}, for up to {recipe.epochs} epochs with early stopping "
        f"(patience {recipe.patience})"
    )
    readme = (ROOT / "README.md").read_text()
    assert stated in readme
    scratch = (
        f"({SCRATCH.input_size} px, batch {SCRATCH.batch_size}, up to {SCRATCH.epochs} epochs)"
    )
    assert scratch in readme


def _fruitops_json(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "fruitops"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_readme_usage_runs_in_order_on_real_photos(tmp_path: Path):
    photos = shutil.copytree(SAMPLE, tmp_path / "photos")
    block = usage_block((ROOT / "README.md").read_text())
    script = re.sub(r"^PHOTOS=\S+", f"PHOTOS={photos}", block, count=1, flags=re.M)
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FRUITOPS_", "AIRFLOW"))},
        "FRUITOPS_HOME": str(home),
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"set -x\n{script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-6000:]}"

    classes = sorted(p.name for p in (photos / "Fruit_dataset" / "train1").iterdir())
    lake = home / "lake"
    # the model was trained on the photos given, with the recipe's defaults
    cache = TrainingCache.model_validate_json(
        (lake / "assets/data/training_cache/current/data.json").read_text()
    )
    assert cache.classes == classes and cache.source == str(photos)
    assert cache.image_size == TrainingCacheConfig().image_size
    # two candidates from two commands; promote weighed both and the champion is the best
    listing = _fruitops_json(env, "models", "list")
    versions = {v["version"]: v for v in listing["versions"]}
    assert sorted(v["arch"] for v in versions.values()) == ["cnn", "efficientnet_lite0"]
    evaluation = json.loads((lake / "assets/models/model_evaluation/current/data.json").read_text())
    scores = {s["version"]: s["macro_f1"] for s in evaluation["scores"]}
    assert set(scores) == set(versions)
    (champion,) = [v for v in versions.values() if "champion" in v["aliases"]]
    assert scores[champion["version"]] == max(scores.values())
    # the champion labelled the scored photos; the drift report of that batch was written
    latest = json.loads((lake / "predictions/latest.json").read_text())
    predictions = pd.read_parquet(latest["predictions_uri"].removeprefix("file://"))
    assert len(predictions) == 5 * len(classes)
    assert set(predictions["model_version"]) == {champion["version"]}
    assert set(predictions["label"]) <= set(classes)
    reports = list((lake / "drift").glob("*/drift_report.html"))
    assert len(reports) == 1 and reports[0].stat().st_size > 10_000
