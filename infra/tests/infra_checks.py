"""Paths and tools of the offline infrastructure checks (`make setup` installs the tools)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TOOLS = ROOT / ".tools" / "infra" / "bin"
#: What to install for a tool `make setup` could not (it installs system packages only as root)
SYSTEM_TOOLS = {
    "nix-instantiate": "install Nix (https://nixos.org/download) or Debian's nix-bin "
    "(sudo apt-get install nix-bin)",
}


def tool(name: str) -> str:
    found = TOOLS / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        hint = SYSTEM_TOOLS.get(name, "run `make setup` (scripts/install-infra-tools)")
        pytest.fail(f"{name} is missing: {hint}")
    return on_path


def terraform_cli() -> str:
    """Terraform, else OpenTofu: both run the provider-free checks offline."""
    for name in ("terraform", "tofu"):
        if found := shutil.which(name):
            return found
    pytest.fail(
        "Terraform >= 1.11 or OpenTofu >= 1.11 is missing: install either "
        "(the flake's dev shell has opentofu)"
    )
