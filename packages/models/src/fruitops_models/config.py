"""Typed configs of the models assets (kept free of torch so the asset graph loads fast).

Their defaults are the recipe benchmarked on the real photos (`benchmarks/quality_real.py`);
the demo passes its own small values. `fruitops train` and the training DAG's Params are
generated from these fields.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

Arch = Literal["cnn", "resnet18", "resnet50", "efficientnet_b0"]
ARCHITECTURES: tuple[str, ...] = get_args(Arch)


class TrainingRecipe(BaseModel):
    """How a model is trained, whatever its architecture. Every field is an MLflow param."""

    epochs: int = Field(40, ge=1, description="most epochs; early stopping usually ends sooner")
    batch_size: int = Field(64, ge=2, description="images per training step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate after warm-up")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of steps warming up")
    label_smoothing: float = Field(0.05, ge=0, lt=1, description="label smoothing of the loss")
    class_weights: bool = Field(True, description="weigh the loss against class imbalance")
    patience: int = Field(5, ge=1, description="epochs without val macro-F1 gain before stop")
    augment: bool = Field(True, description="random resized crop, flip and colour jitter")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on CPUs with bf16 and on CUDA, else fp32"
    )
    channels_last: bool = Field(True, description="channels_last memory layout")
    compile: bool = Field(False, description="torch.compile the model (slow to start)")
    pretrained: bool = Field(False, description="start from torchvision's ImageNet weights")
    weights: str | None = Field(None, description="local ImageNet weights file for --pretrained")
    finetune: Literal["full", "head"] = Field("full", description="train everything or the head")
    seed: int = Field(0, description="seed of weights, data order and augmentation")


class TrainConfig(TrainingRecipe):
    """One architecture trained with the recipe."""

    arch: Arch = Field("cnn", description="the architecture")


class CandidatesConfig(TrainingRecipe):
    """The models/trained_model asset: one training run per listed architecture."""

    architectures: list[Arch] = Field(
        default_factory=lambda: ["cnn"],
        min_length=1,
        description="one candidate is trained per architecture; the best may be promoted",
    )


class EvaluationConfig(BaseModel):
    split: Literal["val", "test"] = Field("val", description="split all models are scored on")


class PromotionConfig(BaseModel):
    margin: float = Field(0.0, ge=0, description="macro-F1 the candidate must gain over champion")
