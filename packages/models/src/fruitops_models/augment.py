"""Batch transforms on tensors: the training-time augmentation, mixup, and the plain resize.

Augmentation runs on whole uint8 batches already gathered from the cache (no per-image PIL
work, no loader processes), so it has to be cheap next to a small model's step: see
`augment`. `resize` is what evaluation and serving do instead, so both see the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fruitops_data.cache import CachedSplit
from fruitops_models.config import SCRATCH

GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights; they sum to 1


def _resampling(start: torch.Tensor, length: torch.Tensor, size: int, out: int) -> torch.Tensor:
    """B×out×size bilinear weights that stretch ``[start, start + length)`` over ``out`` pixels.

    Row ``i`` of image ``b`` holds the two weights of output pixel ``i`` (align_corners=False,
    edges clamped), so ``matrix @ axis`` crops and resizes that axis in one matmul.
    """
    centres = (torch.arange(out, dtype=torch.float32) + 0.5) / out
    source = (start[:, None] + centres[None] * length[:, None] - 0.5).clamp(0, size - 1)
    low = source.floor().long().clamp(max=max(size - 2, 0))
    frac = source - low
    weights = torch.zeros(len(start), out, size)
    weights.scatter_add_(2, low[..., None], (1 - frac)[..., None])
    weights.scatter_add_(2, (low + 1).clamp(max=size - 1)[..., None], frac[..., None])
    return weights


def augment(
    images: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    size: int | None = None,
    min_area: float = SCRATCH.min_crop_area,
) -> torch.Tensor:
    """Random resized crop, horizontal flip and colour jitter: uint8 B×3×H×W → float [0, 1].

    The crops are resized to ``size`` × ``size`` (default: the input's side).

    The output is channels_last, as the model wants it. Crop, resize and flip are one bilinear
    resampling per axis, i.e. two batched matmuls with per-image interpolation matrices;
    brightness, contrast and saturation together are one 3×3 colour matrix per image. On CPU
    this is ~3× faster than ``grid_sample`` followed by elementwise jitter, which counts when a
    small model's step takes a few hundred ms. ``dtype`` is the matmuls' precision (bf16 where
    the model trains in bf16: its first layer rounds the pixels to bf16 anyway).
    """
    b, channels, h, w = images.shape
    oh = ow = size or h
    area = torch.empty(b).uniform_(min_area, 1.0)
    ratio = torch.exp(torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3)))
    crop_w = torch.sqrt(area * ratio).clamp(max=1.0)
    crop_h = torch.sqrt(area / ratio).clamp(max=1.0)
    left = torch.rand(b) * (1 - crop_w)
    top = torch.rand(b) * (1 - crop_h)
    flip = torch.rand(b) < 0.5
    brightness, contrast, saturation = torch.empty(3, b).uniform_(0.75, 1.25)

    columns = _resampling(left * w, crop_w * w, w, ow)
    columns[flip] = columns[flip].flip(1)  # output column j reads what column ow-1-j would
    rows = _resampling(top * h, crop_h * h, h, oh)
    pixels = images.to(dtype).view(b, channels * h, w)
    pixels = torch.bmm(pixels, columns.transpose(1, 2).to(images.device, dtype))
    pixels = torch.matmul(rows.to(images.device, dtype)[:, None], pixels.view(b, channels, h, ow))
    h, w = oh, ow
    pixels = pixels.float()

    # brightness β, then contrast κ around the image mean m, then saturation σ around the
    # pixel's grey level: all linear, so together x ↦ κβ·M·x + (1-κ)β·m, where
    # M = σI + (1-σ)·1·greyᵀ (and M·1 = 1 because the grey weights sum to 1)
    mean = pixels.mean(dim=(1, 2, 3)) / 255.0
    grey = torch.tensor(GREY).expand(3, 3)
    mix = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * grey
    colour = (contrast * brightness / 255.0)[:, None, None] * mix  # B×3×3, row = out channel
    offset = ((1 - contrast) * brightness).to(images.device) * mean
    out = torch.empty(b, h * w, channels, device=images.device)  # NHWC memory: channels_last
    torch.baddbmm(
        offset[:, None, None].expand(b, 1, channels),
        pixels.view(b, channels, h * w).transpose(1, 2),
        colour.transpose(1, 2).to(images.device),
        out=out,
    )
    return out.view(b, h, w, channels).permute(0, 3, 1, 2).clamp_(0.0, 1.0)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Float images to ``size`` × ``size`` (antialiased when shrinking), as serving resizes."""
    if size is None or x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def load_batch(
    split: CachedSplit,
    idx: np.ndarray,
    device: torch.device,
    channels_last: bool,
    augment_dtype: torch.dtype | None = None,
    size: int | None = None,
    min_area: float = SCRATCH.min_crop_area,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images at ``idx`` as float [0, 1] on ``device`` at ``size`` (default: the cache's),
    augmented when ``augment_dtype`` is set."""
    pixels = torch.from_numpy(split.take(idx)).to(device)
    if augment_dtype is not None:
        x = augment(pixels, augment_dtype, size, min_area)
        if not channels_last:
            x = x.contiguous()
    else:
        x = resize(pixels.float().div_(255.0), size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(split.labels[idx]).to(device)


@dataclass
class Mixed:
    """A batch after mixup: each image blended with another of the batch by ``share``."""

    images: torch.Tensor
    share: float = 1.0
    partner: torch.Tensor | None = None  # the other image's index, None when not mixed

    def loss(self, loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.partner is None:
            return loss_fn(logits, y)
        return self.share * loss_fn(logits, y) + (1 - self.share) * loss_fn(logits, y[self.partner])


def mix(images: torch.Tensor, alpha: float) -> Mixed:
    """Mixup (Zhang et al. 2018) with a Beta(alpha, alpha) share; alpha 0 leaves the batch."""
    if alpha <= 0:
        return Mixed(images)
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(len(images), device=images.device)
    return Mixed(share * images + (1 - share) * images[partner], share, partner)
