"""flake.nix parses, its outputs evaluate (with stub inputs: nothing is downloaded), and
flake.lock pins the nixpkgs release it names."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from infra_checks import INFRA, ROOT, tool

#: Evaluation needs no store: with a dummy one no Nix daemon is asked (a user outside
#: Debian's nix-users group may not reach its socket)
NO_STORE = ("--store", "dummy://")


def test_flake_parses(run):
    result = run("nix-instantiate", *NO_STORE, "--parse", str(ROOT / "flake.nix"))
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def shell() -> dict:
    """flake.nix's outputs evaluated once with stub inputs (flake_stub_eval.nix)."""
    stub = str(INFRA / "tests/flake_stub_eval.nix")
    result = subprocess.run([tool("nix-instantiate"), *NO_STORE, "--eval", "--strict", "--json",
                             stub], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_flake_dev_shell_has_the_tools_and_points_fruitops_at_the_project(shell):
    assert shell["inputs"] == ["nixpkgs"]  # no poetry2nix, no other input
    assert set(shell["systems"]) >= {"x86_64-linux", "aarch64-darwin"}
    for package in ("python311", "poetry", "postgresql_16", "seaweedfs", "opentofu", "checkov",
                    "google-cloud-sdk", "kubectl"):  # fmt: skip
        assert package in shell["packages"], package
    assert 'export FRUITOPS_HOME="$PWD/.fruitops"' in shell["shellHook"]
    assert "FRUITOPS_SERVICES_PG_BIN" in shell["shellHook"]
    # pip's manylinux wheels (torch) need libstdc++ and libz on NixOS
    assert shell["ldLibraryPath"].split(":") == ["libstdcxx/lib", "zlib/lib"]
    assert shell["outputNames"] == ["devShells"]  # what `nix flake check` checks


def test_flake_lock_pins_a_supported_nixpkgs_release(shell):
    url = shell["nixpkgs"]
    owner, repo, ref = re.fullmatch(r"github:([^/]+)/([^/]+)/(.+)", url).groups()
    release = re.fullmatch(r"nixos-(\d\d)\.(05|11)", ref)
    # 25.05 ended 2025-12-31 and 25.11 on 2026-06-30: a newer release, or the lock is stale
    assert release and (int(release[1]), int(release[2])) >= (26, 5), ref
    lock = json.loads((ROOT / "flake.lock").read_text())
    assert lock["version"] == 7 and lock["root"] == "root"
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}
    node = lock["nodes"]["nixpkgs"]
    assert node["original"] == {"owner": owner, "ref": ref, "repo": repo, "type": "github"}
    locked = node["locked"]
    assert locked["owner"] == owner and locked["repo"] == repo and locked["type"] == "github"
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"])
    assert isinstance(locked["lastModified"], int)
