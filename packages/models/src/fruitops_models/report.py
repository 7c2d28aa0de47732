"""The training report: every candidate of a run in one table, their curves, the winner and why.

Written as Markdown (for the repository browser) and self-contained HTML (the curves inline),
stored in the lake beside the asset and logged to MLflow.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from fruitops_core.assets import AssetContext
from fruitops_models import plots
from fruitops_models.records import Champion, Evaluation, TrainedModels

COLUMNS = (
    "arch",
    "version",
    "val_accuracy",
    "val_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "test_ece",
    "best_epoch",
    "images_per_second",
)


def _rows(trained: TrainedModels, evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for c in trained.candidates:
        row = {
            "arch": c.arch,
            "version": c.version,
            "images_per_second": c.images_per_second,
            **{k: c.metrics.get(k) for k in COLUMNS if k in c.metrics},
        }
        row["eval"] = next((s.macro_f1 for s in evaluation.scores if s.version == c.version), None)
        rows.append(row)
    # the other models weighed: the champion, candidates of earlier `train` commands
    for score in evaluation.scores:
        if score.version not in {r["version"] for r in rows}:
            arch = f"{score.arch} (champion)" if score.role == "champion" else score.arch
            rows.append({"arch": arch, "version": score.version, "eval": score.macro_f1})
    return rows


def judged_on(evaluation: Evaluation) -> str:
    """On how many photos and classes the models were weighed, naming the classes left out."""
    split, total, judged = evaluation.split, evaluation.classes_total, evaluation.classes_judged
    line = f"chosen on {split}: {evaluation.images} photos of {judged} of the {total} classes"
    missing = evaluation.classes_missing
    if missing:
        line += f" (no {split} photo of {', '.join(missing)}: those classes were not weighed)"
    return line


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and value > 1 else f"{value:.3f}"
    return "" if value is None else str(value)


def write_report(
    ctx: AssetContext, trained: TrainedModels, evaluation: Evaluation, champion: Champion
) -> dict[str, Any]:
    rows = _rows(trained, evaluation)
    decision = champion.decision
    split = evaluation.split
    headers = [*COLUMNS, f"{split} macro-F1 (evaluation)"]
    table = [[_fmt(r.get(c)) for c in COLUMNS] + [_fmt(r["eval"])] for r in rows]
    winner, before = evaluation.best_candidate, evaluation.champion
    champ_line = (
        f"champion before: v{before.version} ({before.arch}), {split} macro-F1 "
        f"{before.macro_f1:.3f}"
        if before
        else "no champion before this run"
    )
    summary = [
        f"best candidate: {winner.arch} v{winner.version}, {split} macro-F1 {winner.macro_f1:.3f}",
        judged_on(evaluation),
        champ_line,
        f"decision: {'promoted' if decision['promoted'] else 'kept out'} — {decision['reason']}",
        f"champion now: v{champion.version}",
    ]
    figure = plots.candidates_curves(
        {f"{c.arch} v{c.version}": c.history for c in trained.candidates}
    )
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    curves_uri = ctx.lake.write_bytes(f"{ctx.asset_dir}/curves.png", png.getvalue())

    markdown = "\n".join(
        [
            f"# FruitOps training report — run {ctx.run_id}",
            "",
            *[f"- {line}" for line in summary],
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
            *["| " + " | ".join(row) + " |" for row in table],
            "",
            "![validation curves](curves.png)",
            "",
        ]
    )
    page = "".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>FruitOps training report"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>",
            f"<h1>FruitOps training report — run {html.escape(ctx.run_id)}</h1><ul>",
            *[f"<li>{html.escape(line)}</li>" for line in summary],
            "</ul><table><tr>",
            *[f"<th>{html.escape(h)}</th>" for h in headers],
            "</tr>",
            *[
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                for row in table
            ],
            "</table><h2>Validation curves</h2><img alt='curves' src='data:image/png;base64,",
            base64.b64encode(png.getvalue()).decode(),
            "'></body></html>",
        ]
    )
    md_uri = ctx.lake.write_bytes(f"{ctx.asset_dir}/report.md", markdown.encode())
    html_uri = ctx.lake.write_bytes(f"{ctx.asset_dir}/report.html", page.encode())
    with ctx.tracking.start_run(
        kind="report",
        run_name=f"training-report-{ctx.run_id}",
        tags={"fruitops_asset_run_id": ctx.run_id},
    ) as run:
        run.log_text(markdown, "report/report.md")
        run.log_text(page, "report/report.html")
        run.log_figure(figure, "report/curves.png")
    return {
        "report_md_uri": md_uri,
        "report_html_uri": html_uri,
        "curves_uri": curves_uri,
        "winner_version": winner.version,
        "promoted": decision["promoted"],
    }
