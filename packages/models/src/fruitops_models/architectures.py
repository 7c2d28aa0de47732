"""Architectures by name, and the classifier wrapper that carries its own preprocessing.

The logged model takes float32 RGB in [0, 1], NCHW at the trained image size, and normalises
inside: serving needs nothing but the image size and class names stored with the model.
"""

from __future__ import annotations

import torch
from torch import nn

from fruitops_models.config import ARCHITECTURES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """The project's own CNN: four conv blocks and a pooled linear head (~0.4 M params)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 192)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
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
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


class FruitClassifier(nn.Module):
    """Normalisation + backbone: the whole model from [0, 1] pixels to class logits."""

    def __init__(self, backbone: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def build_model(arch: str, num_classes: int) -> FruitClassifier:
    return FruitClassifier(build_backbone(arch, num_classes))
