"""The typed records the ``models/`` assets hand on: JSON in the lake, torch- and MLflow-free,
so any layer above may read them (`fruitops_core.assets.record`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    """One architecture trained in an MLflow run and registered (`training_run.train_and_log`);
    also the run's ``candidate.json`` artifact, which a retry of the run reads back."""

    arch: str
    run_id: str
    metrics: dict[str, float] = Field(description="the run's final metrics, as logged")
    history: list[dict[str, Any]] = Field(description="one row of metrics per epoch")
    seconds: float = Field(description="training time")
    images_per_second: float
    precision: str = Field(description="what training computed in: fp32 or bf16")
    model_uri: str = Field(description="models:/NAME/VERSION: the version registered")
    logged_model_uri: str
    name: str
    version: int


class TrainedModels(BaseModel):
    """``models/trained_model``: a candidate per architecture of the run."""

    candidates: list[Candidate]
    classes: list[str]


class ModelScore(BaseModel):
    """One registered version scored on the evaluation split."""

    version: int
    role: Literal["candidate", "champion"]
    arch: str
    accuracy: float
    macro_f1: float


class Evaluation(BaseModel):
    """``models/model_evaluation``: every candidate and the champion on one split of one
    data set, and the best candidate."""

    split: str
    images: int
    classes_judged: int = Field(description="classes with photos in the split: those weighed")
    classes_total: int
    classes_missing: list[str] = Field(description="classes without a photo in the split")
    scores: list[ModelScore]
    best_candidate: ModelScore
    champion: ModelScore | None = Field(description="the champion before this run, if any")


class Champion(BaseModel):
    """``models/champion_model``: the registry's champion once promotion weighed the
    candidates against it."""

    name: str
    version: int
    run_id: str
    model_uri: str = Field(description="models:/NAME/VERSION: the version chosen")
    alias_uri: str = Field(description="models:/NAME@champion: what the alias names now")
    decision: dict[str, Any] = Field(
        default_factory=dict, description="promotion's verdict: scores, margin, reason"
    )


#: the model version's tag with its precisions as the serving package's precision gate
#: decided them, in a line (shown by `fruitops models list`)
GATE_TAG = "precision_gate"
