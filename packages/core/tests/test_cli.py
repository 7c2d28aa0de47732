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


def test_error_text_is_printed_as_it_is(settings, tmp_path):
    missing = tmp_path / "[photos] here"  # brackets are rich markup unless escaped
    result = run("materialize", "data/raw_images", "-c", f"data/raw_images.source={missing}")
    assert result.returncode == 1
    assert "[photos] here does not exist" in result.stderr.replace("\n", "")


def test_nothing_ingested_says_what_to_run(settings, monkeypatch):
    monkeypatch.delenv("FRUITOPS_SOURCE")
    result = run("materialize", "data/image_manifest", "--with-upstream", "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert "nothing has been ingested" in error and "fruitops data ingest SOURCE" in error


def test_command_line_errors_are_json_too(settings):
    result = run("materialize", "--json")  # the asset key argument is missing
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert payload["error_type"] == "UsageError" and "Missing argument 'keys'" in payload["error"]


def test_an_unexpected_error_leaves_its_traceback_and_debug_raises_it(settings, monkeypatch):
    from fruitops_core.output import error_log, run_command

    def broken() -> dict:
        return {}["missing"]  # a bug, not a foreseeable state

    with pytest.raises(typer.Exit):
        run_command(False, broken, print)
    logged = error_log().read_text()
    assert error_log().is_relative_to(settings.home)
    assert "KeyError: 'missing'" in logged and "in broken" in logged
    monkeypatch.setenv("FRUITOPS_DEBUG", "1")
    with pytest.raises(KeyError):
        run_command(True, broken, print)


def test_unexpected_json_error_names_the_log(settings, capfd):
    from fruitops_core.output import run_command

    def broken() -> dict:
        raise TypeError("'NoneType' object is not subscriptable")

    with pytest.raises(typer.Exit):
        run_command(True, broken, print)
    payload = json.loads(capfd.readouterr().out)
    assert payload["error_type"] == "TypeError"
    assert payload["traceback"].endswith("logs/errors.log") and "--debug" in payload["hint"]


def test_a_lake_without_credentials_is_a_plain_error_naming_the_setting(
    settings, monkeypatch, tmp_path
):
    """A gs:// lake and no Google credentials: a sentence that names FRUITOPS_LAKE_URI and
    the credentials to set, not an 'unexpected' error with a traceback to read."""
    for var in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("FRUITOPS_LAKE_URI", "gs://some-bucket/lake")
    result = run("data", "validate", "--json")
    payload = json.loads(result.stdout)
    assert result.returncode == 1
    assert "FRUITOPS_LAKE_URI" in payload["error"]
    assert "application-default login" in payload["error"] and ".." not in payload["error"]
    assert "hint" not in payload and "traceback" not in payload


def test_version_names_every_package_and_its_version(settings):
    from importlib.metadata import version

    expected = {
        f"fruitops-{name}": version(f"fruitops-{name}")
        for name in ("core", "data", "models", "serving", "monitoring", "devservices")
    }
    for args in (("--version", "--json"), ("--json", "--version")):
        done = run(*args)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == expected
    text = run("--version")
    assert text.returncode == 0 and text.stdout.splitlines() == [
        f"{name} {v}" for name, v in sorted(expected.items())
    ]
