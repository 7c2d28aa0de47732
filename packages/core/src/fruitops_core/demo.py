"""The demo summary: where a run of the whole pipeline left its results.

Read back from the materialization records and the MLflow registry, so it describes what is
really stored, whether the pipeline ran through Airflow or in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fruitops_core.asset_keys import (
    BATCH_PREDICTIONS,
    DATA_VALIDATION,
    DRIFT_REPORT,
    RAW_IMAGES,
    TRAINED_MODEL,
)
from fruitops_core.lake import Lake
from fruitops_core.records import read_record
from fruitops_core.registry import AssetGraph, AssetGraphError
from fruitops_core.tracking import Tracking
from fruitops_core.workspace import Workspace

#: The real photos shipped with the repository (8 classes, 208 photos, MIT; see its SOURCE.md).
DEMO_SOURCE = str(Path(__file__).resolve().parents[4] / "samples" / "fruits-real-mini")
#: The demo's own values, passed explicitly (the assets' defaults are the full recipes):
#: `fruitops demo` materializes with them, `make demo` gives them to the DAG. The pretrained
#: EfficientNet-Lite0 is fine-tuned beside the from-scratch cnn, for a few epochs each.
DEMO_CONFIG: dict[str, dict[str, Any]] = {
    RAW_IMAGES: {"source": DEMO_SOURCE},
    TRAINED_MODEL: {"architectures": ["efficientnet_lite0", "cnn"], "epochs": 8},
}


def _record_field(graph: AssetGraph, lake: Lake, key: str, field: str) -> str | None:
    try:
        spec = graph[key]
    except AssetGraphError:
        return None
    record = read_record(lake, spec)
    if record is None:
        return None
    return record.metadata.get(field)


def training_runs(tracking: Tracking, limit: int = 20) -> list[dict[str, Any]]:
    runs = tracking.search_runs("tags.fruitops_kind = 'training'", max_results=limit)
    return [
        {
            "run_id": run.info.run_id,
            "arch": run.data.params.get("arch"),
            # the chosen model's scores as logged (rounded once, where printed); per-epoch
            # curves (epoch/…) stay in MLflow
            "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if "/" not in k},
        }
        for run in runs
    ]


def demo_summary(workspace: Workspace) -> dict[str, Any]:
    settings, graph, lake, tracking = workspace
    scored_in = [_record_field(graph, lake, BATCH_PREDICTIONS, f) for f in ("backend", "precision")]
    return {
        "runs": training_runs(tracking),
        "champion": tracking.champion_summary(),
        "predictions_uri": _record_field(graph, lake, BATCH_PREDICTIONS, "predictions_uri"),
        # the precision the serving package's gate chose for the champion (int8, bf16, fp32)
        "scored_in": " ".join(scored_in) if all(scored_in) else None,
        "drift_report_uri": _record_field(graph, lake, DRIFT_REPORT, "report_html_uri"),
        "validation_report_uri": _record_field(graph, lake, DATA_VALIDATION, "report_uri"),
        "validation_docs_uri": _record_field(graph, lake, DATA_VALIDATION, "docs_uri"),
        "lake_uri": lake.root_uri,
        "mlflow_tracking_uri": settings.tracking_uri,
    }
