"""The asset graph: every asset that installed packages declare, in dependency order.

Packages add assets by naming a module in the ``fruitops.assets`` entry-point group; every
`AssetSpec` and `AssetCheckSpec` at that module's top level joins the graph.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

from fruitops_core.assets import AssetCheckSpec, AssetSpec

ENTRY_POINT_GROUP = "fruitops.assets"


class AssetGraphError(ValueError):
    """The declared assets do not form a valid graph, or a selection matches nothing."""


@dataclass(frozen=True)
class AssetGraph:
    assets: dict[str, AssetSpec]

    @classmethod
    def from_modules(cls, modules: Iterable[ModuleType]) -> AssetGraph:
        specs: dict[str, AssetSpec] = {}
        checks: list[AssetCheckSpec] = []
        for module in modules:
            for value in vars(module).values():
                if isinstance(value, AssetSpec):
                    if value.key in specs and specs[value.key].fn is not value.fn:
                        raise AssetGraphError(f"asset {value.key} is declared twice")
                    specs[value.key] = value
                elif isinstance(value, AssetCheckSpec):
                    checks.append(value)
        for check in checks:
            if check.asset_key not in specs:
                raise AssetGraphError(f"check {check.name} targets unknown asset {check.asset_key}")
            specs[check.asset_key] = specs[check.asset_key].with_checks((check,))
        graph = cls(specs)
        graph.topological_order()  # validates deps and cycles
        return graph

    @classmethod
    def from_entry_points(cls) -> AssetGraph:
        modules = [
            importlib.import_module(ep.value)
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        ]
        return cls.from_modules(modules)

    def __getitem__(self, key: str) -> AssetSpec:
        try:
            return self.assets[key]
        except KeyError:
            known = ", ".join(sorted(self.assets)) or "none"
            raise AssetGraphError(f"unknown asset {key!r}; known assets: {known}") from None

    def topological_order(self, keys: Iterable[str] | None = None) -> list[str]:
        """Keys in an order where every asset comes after its upstream assets."""
        wanted = set(self.assets if keys is None else keys)
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(key: str, path: tuple[str, ...]) -> None:
            if state.get(key) == "done":
                return
            if state.get(key) == "visiting":
                raise AssetGraphError(f"asset cycle: {' -> '.join(path + (key,))}")
            spec = self[key]
            state[key] = "visiting"
            for dep in spec.deps:
                if dep not in self.assets:
                    raise AssetGraphError(f"asset {key} depends on unknown asset {dep}")
                visit(dep, path + (key,))
            state[key] = "done"
            order.append(key)

        for key in sorted(self.assets):
            visit(key, ())
        return [k for k in order if k in wanted]

    def upstream_closure(self, keys: Iterable[str]) -> set[str]:
        result: set[str] = set()
        stack = list(keys)
        while stack:
            key = stack.pop()
            if key not in result:
                result.add(key)
                stack.extend(self[key].deps)
        return result

    def select(self, patterns: str | Iterable[str]) -> list[str]:
        """Keys matching glob patterns (``"data/* models/*"``), in dependency order."""
        if isinstance(patterns, str):
            patterns = patterns.split()
        patterns = list(patterns)
        chosen = {k for k in self.assets for p in patterns if fnmatch.fnmatchcase(k, p)}
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(k, p) for k in self.assets)]
        if unmatched:
            raise AssetGraphError(
                f"no asset matches {unmatched}; known assets: {', '.join(sorted(self.assets))}"
            )
        return self.topological_order(chosen)
