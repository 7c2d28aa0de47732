"""The fruitops CLI as a user runs it: a subprocess, JSON on stdout, logs on stderr."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fruitops_core.cli import parse_config

FRUITOPS = str(Path(sys.executable).parent / "fruitops")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FRUITOPS, *args], capture_output=True, text=True, timeout=300)


def test_assets_list_json_is_one_object(settings):
    result = run("assets", "list", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # exactly one JSON document, nothing else
    keys = [a["key"] for a in payload["assets"]]
    assert "data/image_manifest" in keys and "monitoring/drift_report" in keys
    manifest = next(a for a in payload["assets"] if a["key"] == "data/image_manifest")
    assert manifest["deps"] == ["data/raw_images"]
    assert manifest["materialized"] is False


def test_materialize_json_reports_records(settings):
    result = run(
        "materialize",
        "data/image_manifest",
        "--with-upstream",
        "--json",
        "--config",
        "data/raw_images.workers=2",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    keys = [r["asset_key"] for r in payload["materialized"]]
    assert keys == ["data/raw_images", "data/image_manifest"]
    manifest = payload["materialized"][1]
    assert manifest["metadata"]["rows"] == 4 * 24
    assert Path(manifest["artifact_uri"].removeprefix("file://")).exists()
    assert "manifest" in result.stderr or result.stderr == "" or "INFO" in result.stderr


def test_errors_are_json_with_exit_1(settings):
    result = run("materialize", "data/nope", "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert "unknown asset 'data/nope'" in payload["error"]


def test_bad_source_error_names_the_folder(settings, tmp_path):
    missing = tmp_path / "no-photos-here"
    result = run("materialize", "data/raw_images", "--config", f"data/raw_images.source={missing}")
    assert result.returncode == 1
    assert "no-photos-here does not exist" in result.stderr


def test_parse_config():
    assert parse_config(["models/trained_model.epochs=3", "data/raw_images.source=/x"]) == {
        "models/trained_model": {"epochs": 3},
        "data/raw_images": {"source": "/x"},
    }
    with pytest.raises(typer.BadParameter, match="ASSET_KEY.FIELD=VALUE"):
        parse_config(["epochs=3"])
