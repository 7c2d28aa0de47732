"""flake.nix parses, and its outputs evaluate (with stub inputs: nothing is downloaded)."""

from __future__ import annotations

import json

from infra_checks import INFRA, ROOT


def test_flake_parses(run):
    result = run("nix-instantiate", "--parse", str(ROOT / "flake.nix"))
    assert result.returncode == 0, result.stderr


def test_flake_dev_shell_has_the_tools_and_points_fruitops_at_the_project(run):
    result = run(
        "nix-instantiate", "--eval", "--strict", "--json", str(INFRA / "tests/flake_stub_eval.nix")
    )
    assert result.returncode == 0, result.stderr
    shell = json.loads(result.stdout)
    assert shell["inputs"] == ["nixpkgs"]  # no poetry2nix, no other input
    assert set(shell["systems"]) >= {"x86_64-linux", "aarch64-darwin"}
    for package in ("python311", "poetry", "postgresql_16", "seaweedfs", "opentofu", "checkov",
                    "google-cloud-sdk", "kubectl"):  # fmt: skip
        assert package in shell["packages"], package
    assert 'export FRUITOPS_HOME="$PWD/.fruitops"' in shell["shellHook"]
    assert "FRUITOPS_SERVICES_PG_BIN" in shell["shellHook"]
