"""The typed records of the precision gate: what ``serving/precision_gate`` hands scoring.

Torch- and OpenVINO-free, stored as plain JSON in the lake (`fruitops_core.assets.record`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PrecisionCheck(BaseModel):
    """One faster precision's answers against fp32's on the held-out photos
    (`fruitops_serving.precision.compare`)."""

    images: int
    agreement: float = Field(description="share of photos that kept fp32's answer")
    passed: bool
    refused: str | None = Field(None, description="every reason it failed, when it did")
    fp32_accuracy: float | None = None
    accuracy: float | None = None
    accuracy_drop: float | None = None
    only_fp32_right: int | None = Field(None, description="photos only fp32 got right")
    only_faster_right: int | None = Field(None, description="photos only this one got right")
    mcnemar_p: float | None = Field(None, description="McNemar's exact two-sided p-value")
    images_per_second: float | None = Field(None, description="measured where it passed")


class Verdict(BaseModel):
    """The precision one back end serves a model version in, and why."""

    backend: str | None = None
    precision: str = "fp32"
    passed: bool = Field(False, description="a precision faster than fp32 serves")
    reason: str | None = Field(None, description="why fp32, where it serves")
    images: int | None = Field(None, description="held-out photos compared")
    fp32_images_per_second: float | None = None
    precisions: dict[str, PrecisionCheck] = Field(default_factory=dict)

    def shown(self) -> dict[str, Any]:
        """As commands and scoring results show it: the fields that say something."""
        empty = set() if self.precisions else {"precisions"}
        return self.model_dump(mode="json", exclude_none=True, exclude=empty)


class PrecisionGate(BaseModel):
    """``serving/precision_gate``: a verdict per back end for one model version on one kind
    of CPU, what they were made of (`gate.gate_inputs`), and the int8 model checked."""

    backends: dict[str, Verdict] = Field(default_factory=dict)
    reason: str | None = Field(None, description="why nothing was compared, where nothing was")
    model_uri: str | None = None
    run_id: str | None = None
    model_version: int | None = None
    held_out_from: dict[str, Any] | None = None
    cpu: dict[str, Any] | None = None
    rule: dict[str, Any] | None = None
    checked: list[str] = Field(default_factory=list)
    int8_ir: str | None = Field(None, description="the lake key of the int8 model's .xml")


class ScoredBatch(BaseModel):
    """``serving/batch_predictions``: where a batch's predictions are and the model version
    that made them, with what scoring counted. A table handed to `fruitops monitor drift`
    is one too, where only the first three are known."""

    predictions_uri: str
    model_uri: str
    model_version: int
    images: int = 0
    scored: int = 0
    quarantined: list[dict[str, Any]] = Field(
        default_factory=list, description="files that could not be scored, each with why"
    )
    ignored: list[dict[str, Any]] = Field(
        default_factory=list, description="files left out of the batch, each with why"
    )
    precision: str | None = None
    backend: str | None = None
    seconds: float = Field(0.0, description="the scoring itself")
    images_per_second: float = 0.0
    quarantine_uri: str | None = Field(None, description="the quarantine list in the lake")
    gate: dict[str, Any] = Field(
        default_factory=dict, description="the precision gate's verdict, as `Verdict.shown`"
    )
