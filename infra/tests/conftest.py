"""Offline infrastructure checks: the tools come from `make setup` (.tools/infra, nix-bin)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra_checks import ROOT, tool


@pytest.fixture
def run():
    def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [tool(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300
        )

    return run
