"""The validation's report: its result and Data Docs stored in the lake, and logged to MLflow.

`fruitops_data.validation` runs the suites; this module keeps what they said where people
and later runs look (docs/design.md §4): ``result.json`` and the Data Docs site in the
asset's lake folder, and an MLflow run of kind ``validation`` (through the `Tracking`
resource) with the same result, the site and the manifest hash as a tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fruitops_core.lake import Lake
from fruitops_core.tables import ParquetTable
from fruitops_data.config import ValidationConfig
from fruitops_data.records import ValidationResult

if TYPE_CHECKING:
    from fruitops_core.tracking import Tracking


def validate_and_report(
    manifest: ParquetTable,
    config: ValidationConfig,
    *,
    lake: Lake,
    tracking: Tracking,
    asset_dir: str,
    run_id: str,
    manifest_hash: str,
) -> ValidationResult:
    """Validate ``manifest``, store and log the outcome; return the ``data/data_validation``
    value (success, failed and warned expectations, where the report and Data Docs are)."""
    from fruitops_data.validation import validate

    docs_prefix = f"{asset_dir}/data_docs"
    tracking.client  # noqa: B018 - an MLflow store that does not answer fails before the suites
    with validate(manifest, config) as outcome:
        summary = outcome.summary
        report_uri = lake.write_json(f"{asset_dir}/result.json", summary)
        lake.delete_prefix(docs_prefix)
        for path in sorted(outcome.docs_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(outcome.docs_dir).as_posix()
                lake.put_file(path, f"{docs_prefix}/{relative}")
        with tracking.start_run(
            kind="validation",
            run_name=f"validation-{run_id}",
            tags={
                "fruitops_asset_run_id": run_id,
                "manifest_hash": manifest_hash,
                "validation_success": str(summary["success"]),
            },
        ) as run:
            run.log_metrics(
                {
                    "validation_success": float(summary["success"]),
                    "failed_expectations": len(summary["failed_expectations"]),
                    "warnings": len(summary["warnings"]),
                }
            )
            run.log_dict(summary, "validation/result.json")
            run.log_artifacts(outcome.docs_dir, "validation/data_docs")
    return ValidationResult(
        success=summary["success"],
        failed_expectations=summary["failed_expectations"],
        warnings=summary["warnings"],
        messages=summary["messages"],
        report_uri=report_uri,
        docs_uri=lake.uri(f"{docs_prefix}/index.html"),
        manifest_hash=manifest_hash,
    )
