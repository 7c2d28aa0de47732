"""The model card of a registered version: what it was trained on, how, on what hardware, how
well it does (with how much that could move), where it is weakest, and what it is for.

Written once, when the version is registered (`training_run`), as Markdown: logged to the
MLflow run (``model_card.md``), set as the version's description in the registry, and kept in
the lake (``models/cards/<name>/v<version>.md``); `fruitops models list --card VERSION`
prints it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel

CARD_ARTIFACT = "model_card.md"
WEAKEST = 5  # classes named as the weakest


def card_path(name: str, version: int) -> str:
    """Where the card lives in the lake."""
    return f"models/cards/{name}/v{version}.md"


class SplitScores(BaseModel):
    """One split's scores, with the 95 % bootstrap interval over its photos."""

    photos: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    macro_f1: float
    macro_f1_interval: tuple[float, float]
    top5: float
    ece: float


class CardFacts(BaseModel):
    """Everything the card says, gathered where the version is registered."""

    name: str
    version: int
    arch: str
    run_id: str
    source: str
    manifest_hash: str
    classes: list[str]
    photos: dict[str, int]  # per split
    validation_success: bool
    validation_messages: list[str]
    recipe: dict[str, Any]
    weights: dict[str, str]  # where pretrained weights came from; empty from scratch
    precision: str
    hardware: str
    train_seconds: float
    images_per_second: float
    epochs_run: int
    best_epoch: int
    scores: dict[str, SplitScores]  # val, test
    per_class: list[dict[str, Any]]  # test (else val): class, precision, recall, f1, support


def _interval(low_high: tuple[float, float]) -> str:
    return f"{low_high[0]:.3f}–{low_high[1]:.3f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *["| " + " | ".join(row) + " |" for row in rows],
    ]


def weakest_classes(per_class: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `WEAKEST` lowest-F1 classes; a class answered perfectly is never "weak"."""
    return sorted((r for r in per_class if r["f1"] < 1.0), key=lambda r: r["f1"])[:WEAKEST]


def render_card(facts: CardFacts) -> str:
    """The card as Markdown. Class names come from data: they are written as code spans."""
    split_for_classes = "test" if "test" in facts.scores else "val"
    weakest = weakest_classes(facts.per_class)
    recipe = ", ".join(f"{k}={v}" for k, v in sorted(facts.recipe.items()) if v is not None)
    lines = [
        f"# Model card: {facts.name} v{facts.version} ({facts.arch})",
        "",
        "## Intended use",
        "",
        f"Names which of {len(facts.classes)} kinds of fruit a photo shows, as a product that "
        "asks one photo at a time would (a checkout, a sorting robot, a diet app), or in "
        "batches with `fruitops score`. Input: one RGB photo of one kind of fruit, loose or "
        "on a shop display; the model resizes it to its input size itself.",
        "",
        "## Limits",
        "",
        "- It always answers one of the classes below: it has no 'none of these', so a photo "
        "of anything else (another fruit, a vegetable, no fruit) still gets a fruit name. "
        "Look at the confidence, and watch drift (`fruitops monitor drift`).",
        "- Several kinds in one photo get one answer.",
        "- It learnt from the photos below only: shops, lighting, cameras and packaging unlike "
        "them will do worse than the scores here. The val and test photos come from the same "
        "data set, split by its own folders.",
        f"- Its weakest classes ({split_for_classes}) are listed below: check those answers first.",
        "",
        "## Data",
        "",
        f"- source: `{facts.source}`",
        f"- manifest sha256 (first 16): `{facts.manifest_hash}`",
        "- photos: " + ", ".join(f"{n} {split}" for split, n in facts.photos.items()),
        f"- validation: {'passed' if facts.validation_success else 'FAILED'}"
        + "".join(f"\n  - {m}" for m in facts.validation_messages),
        "- classes: " + ", ".join(f"`{c}`" for c in facts.classes),
        "",
        "## Training",
        "",
        f"- recipe: {recipe}",
        f"- pretrained weights: {_weights(facts.weights)}",
        f"- precision: {facts.precision}; hardware: {facts.hardware}",
        f"- {facts.epochs_run} epochs in {facts.train_seconds / 60:.1f} min "
        f"({facts.images_per_second:.1f} img/s); kept epoch {facts.best_epoch} (best val "
        "macro-F1)",
        f"- MLflow run: `{facts.run_id}`",
        "",
        "## Scores",
        "",
        "The interval is the 95 % bootstrap interval over the split's photos: what another "
        "draw of as many photos could give.",
        "",
        *_table(
            [
                "split",
                "photos",
                "accuracy",
                "95 % interval",
                "macro-F1",
                "95 % interval",
                "top-5",
                "ECE",
            ],  # fmt: skip
            [
                [
                    split,
                    str(s.photos),
                    f"{s.accuracy:.3f}",
                    _interval(s.accuracy_interval),
                    f"{s.macro_f1:.3f}",
                    _interval(s.macro_f1_interval),
                    f"{s.top5:.3f}",
                    f"{s.ece:.3f}",
                ]
                for split, s in facts.scores.items()
            ],
        ),
        "",
        f"## Weakest classes ({split_for_classes})",
        "",
        ", ".join(f"`{r['class']}` (F1 {r['f1']:.2f})" for r in weakest)
        or "none: every class scored F1 1.00",
        "",
        f"## Per class ({split_for_classes})",
        "",
        *_table(
            ["class", "precision", "recall", "F1", "photos"],
            [
                [
                    f"`{r['class']}`",
                    f"{r['precision']:.3f}",
                    f"{r['recall']:.3f}",
                    f"{r['f1']:.3f}",
                    str(int(r["support"])),
                ]
                for r in sorted(facts.per_class, key=lambda r: r["class"])
            ],
        ),
        "",
    ]
    return "\n".join(lines)


def _weights(weights: dict[str, str]) -> str:
    if not weights:
        return "none (trained from scratch)"
    return ", ".join(f"{k.removeprefix('weights_')} {v}" for k, v in weights.items())


def per_class_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """`metrics.per_class_table`'s rows as plain values."""
    return [
        {k: (v if k == "class" else float(v)) for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def publish_card(card: str, name: str, version: int, run: Any, lake: Any) -> str:
    """Put the card where people look: the training's MLflow run (a `TrackedRun`), the
    registered version's description, and the lake. Returns its lake URI."""
    run.log_text(card, CARD_ARTIFACT)
    run.tracking.client.update_model_version(name, str(version), description=card)
    return lake.write_bytes(card_path(name, version), card.encode())


def read_card(tracking: Any, version: int) -> str:
    """The card of ``version`` of the registered model: its run's artifact, else the
    version's description. A version without one was registered before cards existed."""
    from mlflow.exceptions import MlflowException

    name = tracking.registered_model
    try:
        mv = tracking.client.get_model_version(name, str(version))
    except MlflowException:
        raise ValueError(
            f"{name} has no version {version}: `fruitops models list` shows the versions"
        ) from None
    try:
        path = tracking.client.download_artifacts(mv.run_id, CARD_ARTIFACT)
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (MlflowException, OSError):
        pass
    if mv.description:
        return mv.description
    raise ValueError(
        f"{name} v{version} has no model card: it was registered before FruitOps wrote them; "
        "retrain it to get one"
    )
