"""The code layout a reader relies on: where an asset lives, and who may import asset modules."""

import ast
from pathlib import Path

import pytest

from fruitops_core.registry import AssetGraph

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
GRAPH = AssetGraph.from_entry_points()


@pytest.mark.parametrize("key", sorted(GRAPH.assets))
def test_an_asset_key_names_its_module_and_function(key):
    group, name = key.split("/", 1)
    spec = GRAPH[key]
    assert (spec.fn.__module__, spec.fn.__name__) == (f"fruitops_{group}.assets", name)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


SOURCES = sorted(PACKAGES.glob("*/src/fruitops_*/*.py"))
NOT_ASSETS = [p for p in SOURCES if p.name != "assets.py"]


@pytest.mark.parametrize("path", NOT_ASSETS, ids=lambda p: str(p.relative_to(PACKAGES)))
def test_only_the_registry_imports_asset_modules(path):
    """Asset modules are thin declarations; the logic a CLI or another module needs lives in
    modules named for it, so importing it never drags in (and registers) a package's assets."""
    asset_modules = {m for m in _imported_modules(path) if m.endswith(".assets")}
    assert asset_modules <= {"fruitops_core.assets"}, f"{path.name} imports {asset_modules}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGES)))
def test_no_package_imports_airflow(path):
    assert not {m for m in _imported_modules(path) if m.split(".")[0] == "airflow"}
