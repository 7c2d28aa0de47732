"""The drift options `fruitops monitor drift` and the monitoring DAG share, field by field."""

from __future__ import annotations

from fruitops_core.asset_keys import DRIFT_REPORT
from fruitops_core.options import ConfigOption
from fruitops_monitoring.config import DriftConfig

#: When a batch counts as drifted: `fruitops monitor drift`'s options and the DAG's Params.
DRIFT_POLICY = [
    ConfigOption(DRIFT_REPORT, DriftConfig, f) for f in ("drift_share", "critical_columns")
]
#: The monitoring DAG's Params: the policy, and a day of online answers instead of a batch.
MONITORING_PARAMS = [*DRIFT_POLICY, ConfigOption(DRIFT_REPORT, DriftConfig, "online_day")]
