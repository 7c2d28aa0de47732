"""Architectures by name, and the classifier wrapper that carries its own preprocessing.

The logged model takes float32 RGB in [0, 1], NCHW at the trained image size, and normalises
inside: serving needs nothing but the image size and class names stored with the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fruitops_models.config import ARCHITECTURES, IMAGENET_MEAN, IMAGENET_STD, LITE
from fruitops_models.weights import PretrainedUnavailable, Provenance, downloaded


class SmallCNN(nn.Module):
    """The project's own CNN: four conv blocks and a pooled linear head (~0.4 M params).

    Each block pools right after its convolution (conv → max-pool → BN → ReLU), so the
    memory-bound BatchNorm and ReLU, forward and backward, touch a quarter of the pixels: a
    quarter less time per step on CPU than conv → BN → ReLU → pool, with no loss of accuracy
    on the real photos (benchmarks/quality_real.py). Average pooling would be faster still
    but lost a quarter of the val macro-F1 there.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 192)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.MaxPool2d(2),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def build_backbone(arch: str, num_classes: int) -> nn.Module:
    """A fresh network for ``arch`` with a ``num_classes`` head (random init, works offline)."""
    import torchvision.models as tvm

    if arch == "cnn":
        return SmallCNN(num_classes)
    if arch in ("resnet18", "resnet50"):
        return getattr(tvm, arch)(weights=None, num_classes=num_classes)
    if arch == "efficientnet_b0":
        return tvm.efficientnet_b0(weights=None, num_classes=num_classes)
    if arch in LITE:
        from fruitops_models.efficientnet_lite import efficientnet_lite

        return efficientnet_lite(arch, num_classes, pretrained=False)[0]
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


class FruitClassifier(nn.Module):
    """Normalisation + backbone: the whole model from [0, 1] pixels to class logits.

    ``weights`` says where pretrained weights came from (package, version, sha256), for the
    MLflow run; it is not part of the state dict.
    """

    def __init__(
        self,
        backbone: nn.Module,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weights: dict[str, str] | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.weights = weights or {}

    def normalisation(self) -> dict[str, list[float]]:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def _head_of(arch: str, net: nn.Module) -> tuple[nn.Module, str]:
    if arch in LITE:
        return net, "_fc"
    if arch.startswith("resnet"):
        return net, "fc"
    if arch == "efficientnet_b0":
        return net.classifier, "1"
    return net.head, "2"  # SmallCNN: Flatten, Dropout, Linear


def imagenet_backbone(
    arch: str, num_classes: int, weights_path: str | None
) -> tuple[nn.Module, Provenance]:
    """torchvision's ImageNet network for ``arch`` with a fresh ``num_classes`` head, and
    where its weights came from (``weights_path``, or torchvision's download)."""
    import torchvision
    import torchvision.models as tvm

    if arch == "cnn":
        raise PretrainedUnavailable(
            "cnn is the project's own network and has no ImageNet "
            "weights: train it from scratch (drop --pretrained)"
        )
    net = getattr(tvm, arch)(weights=None)
    default = tvm.get_model_weights(arch).DEFAULT
    if weights_path:
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as err:
            raise PretrainedUnavailable(f"cannot read weights file {weights_path}: {err}") from None
        provenance = downloaded(Path(weights_path), "file", "")
    else:
        try:
            state = default.get_state_dict(progress=False)
        except Exception as err:  # URLError, HTTPError, hash mismatch…
            raise PretrainedUnavailable(
                f"cannot download ImageNet weights for {arch} ({err}); offline, pass "
                f"--weights PATH to a local copy of {default.url.rsplit('/', 1)[-1]}, or train "
                "from scratch without --pretrained"
            ) from None
        name = default.url.rsplit("/", 1)[-1]
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / name  # where torchvision keeps it
        provenance = (
            downloaded(hub_file, "torchvision", torchvision.__version__)
            if hub_file.is_file()
            else Provenance("torchvision", torchvision.__version__, name, "")  # hub moved
        )
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise PretrainedUnavailable(f"weights do not fit {arch}: {err}") from None
    parent, name = _head_of(arch, net)
    old = getattr(parent, name)
    setattr(parent, name, nn.Linear(old.in_features, num_classes))
    return net, provenance


def head_layer(model: FruitClassifier, arch: str) -> nn.Linear:
    """The last layer: the one that is new when fine-tuning."""
    parent, name = _head_of(arch, model.backbone)
    return getattr(parent, name)


def head_parameters(model: FruitClassifier, arch: str) -> list[nn.Parameter]:
    """The last layer's parameters."""
    return list(head_layer(model, arch).parameters())


def _freeze(arch: str, backbone: nn.Module, finetune: str) -> None:
    """Freeze what ``finetune`` keeps as it is: all but the head, Lite's lower part, or nothing."""
    if finetune == "head":
        backbone.requires_grad_(False)
        parent, name = _head_of(arch, backbone)
        getattr(parent, name).requires_grad_(True)
    elif finetune == "top":
        from fruitops_models.efficientnet_lite import lower_part

        for module in lower_part(backbone):
            module.requires_grad_(False)


def build_model(
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    weights_path: str | None = None,
    finetune: str = "full",
) -> FruitClassifier:
    """The whole classifier, its frozen part (``finetune``: head, top or full) frozen.

    efficientnet_lite* take their ImageNet weights from the installed packages; the others'
    come from torchvision (downloaded, or ``weights_path``).
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    if arch in LITE:
        from fruitops_models.efficientnet_lite import MEAN, STD, efficientnet_lite

        backbone, provenance = efficientnet_lite(arch, num_classes, pretrained)
        model = FruitClassifier(backbone, MEAN, STD, provenance.as_params() if provenance else None)
    elif pretrained or weights_path:
        backbone, provenance = imagenet_backbone(arch, num_classes, weights_path)
        model = FruitClassifier(backbone, weights=provenance.as_params())
    else:
        model = FruitClassifier(build_backbone(arch, num_classes))
    _freeze(arch, model.backbone, finetune)
    return model


def for_inference(model: FruitClassifier) -> FruitClassifier:
    """A copy of ``model`` in eval mode that answers the same, faster: efficientnet_lite's
    BatchNorm folded into its convolutions (the others as they are). The model itself, still
    training, is left untouched."""
    import copy

    copied = copy.deepcopy(model).eval()
    if type(copied.backbone).__name__ == "EfficientNetLite":
        from fruitops_models.efficientnet_lite import drop_frozen_prefix, fold_batchnorm

        drop_frozen_prefix(copied.backbone)
        fold_batchnorm(copied.backbone)
    return copied


def keep_frozen_in_eval(model: nn.Module) -> None:
    """Put the BatchNorm layers with frozen weights back in eval mode after ``model.train()``:
    frozen layers keep their ImageNet statistics instead of drifting on small batches."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()
