"""`Workspace`: what a command works in, built once per command and handed down.

The settings from the environment, the installed asset graph, and the resources its assets
get (the lake, MLflow's `Tracking`): a command passes them to `materialize` and to the work
it does itself, so nothing builds its own lake or tracking client on the side.
"""

from __future__ import annotations

from typing import NamedTuple

from fruitops_core.lake import Lake
from fruitops_core.registry import AssetGraph
from fruitops_core.resources import Resources
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking


class Workspace(NamedTuple):
    settings: FruitOpsSettings
    graph: AssetGraph
    lake: Lake
    tracking: Tracking

    @property
    def resources(self) -> Resources:
        """What `materialize` gives every asset of the run."""
        return Resources(self.settings, self.lake, self.tracking)


def open_workspace() -> Workspace:
    """The settings from the environment, the installed asset graph, its lake and tracking."""
    resources = Resources.of()
    return Workspace(
        resources.settings, AssetGraph.from_entry_points(), resources.lake, resources.tracking
    )
