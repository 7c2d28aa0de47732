"""The code layout a reader relies on: where an asset lives and its key is declared, who may
import asset modules, and the import contracts between packages."""

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from fruitops_core import asset_keys
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


def _private_names_used_from(path: Path) -> set[str]:
    """``_name``s that ``path`` imports from another FruitOps module, or reads off one."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, found = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fruitops"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.add(f"{node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name.startswith("fruitops"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.add(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGES)))
def test_no_module_uses_another_modules_private_names(path):
    """A leading underscore means "only this module relies on it": what two modules share
    has a public name, so whoever changes it knows to look for its users."""
    assert not _private_names_used_from(path)


TRACKING_MODULE = PACKAGES / "core/src/fruitops_core/tracking.py"
#: MLflow calls outside `fruitops_core.tracking` that touch no tracking store, and why
MLFLOW_CALLS_ALLOWED = {
    "mlflow.pytorch.save_model": "writes a local folder",
    "mlflow.pytorch.load_model": "`network_at` reads a downloaded, local folder",
    "mlflow.MlflowClient": "the pyfunc loader asks the registry that MLflow loaded it from",
}


def _mlflow_calls(path: Path) -> set[str]:
    """``mlflow.…(…)`` calls in ``path`` and calls of a ``Tracking``'s ``activate``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = any(
        isinstance(node, ast.Import) and any(a.name == "mlflow" for a in node.names)
        for node in ast.walk(tree)
    )
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "activate":
            found.add(f"{ast.unparse(node.func)}()")
        chain, head = [], node.func
        while isinstance(head, ast.Attribute):
            chain.insert(0, head.attr)
            head = head.value
        if imported and isinstance(head, ast.Name) and head.id == "mlflow":
            found.add(".".join(["mlflow", *chain]))
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if p != TRACKING_MODULE],
    ids=lambda p: str(p.relative_to(PACKAGES)),
)
def test_mlflow_is_reached_only_through_the_tracking_resource(path):
    """Logging, registry and loading go through `Tracking` and the `TrackedRun` it yields:
    no module logs to whichever run MLflow holds active, or points MLflow's process-wide URI
    somewhere (`activate`) on its own."""
    assert not _mlflow_calls(path) - set(MLFLOW_CALLS_ALLOWED)


def test_the_mlflow_call_check_sees_fluent_calls(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import mlflow\n"
        "mlflow.log_metrics({})\n"
        "mlflow.pyfunc.load_model('models:/m/1')\n"
        "tracking.activate()\n"
        "mlflow.pytorch.save_model(m, 'dir')\n"
    )
    assert _mlflow_calls(sample) - set(MLFLOW_CALLS_ALLOWED) == {
        "mlflow.log_metrics",
        "mlflow.pyfunc.load_model",
        "tracking.activate()",
    }


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: the packages are layers (core <- data <-
    models <- serving <- monitoring), none imports Airflow, even indirectly, and no package's
    modules import each other in a cycle."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=PACKAGES.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_every_asset_key_is_declared_once_in_asset_keys():
    declared = {
        value
        for name, value in vars(asset_keys).items()
        if name.isupper() and isinstance(value, str)
    }
    assert declared == set(GRAPH.assets)


def _name(requirement: str) -> str:
    """``scikit-learn>=1.4`` → ``scikit-learn``, normalised (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]).lower()


@pytest.mark.parametrize("package", sorted(p.name for p in PACKAGES.iterdir()))
def test_every_imported_package_is_declared_in_its_pyproject(package):
    """What a package imports, it declares (extras count): it installs alone, and a
    dependency that only came along with another one cannot vanish with it."""
    meta = tomllib.loads((PACKAGES / package / "pyproject.toml").read_text())["project"]
    extras = meta.get("optional-dependencies", {}).values()
    declared = {_name(r) for r in [*meta.get("dependencies", []), *(r for e in extras for r in e)]}
    distributions = packages_distributions()
    undeclared = {}
    for path in (PACKAGES / package / "src").rglob("*.py"):
        for module in _imported_modules(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top.startswith("fruitops") or not top:
                continue
            names = {_name(d) for d in distributions.get(top, [top])}
            if not names & declared:
                undeclared.setdefault(top, []).append(path.name)
    assert not undeclared, f"imported but not declared in {package}/pyproject.toml: {undeclared}"
