"""Typed configs of the models assets (kept free of torch so the asset graph loads fast)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

ARCHITECTURES = ("cnn", "resnet18", "resnet50", "efficientnet_b0")


class TrainConfig(BaseModel):
    """How one architecture is trained. Every field is logged to MLflow as a param."""

    arch: str = Field("cnn", description=f"one of {', '.join(ARCHITECTURES)}")
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(3e-3, gt=0, description="peak learning rate after warm-up")
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of steps warming up")
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    class_weights: bool = Field(True, description="weigh the loss against class imbalance")
    patience: int = Field(5, ge=1, description="epochs without val macro-F1 gain before stop")
    augment: bool = True
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on CPUs with bf16 and on CUDA, else fp32"
    )
    channels_last: bool = True
    compile: bool = Field(False, description="torch.compile the model (slow to start)")
    pretrained: bool = Field(False, description="start from torchvision's ImageNet weights")
    weights: str | None = Field(None, description="local ImageNet weights file for pretrained")
    finetune: Literal["full", "head"] = Field("full", description="train everything or the head")
    seed: int = 0

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {value!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        return value


class CandidatesConfig(TrainConfig):
    """The models/trained_model asset: one training run per listed architecture."""

    architectures: list[str] = Field(default_factory=lambda: ["cnn"], min_length=1)

    @field_validator("architectures")
    @classmethod
    def _known_archs(cls, value: list[str]) -> list[str]:
        for arch in value:
            cls._known_arch(arch)
        return value


class EvaluationConfig(BaseModel):
    split: Literal["val", "test"] = Field("val", description="split both models are scored on")


class PromotionConfig(BaseModel):
    margin: float = Field(0.0, ge=0, description="macro-F1 the candidate must gain over champion")
