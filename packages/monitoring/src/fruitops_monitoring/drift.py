"""Evidently drift reports (current API) and the policy that turns one into a decision.

The report compares a scored batch with the reference profile: feature drift (every image
and embedding column), prediction drift (the class mix as a categorical column, confidence,
entropy, margin), and classification quality when both sides carry true labels. The t-SNE
embedding metric is left out on purpose (a minute a report here): the embedding's principal
components are plain numeric columns.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, MulticlassClassification, Report
from evidently.presets import ClassificationPreset, DataDriftPreset
from sklearn.exceptions import UndefinedMetricWarning

from fruitops_monitoring.config import DriftPolicy
from fruitops_monitoring.features import IMAGE_COLUMNS, MODEL_COLUMNS

LABEL = "label"
PREDICTION = "predicted_class"


def drift_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The numerical and categorical columns of a feature frame that the report compares."""
    numerical = [c for c in [*IMAGE_COLUMNS, *MODEL_COLUMNS] if c in frame.columns]
    numerical += sorted(c for c in frame.columns if c.startswith("embedding_pc"))
    categorical = [PREDICTION] if PREDICTION in frame.columns else []
    return numerical, categorical


def _has_labels(frame: pd.DataFrame) -> bool:
    return LABEL in frame.columns and PREDICTION in frame.columns and frame[LABEL].notna().all()


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, policy: DriftPolicy | None = None):
    """Run Evidently (DataDriftPreset with per-column tests, plus ClassificationPreset when
    both sides are labelled); return the snapshot."""
    policy = policy or DriftPolicy()
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) < policy.min_images:
            raise ValueError(
                f"the {name} set has {len(frame)} usable images; a drift report needs at "
                f"least {policy.min_images} on each side (score a bigger batch)"
            )
    numerical, categorical = drift_columns(reference)
    missing = sorted(set(numerical + categorical) - set(current.columns))
    if missing:
        raise ValueError(
            f"the current batch lacks the reference's columns {missing}: compute its "
            "features with the same model (fruitops monitor features --model …)"
        )
    columns = numerical + categorical
    labelled = _has_labels(reference) and _has_labels(current)
    metrics: list[Any] = [
        DataDriftPreset(columns=columns, drift_share=policy.drift_share),
    ]
    definition_args: dict[str, Any] = {
        "numerical_columns": numerical,
        "categorical_columns": categorical,
    }
    if labelled:
        columns = [*columns, LABEL]
        definition_args["categorical_columns"] = [*categorical, LABEL]
        definition_args["classification"] = [
            MulticlassClassification(target=LABEL, prediction_labels=PREDICTION)
        ]
        metrics.append(ClassificationPreset())
    definition = DataDefinition(**definition_args)
    report = Report(metrics, include_tests=True)
    # a constant column (all images 64 px wide, say) makes Evidently's correlation step
    # divide by zero, and a class no image of a small batch was predicted as has no
    # precision (the report shows 0); the report handles both, so the warnings are noise
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return report.run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )


def drift_decision(snapshot_dict: dict[str, Any], policy: DriftPolicy | float) -> dict[str, Any]:
    """``{dataset_drift, drift_share, drifted_columns}`` from a snapshot's dict()."""
    if not isinstance(policy, DriftPolicy):
        policy = DriftPolicy(drift_share=policy)
    share, drifted = 0.0, []
    for metric in snapshot_dict.get("metrics", []):
        if metric["config"]["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in snapshot_dict.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and test.get("status") == "FAIL":
            drifted.append(params["column"])
    critical = sorted(set(drifted) & set(policy.critical_columns))
    return {
        "dataset_drift": share >= policy.drift_share or bool(critical),
        "drift_share": share,
        "drifted_columns": sorted(drifted),
        "critical_drifted": critical,
    }


#: How Evidently's standalone HTML opens its data block: the report's JSON, one line a variable
_DATA_BLOCK = "<script>\n    var "


def report_html(snapshot: Any) -> str:
    """The report as a standalone HTML page, its embedded JSON safe against names from data.

    Evidently writes the report's data as raw JSON inside a ``<script>``: a class name such
    as ``apple</script><script>…`` would end that script and run its own. Within the data
    block every ``<``, ``>`` and ``&`` becomes its JSON escape (``\\u003c`` …), which reads
    back as the same string, and no markup can open or close there. (Class names are held to
    `fruitops_data.class_names` anyway; this holds whatever reaches the report.)
    """
    html = snapshot.get_html_str(as_iframe=False)
    start = html.find(_DATA_BLOCK)
    if start < 0:
        raise ValueError("Evidently's HTML has no data block where FruitOps expects one")
    body = start + len("<script>")
    end = html.find("\n</script>", body)  # JSON holds no raw newline: the block's own end
    block = html[body:end].replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return html[:body] + block + html[end:]
