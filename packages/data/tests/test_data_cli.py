"""`fruitops data ingest|validate` as a user runs them: what they say after each state."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

FRUITOPS = str(Path(sys.executable).parent / "fruitops")


def run(*args: str) -> tuple[int, dict]:
    done = subprocess.run([FRUITOPS, *args, "--json"], capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(done.stdout)


def test_validate_before_and_after_a_refused_ingest(settings, tmp_path: Path, real_sample: Path):
    code, nothing = run("data", "validate")
    assert code == 1 and "run `fruitops data ingest SOURCE`" in nothing["error"]
    photos = shutil.copytree(real_sample, tmp_path / "photos")
    for i in range(3):  # 3 of 27 files unusable: over the 5 % limit
        (photos / "Fruit_dataset" / "train1" / "kiwi" / f"broken-{i}.jpg").write_bytes(b"no jpeg")
    code, refused = run("data", "ingest", str(photos))
    assert code == 1 and "limit 5%" in refused["error"] and len(refused["quarantined"]) == 3
    assert refused["source"] == str(photos)
    code, blocked = run("data", "validate")
    assert code == 1 and "error_type" in blocked and blocked["error_type"] == "AssetCheckFailed"
    assert "unusable_share_within_threshold" in blocked["error"]
    assert "limit 5%" in blocked["error"] and "traceback" not in blocked


def test_the_ingested_source_is_the_data_set_until_another_is_named(
    settings, tmp_path: Path, real_sample: Path, monkeypatch
):
    monkeypatch.delenv("FRUITOPS_SOURCE")
    photos = shutil.copytree(real_sample, tmp_path / "photos")
    code, ingested = run("data", "ingest", str(photos))
    assert code == 0 and ingested["source"] == str(photos) and ingested["files"] == 24
    lenient = ["-c", "data/data_validation.min_train_per_class=2"]
    code, made = run("materialize", "data/class_mapping", "--with-upstream", *lenient)
    assert code == 0, made
    ran = [r["asset_key"] for r in made["materialized"]]
    assert ran == ["data/data_validation", "data/class_mapping"]  # ingest not redone
    assert made["materialized"][-1]["metadata"]["classes"] == 3
    # another source is an explicit choice, and the log says what it replaces
    monkeypatch.setenv("FRUITOPS_SOURCE", "synthetic:classes=4,per_class=24,size=48,seed=3")
    done = subprocess.run(
        [FRUITOPS, "materialize", "data/class_mapping", "--with-upstream", *lenient, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    made = json.loads(done.stdout)
    assert made["materialized"][0]["asset_key"] == "data/raw_images"
    assert made["materialized"][-1]["metadata"]["classes"] == 4
    assert "the lake held" in done.stderr and str(photos) in done.stderr.replace("\n", "")
    # a source that does not exist says so, and does not claim to replace the data set
    monkeypatch.setenv("FRUITOPS_SOURCE", str(tmp_path / "no-such-photos"))
    failed = subprocess.run(
        [FRUITOPS, "materialize", "data/raw_images", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1 and "no-such-photos does not exist" in failed.stdout
    assert "the lake held" not in failed.stderr


def test_validate_draws_no_gx_bars_and_leaves_no_temporary_folder(settings, tmp_path: Path):
    import os

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # where GX's project and SQLite copy go

    def fruitops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [FRUITOPS, *args], capture_output=True, text=True, timeout=300, env=env
        )

    assert fruitops("data", "ingest", settings.source).returncode == 0
    done = fruitops("data", "validate")
    assert done.returncode == 0, done.stderr
    assert "Calculating Metrics" not in done.stderr and "validation passed" in done.stdout
    assert not list(scratch.glob("fruitops-gx-*"))


def test_ingest_names_every_file_it_set_aside_with_why(settings, tmp_path: Path, real_sample):
    """The plain output, not only --json, lists the links and junk left out and the files
    quarantined, each with its reason (as `fruitops score` does)."""
    from fruitops_data.layout import JUNK_REASON, LINK_REASON

    photos = shutil.copytree(real_sample, tmp_path / "photos")
    kiwi = photos / "Fruit_dataset" / "train1" / "kiwi"
    (kiwi / "x.jpg").symlink_to("/etc/passwd")
    (kiwi / ".hidden.jpg").write_bytes(b"junk")
    (kiwi / "broken.jpg").write_bytes(b"no jpeg")
    done = subprocess.run(
        [FRUITOPS, "data", "ingest", str(photos)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("left out" in line and "x.jpg" in line and LINK_REASON in line for line in lines)
    assert any(
        "left out" in line and ".hidden.jpg" in line and JUNK_REASON in line for line in lines
    )
    assert any(line.strip().startswith("quarantined") and "broken.jpg" in line for line in lines)
