from pathlib import Path

import pytest

from fruitops_core.settings import FruitOpsSettings, Profile, SettingsError


def test_embedded_default_lives_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRUITOPS_HOME", str(tmp_path))
    settings = FruitOpsSettings()
    assert settings.profile is Profile.embedded
    assert settings.lake_root == (tmp_path / "lake").as_uri()
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.mlflow_artifacts_uri == (tmp_path / "mlartifacts").as_uri()


def test_home_defaults_to_dot_fruitops_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert FruitOpsSettings().home == tmp_path / ".fruitops"


def test_services_profile_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRUITOPS_PROFILE", "services")
    settings = FruitOpsSettings()
    assert settings.lake_root == "s3://fruitops-lake"
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.s3_endpoint == "http://127.0.0.1:8333"
    assert settings.mlflow_artifacts_uri is None  # the server decides


def test_standard_variables_override_profile(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRUITOPS_PROFILE", "compose")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.example:9000")
    monkeypatch.setenv("FRUITOPS_LAKE_URI", "s3://other/prefix")
    settings = FruitOpsSettings()
    assert settings.tracking_uri == "http://mlflow.example:5000"
    assert settings.s3_endpoint == "http://s3.example:9000"
    assert settings.lake_root == "s3://other/prefix"


def test_gcp_without_bucket_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRUITOPS_PROFILE", "gcp")
    with pytest.raises(SettingsError, match="FRUITOPS_LAKE_URI"):
        _ = FruitOpsSettings().lake_root


def test_unknown_profile_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRUITOPS_PROFILE", "laptop")
    with pytest.raises(ValueError, match="profile"):
        FruitOpsSettings()


def test_an_unknown_profile_names_the_variable_and_the_choices(monkeypatch):
    import pydantic

    monkeypatch.setenv("FRUITOPS_PROFILE", "nonsense")
    with pytest.raises(
        pydantic.ValidationError, match=r"FRUITOPS_PROFILE='nonsense'.*embedded, services"
    ):
        FruitOpsSettings()


@pytest.mark.slow
def test_an_unreachable_mlflow_server_fails_fast_naming_it_and_what_to_start(monkeypatch):
    import socket
    import time

    from fruitops_core.tracking import Tracking, TrackingUnavailable

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(
        TrackingUnavailable, match=rf"127.0.0.1:{port} does not answer.*services up"
    ):
        Tracking(FruitOpsSettings()).experiment_id  # noqa: B018
    assert time.monotonic() - started < 30


def test_the_home_is_made_private_whatever_the_umask(tmp_path: Path, monkeypatch):
    """The lake, MLflow's store, logs and the services' secrets live there: mode 700 from
    the first run (a home that already exists keeps the mode its owner gave it)."""
    import os
    import stat

    from fruitops_core.resources import Resources

    monkeypatch.setenv("FRUITOPS_HOME", str(tmp_path / "new" / ".fruitops"))
    old = os.umask(0o022)
    try:
        Resources.of(FruitOpsSettings())
    finally:
        os.umask(old)
    for folder in (tmp_path / "new", tmp_path / "new" / ".fruitops"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    shared = tmp_path / "shared-home"
    shared.mkdir(mode=0o755)
    monkeypatch.setenv("FRUITOPS_HOME", str(shared))
    Resources.of(FruitOpsSettings())
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
