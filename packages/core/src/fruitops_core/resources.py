"""The resources one run's assets share: the settings, the lake and the MLflow resource.

Made once per run (`Resources.of`) and handed to every asset through its context, so no asset
opens its own lake or MLflow client and a test can inject both.
"""

from __future__ import annotations

from dataclasses import dataclass

from fruitops_core.lake import Lake, open_lake
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking


@dataclass(frozen=True)
class Resources:
    settings: FruitOpsSettings
    lake: Lake
    tracking: Tracking

    @classmethod
    def of(
        cls,
        settings: FruitOpsSettings | None = None,
        lake: Lake | None = None,
        tracking: Tracking | None = None,
    ) -> Resources:
        """Those given, the rest built from ``settings`` (the environment's by default)."""
        settings = settings or FruitOpsSettings()
        settings.private_home()
        return cls(settings, lake or open_lake(settings), tracking or Tracking(settings))
