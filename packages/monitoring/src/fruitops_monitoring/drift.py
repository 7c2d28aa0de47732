"""Evidently data-drift reports (current API) and the decision read from them."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], drift_share: float = 0.5
):
    """Run DataDriftPreset with per-column tests; return the Evidently snapshot."""
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) < 2:
            raise ValueError(
                f"the {name} set has {len(frame)} usable images; a drift report "
                "needs at least 2 on each side"
            )
    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share)], include_tests=True)
    # a constant column (all images 64 px wide, say) makes Evidently's correlation step
    # divide by zero; the drift test itself handles it, so the warning is only noise
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return report.run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )


def drift_decision(snapshot_dict: dict[str, Any], drift_share: float) -> dict[str, Any]:
    """``{dataset_drift, drift_share, drifted_columns}`` from a snapshot's dict()."""
    share, drifted = 0.0, []
    for metric in snapshot_dict.get("metrics", []):
        if metric["config"]["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in snapshot_dict.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and test.get("status") == "FAIL":
            drifted.append(params["column"])
    return {
        "dataset_drift": share >= drift_share,
        "drift_share": share,
        "drifted_columns": sorted(drifted),
    }
