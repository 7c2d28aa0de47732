"""Great Expectations (GX Core 1.x) validation of the manifest.

Two batches are validated: the manifest itself, with derived columns that make each rule a
per-row expectation (leakage across splits, duplicates within a split, labels unknown to
train), and a per-class count table (minimum count, imbalance ratio). Each expectation is
``critical`` (fails the gate) or ``warning`` (reported only).

The manifest is streamed into a SQLite file and GX validates it through its SQL data source:
every expectation becomes a query, so memory stays flat however many files there are.
Storing and logging the outcome is `fruitops_data.validation_report`'s (docs/design.md §4).
"""

from __future__ import annotations

import html
import logging
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fruitops_core.tables import ParquetTable
from fruitops_data.config import ValidationConfig
from fruitops_data.manifest import MANIFEST_COLUMNS

KNOWN_MODES = [
    "1",
    "L",
    "LA",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "CMYK",
    "YCbCr",
    "I",
    "I;16",
    "I;16B",
    "I;16L",
    "F",
    "LAB",
    "HSV",
]
KNOWN_FORMATS = ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO"]


@dataclass(frozen=True)
class ValidationOutcome:
    summary: dict[str, Any]  # success, failed_expectations, warnings, statistics, results
    docs_dir: Path  # Data Docs site (index.html and pages), inside a temporary folder


_SQL_TYPES = {"string": "TEXT", "int64": "INTEGER", "Int64": "INTEGER", "bool": "BOOLEAN"}

#: derived columns that make each cross-row rule a per-row expectation; unreadable files
#: are the quarantine's business, so they count once
_ENRICH = """
CREATE TABLE manifest AS
SELECT f.*,
       CASE WHEN f.readable THEN COALESCE(s.n, 1) ELSE 1 END AS sha_split_count,
       CASE WHEN f.readable THEN COALESCE(d.n, 1) ELSE 1 END AS dup_in_split,
       (f.label IS NULL OR f.label IN (
           SELECT label FROM files WHERE split = 'train' AND label IS NOT NULL
       )) AS label_known_in_train
FROM files f
LEFT JOIN (SELECT sha256, COUNT(DISTINCT split) AS n FROM files WHERE readable
           GROUP BY sha256) s ON s.sha256 = f.sha256
LEFT JOIN (SELECT split, sha256, COUNT(*) AS n FROM files WHERE readable
           GROUP BY split, sha256) d ON d.split = f.split AND d.sha256 = f.sha256;
CREATE TABLE class_counts AS
SELECT t.label, t.train_count, COALESCE(v.n, 0) AS val_count, COALESCE(e.n, 0) AS test_count,
       0.0 AS ratio_to_smallest
FROM (SELECT label, COUNT(*) AS train_count FROM files
      WHERE readable AND label IS NOT NULL AND split = 'train' GROUP BY label) t
LEFT JOIN (SELECT label, COUNT(*) AS n FROM files WHERE readable AND split = 'val'
           GROUP BY label) v ON v.label = t.label
LEFT JOIN (SELECT label, COUNT(*) AS n FROM files WHERE readable AND split = 'test'
           GROUP BY label) e ON e.label = t.label
ORDER BY t.label;
UPDATE class_counts SET ratio_to_smallest =
    train_count * 1.0 / MAX((SELECT MIN(train_count) FROM class_counts), 1);
"""
#: per train class, its name where an evaluation split falls short (else NULL): the
#: expectations on these columns list the classes themselves as their unexpected values
_COVERAGE = """
CREATE TABLE class_coverage AS
SELECT label,
       CASE WHEN val_count = 0 THEN label END AS missing_from_val,
       CASE WHEN test_count = 0 THEN label END AS missing_from_test,
       CASE WHEN val_count > 0 AND val_count < {min_val} THEN label END AS few_in_val
FROM class_counts ORDER BY label;
"""


def load_sqlite(frames: Iterable[pd.DataFrame], path: Path, min_val_per_class: int = 1) -> Path:
    """Stream manifest frames into a SQLite file with the derived ``manifest``,
    ``class_counts`` and ``class_coverage`` tables (a class missing from train is
    eval_labels_subset_of_train's)."""
    columns = list(MANIFEST_COLUMNS)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE files ("
            + ", ".join(f'"{c}" {_SQL_TYPES[t]}' for c, t in MANIFEST_COLUMNS.items())
            + ")"
        )
        insert = f"INSERT INTO files VALUES ({', '.join('?' * len(columns))})"
        text = [c for c, kind in MANIFEST_COLUMNS.items() if kind == "string"]
        for frame in frames:
            rows = frame[columns].astype(object).where(frame[columns].notna(), None)
            # Data Docs show values as they are, inside its HTML: a file named
            # "x<img src=x onerror=…>.jpg" would run there. Escaped here, the docs show it
            # as text; escaping is one-to-one, so every expectation judges the same
            for column in text:
                rows[column] = rows[column].map(lambda v: html.escape(v) if v else v)
            db.executemany(insert, rows.itertuples(index=False, name=None))
        db.executescript(_ENRICH)
        db.executescript(_COVERAGE.format(min_val=int(min_val_per_class)))
    return path


def _expectations(config: ValidationConfig) -> dict[str, list[Any]]:
    import great_expectations as gx

    e = gx.expectations

    def named(expectation, name: str, severity: str):
        expectation.meta = {"name": name}
        expectation.severity = severity
        return expectation

    manifest = [
        named(
            e.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=False),
            "schema",
            "critical",
        ),
        named(e.ExpectColumnValuesToBeUnique(column="key"), "unique_keys", "critical"),
        named(
            e.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "val", "test"]),
            "known_splits",
            "critical",
        ),
        # the threshold that stops a run is the manifest's blocking check; here every
        # unreadable (quarantined) file is reported
        named(
            e.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
            "all_files_readable",
            "warning",
        ),
        named(
            e.ExpectColumnValuesToBeBetween(
                column="width", min_value=config.min_side, max_value=config.max_side
            ),
            "width_range",
            "critical",
        ),
        named(
            e.ExpectColumnValuesToBeBetween(
                column="height", min_value=config.min_side, max_value=config.max_side
            ),
            "height_range",
            "critical",
        ),
        named(
            e.ExpectColumnValuesToBeInSet(column="mode", value_set=KNOWN_MODES),
            "known_modes",
            "warning",
        ),
        named(
            e.ExpectColumnValuesToBeInSet(column="format", value_set=KNOWN_FORMATS),
            "known_formats",
            "warning",
        ),
        named(
            e.ExpectColumnValuesToBeBetween(column="sha_split_count", min_value=1, max_value=1),
            "no_leakage_across_splits",
            "critical",
        ),
        named(
            e.ExpectColumnValuesToBeBetween(column="dup_in_split", min_value=1, max_value=1),
            "no_duplicates_within_split",
            "warning",
        ),
        named(
            e.ExpectColumnValuesToBeInSet(column="label_known_in_train", value_set=[True]),
            "eval_labels_subset_of_train",
            "critical",
        ),
    ]
    counts = [
        named(
            e.ExpectColumnValuesToBeBetween(
                column="train_count", min_value=config.min_train_per_class
            ),
            "min_train_per_class",
            "critical",
        ),
        named(
            e.ExpectColumnValuesToBeBetween(
                column="ratio_to_smallest", max_value=config.max_imbalance_ratio
            ),
            "class_imbalance_ratio",
            "warning",
        ),
    ]
    # the classes an evaluation split cannot judge: early stopping and promotion look at val
    coverage = [
        named(e.ExpectColumnValuesToBeNull(column=column), name, "warning")
        for column, name in (
            ("missing_from_val", "val_has_every_train_class"),
            ("missing_from_test", "test_has_every_train_class"),
            ("few_in_val", "min_val_per_class"),
        )
    ]
    return {"manifest": manifest, "class_counts": counts, "class_coverage": coverage}


def _unexpected(result: Any) -> list[Any]:
    values = result.result.get("partial_unexpected_list") or []
    return [v if isinstance(v, (str, int, float, bool)) else str(v) for v in values[:10]]


def _every_unexpected(result: Any) -> list[str]:
    return sorted(str(v) for v in result.result.get("unexpected_list") or [])


def _train_classes(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT COUNT(*) FROM class_counts").fetchone()[0])


#: what a failed coverage expectation means, as the warning says it
COVERAGE_MESSAGES = {
    "val_has_every_train_class": "val has no photo of {n} of the {total} train classes "
    "({names}): early stopping and promotion choose the model without them",
    "test_has_every_train_class": "test has no photo of {n} of the {total} train classes "
    "({names}): the test scores say nothing of them",
    "min_val_per_class": "{n} of the {total} classes have fewer than {min_val} val photos "
    "({names}): one photo moves their val F1 by a large step",
}


def _coverage_messages(
    results: list[dict[str, Any]], total: int, config: ValidationConfig
) -> list[str]:
    """One sentence per failed coverage expectation, naming the classes."""
    messages = []
    for r in results:
        if r["name"] in COVERAGE_MESSAGES and not r["success"]:
            names = r.get("classes") or r["unexpected_examples"]
            messages.append(
                COVERAGE_MESSAGES[r["name"]].format(
                    n=len(names),
                    total=total,
                    names=", ".join(names),
                    min_val=config.min_val_per_class,
                )
            )
    return messages


@contextmanager
def validate(
    manifest: pd.DataFrame | ParquetTable, config: ValidationConfig
) -> Iterator[ValidationOutcome]:
    """Run the suites; Data Docs are built in a temporary folder, there while the block runs
    for the caller to store, and removed with GX's project and the SQLite copy after it."""
    if len(manifest) == 0:
        raise ValueError("the manifest is empty: there is nothing to validate")
    with tempfile.TemporaryDirectory(prefix="fruitops-gx-") as tmp:
        yield _validate(manifest, config, Path(tmp))


def _validate(
    manifest: pd.DataFrame | ParquetTable, config: ValidationConfig, root: Path
) -> ValidationOutcome:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    frames = manifest.batches() if isinstance(manifest, ParquetTable) else [manifest]
    database = load_sqlite(frames, root / "manifest.sqlite", config.min_val_per_class)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    # GX draws a "Calculating Metrics" bar per expectation otherwise: hundreds per run
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_sqlite("fruitops", connection_string=f"sqlite:///{database}")
    results: list[dict[str, Any]] = []
    statistics: dict[str, Any] = {}
    for name, expectations in _expectations(config).items():
        batch = source.add_table_asset(name, table_name=name).add_batch_definition_whole_table(name)
        suite = context.suites.add(gx.ExpectationSuite(name=f"fruitops_{name}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"fruitops_{name}", data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"fruitops_{name}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                # the coverage table is one row per class: its failures list every class
                result_format="COMPLETE" if name == "class_coverage" else "SUMMARY",
            )
        )
        run = checkpoint.run()
        for suite_result in run.run_results.values():
            statistics[name] = suite_result.statistics
            for r in suite_result.results:
                config_ = r.expectation_config
                results.append(
                    {
                        "name": config_.meta.get("name", config_.type),
                        "expectation": config_.type,
                        "column": config_.kwargs.get("column"),
                        "severity": str(getattr(config_.severity, "value", config_.severity)),
                        "success": bool(r.success),
                        "unexpected_count": r.result.get("unexpected_count"),
                        "unexpected_examples": _unexpected(r),
                        **({"classes": _every_unexpected(r)} if name == "class_coverage" else {}),
                    }
                )
    failed = [r["name"] for r in results if not r["success"] and r["severity"] == "critical"]
    warnings = [r["name"] for r in results if not r["success"] and r["severity"] != "critical"]
    summary = {
        "success": not failed,
        "failed_expectations": failed,
        "warnings": warnings,
        "messages": _coverage_messages(results, _train_classes(database), config),
        "statistics": statistics,
        "results": results,
    }
    docs = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    return ValidationOutcome(summary, docs)
