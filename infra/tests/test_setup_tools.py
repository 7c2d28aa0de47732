"""`make setup` for a user who cannot install system packages: PostgreSQL's server binaries
and Nix are optional (only the services profile and the flake tests need them), so their
installers say what to install and let set-up go on."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from infra_checks import ROOT

NOBODY = 65534


def as_nobody(script: str, path_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """``script`` as uid 65534 with only bash and id on PATH: no apt-get, initdb or nix."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv") or "setpriv"
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    else:
        prefix = []  # already not root
    return subprocess.run([*prefix, str(ROOT / "scripts" / script)], cwd=ROOT,
                          env={"PATH": str(path_dir), "HOME": "/nonexistent", **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def bare_path() -> Path:
    """A folder the other user can enter (pytest's tmp_path is the caller's alone)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)
        for command in ("bash", "id"):
            (folder / command).symlink_to(shutil.which(command))
        (folder / "no-postgresql").mkdir()
        yield folder


def test_without_root_install_postgres_says_what_to_install_and_goes_on(bare_path):
    done = as_nobody("install-postgres", bare_path, PG_LIB=str(bare_path / "no-postgresql"))
    assert done.returncode == 0, done.stderr
    assert "postgresql package" in done.stderr and "FRUITOPS_SERVICES_PG_BIN" in done.stderr
    assert "embedded demo does not need them" in done.stderr


def test_without_root_install_infra_tools_says_what_to_install_and_goes_on(bare_path):
    assert (ROOT / ".tools/infra/bin/checkov").exists(), "run `make setup` first"
    done = as_nobody("install-infra-tools", bare_path)
    assert done.returncode == 0, done.stderr
    assert "nix-instantiate is missing" in done.stderr and "nix-bin" in done.stderr


def test_a_setup_step_is_one_line_and_a_failed_one_shows_its_output_and_the_log(tmp_path):
    log = tmp_path / "logs" / "setup.log"

    def step(label: str, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ROOT / "scripts" / "step"), label, "bash", "-c", script],
            env={**os.environ, "SETUP_LOG": str(log)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    noisy = "; ".join(f"echo Installing file {i}" for i in range(500))
    done = step("many files", f"{noisy}; echo 'note: nix is missing' >&2")
    assert done.returncode == 0
    shown = done.stdout.splitlines()
    assert len(shown) == 2 and shown[0].split()[:3] == ["many", "files", "ok"]
    assert shown[1].strip() == "note: nix is missing"  # notes are shown, the rest is logged
    assert "Installing file 499" in log.read_text()

    failed = step("a broken step", "echo first line; echo 'ERROR: no such package' >&2; exit 3")
    assert failed.returncode == 3
    assert "a broken step" in failed.stdout and "FAILED (exit 3)" in failed.stdout
    assert "first line" in failed.stdout and "ERROR: no such package" in failed.stdout
    assert f"full log: {log}" in failed.stdout
    assert log.read_text().count("=== ") == 2  # both steps, each under its own header
