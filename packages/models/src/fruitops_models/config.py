"""Typed configs of the models assets (kept free of torch so the asset graph loads fast)."""

from __future__ import annotations

from pydantic import BaseModel, Field

ARCHITECTURES = ("cnn", "resnet18", "resnet50", "efficientnet_b0")


class TrainConfig(BaseModel):
    arch: str = Field("cnn", description=f"one of {', '.join(ARCHITECTURES)}")
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 0


class PromotionConfig(BaseModel):
    metric: str = Field("val_macro_f1", description="run metric the candidate must beat")
    margin: float = Field(0.0, ge=0, description="how much better than the champion")
