"""The training loop itself, on small in-memory caches: learning, resuming, DDP, bad config."""

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fruitops_data.cache import CachedSplit
from fruitops_models.architectures import build_model
from fruitops_models.augment import _resampling, augment
from fruitops_models.config import ARCHITECTURES, TrainConfig
from fruitops_models.train import train
from fruitops_models.weights import PretrainedUnavailable

CLASSES = ["apple", "banana"]


def tiny_split(n: int, size: int = 32, seed: int = 0) -> CachedSplit:
    """Class 0 dark-red images, class 1 bright-yellow ones, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 3, size, size)).astype(np.uint8)
    images[labels == 0, 0] += 120
    images[labels == 1, :2] += 180
    return CachedSplit([images], labels.astype(np.int64), [f"k{i}" for i in range(n)])


class MemoryCheckpointer:
    def __init__(self, crash_after_epoch: int | None = None):
        self.state = None
        self.crash_after_epoch = crash_after_epoch

    def load(self):
        return self.state

    def save(self, state):
        self.state = {k: v for k, v in state.items()}
        if state["epoch"] == self.crash_after_epoch:
            self.crash_after_epoch = None
            raise KeyboardInterrupt("worker killed")


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_overfits_a_tiny_batch(arch):
    config = TrainConfig(
        arch=arch,
        pretrained=False,  # the network and the loop, not the weights (tested on their own)
        epochs=25,
        batch_size=8,
        lr=3e-3,
        augment=False,
        label_smoothing=0.0,
        class_weights=False,
        patience=100,
        warmup_fraction=0.05,
    )
    data = tiny_split(8)
    result = train(config, data, data, CLASSES)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"] * 0.5, (arch, first, last)
    assert max(h["train_accuracy"] for h in result.history) == 1.0, arch


def test_bf16_and_channels_last_on_this_cpu():
    result = train(
        TrainConfig(arch="cnn", epochs=1, batch_size=4),
        tiny_split(8),
        tiny_split(4, seed=1),
        CLASSES,
    )
    expected = "bfloat16" if torch.cpu._is_avx512_bf16_supported() else "fp32"
    assert result.precision == expected
    assert result.images_per_second > 0


@pytest.mark.parametrize("ema_epochs", [0.0, 1.5])
def test_resume_after_a_kill_gives_the_same_model(ema_epochs):
    """Bit for bit, the moving average of the weights included."""
    config = TrainConfig(arch="cnn", epochs=4, batch_size=8, ema_epochs=ema_epochs)
    data, val = tiny_split(24), tiny_split(8, seed=1)
    whole = train(config, data, val, CLASSES, checkpointer=MemoryCheckpointer())
    crashing = MemoryCheckpointer(crash_after_epoch=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, data, val, CLASSES, checkpointer=crashing)
    assert crashing.state["epoch"] == 2
    resumed = train(config, data, val, CLASSES, checkpointer=crashing)
    assert resumed.resumed_from_epoch == 3
    assert len(resumed.history) == 4
    for got, want in zip(resumed.history, whole.history, strict=True):
        assert got == pytest.approx(want)
    assert weights_digest(resumed.model) == weights_digest(whole.model)


def test_early_stopping_keeps_the_best_epoch_and_says_so(caplog):
    config = TrainConfig(arch="cnn", epochs=12, batch_size=8, patience=1, lr=1e-4)
    with caplog.at_level(logging.INFO, logger="fruitops.train"):
        result = train(config, tiny_split(16), tiny_split(8, seed=2), CLASSES)
    assert result.stopped_early or len(result.history) == 12
    best = max(range(len(result.history)), key=lambda i: result.history[i]["val_macro_f1"])
    assert result.best_epoch == best + 1
    said = [r.getMessage() for r in caplog.records if "stopped early" in r.getMessage()]
    if result.stopped_early:
        assert said == [
            f"stopped early after epoch {len(result.history)} of 12: no val macro-F1 gain for "
            f"1 epochs; keeping epoch {result.best_epoch}"
        ]
    else:
        assert said == []


def test_augment_keeps_shape_and_range():
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = augment(pixels)
    assert out.shape == pixels.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not torch.allclose(out, pixels.float() / 255)


def test_resampling_crops_resizes_and_flips_one_axis():
    whole = _resampling(torch.zeros(1), torch.full((1,), 16.0), 16, 16)
    assert torch.equal(whole[0], torch.eye(16))  # the whole axis at its own size: unchanged
    ramp = torch.arange(16, dtype=torch.float32)  # bilinear sampling of a ramp returns positions
    start, length = torch.tensor([3.0]), torch.tensor([8.0])
    sampled = _resampling(start, length, 16, 16)[0] @ ramp
    expected = (3 + (torch.arange(16) + 0.5) * 8 / 16 - 0.5).clamp(0, 15)
    assert torch.allclose(sampled, expected)
    assert torch.allclose(whole[0].flip(0) @ ramp, ramp.flip(0))


def test_augment_colour_matrix_matches_stepwise_jitter():
    """Brightness, contrast and saturation folded into one matrix equal the three steps.

    A flat-coloured image is its own crop and flip, so only the colour jitter changes it.
    """
    b = 6
    flat = torch.full((b, 3, 16, 16), 100, dtype=torch.uint8)
    flat[:, 0] = 180
    torch.manual_seed(3)
    out = augment(flat)
    torch.manual_seed(3)  # replay augment's draws: crop (area, ratio, left, top), flip, colour
    for _ in range(5):
        torch.empty(b).uniform_()
    brightness, contrast, saturation = torch.empty(3, b, 1, 1, 1).uniform_(0.75, 1.25)
    x = flat.float() / 255 * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = ((x - luma) * saturation + luma).clamp(0, 1)
    assert torch.allclose(out, x, atol=1e-5)
    assert out.std(dim=(2, 3)).max() < 1e-5  # still flat: the crop added no pattern


def test_bad_config_is_named():
    with pytest.raises(
        ValueError, match="arch\n  Input should be 'efficientnet_lite0', 'efficientnet_lite1'"
    ):
        TrainConfig(arch="vgg")
    with pytest.raises(ValueError, match="at least 2 classes"):
        train(TrainConfig(arch="cnn"), tiny_split(4), tiny_split(2), ["only"])
    with pytest.raises(ValueError, match="training split is empty"):
        train(TrainConfig(arch="cnn"), tiny_split(0), tiny_split(2), CLASSES)


def test_pretrained_offline_and_from_a_local_file(tmp_path: Path):
    import torchvision

    with pytest.raises(PretrainedUnavailable, match="--weights PATH"):
        build_model("resnet18", 3, pretrained=True)  # no network here
    with pytest.raises(PretrainedUnavailable, match="no ImageNet weights"):
        build_model("cnn", 3, pretrained=True)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    model = build_model("resnet18", 3, weights_path=str(weights), finetune="head")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.fc.weight", "backbone.fc.bias"}
    assert model.backbone.fc.out_features == 3
    # the run records which file it started from, as it does for Lite's packaged weights
    assert model.weights["weights_package"] == "file"
    assert model.weights["weights_file"] == str(weights)
    assert model.weights["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


@pytest.mark.slow
def test_ddp_with_two_gloo_processes(tmp_path: Path, free_port):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(f"""
        import hashlib, os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_training import tiny_split, weights_digest, CLASSES
        from fruitops_models.config import TrainConfig
        from fruitops_models.train import train
        config = TrainConfig(arch="cnn", epochs=2, batch_size=4)
        result = train(config, tiny_split(16), tiny_split(4, seed=1), CLASSES)
        rank = os.environ["RANK"]
        with open(os.path.join({str(tmp_path)!r}, f"rank{{rank}}.txt"), "w") as out:
            out.write(weights_digest(result.model) + " " + os.environ["WORLD_SIZE"])
    """)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node=2",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert digests[0] == digests[1] and digests[0][1] == "2"  # replicas stay in step


def test_each_architecture_takes_its_recipe_and_given_values_win():
    from fruitops_models.config import ARCH_RECIPES, SCRATCH, TRANSFER, CandidatesConfig

    lite, cnn = TrainConfig(arch="efficientnet_lite0"), TrainConfig(arch="cnn")
    for config, recipe in ((lite, TRANSFER), (cnn, SCRATCH)):
        assert ARCH_RECIPES[config.arch] == recipe
        for name, value in recipe.model_dump().items():
            assert getattr(config, name) == value, name
    assert lite.pretrained and lite.finetune == "top" and not cnn.pretrained
    assert TrainConfig(arch="efficientnet_lite0", epochs=3, lr=0.01).epochs == 3
    assert TrainConfig(arch="efficientnet_lite0", pretrained=False).finetune == "full"
    # one recipe for several architectures: each fills in what was not given
    both = CandidatesConfig(architectures=["efficientnet_lite0", "cnn"], batch_size=8)
    assert [both.for_arch(a).epochs for a in both.architectures] == [TRANSFER.epochs, 40]
    assert {both.for_arch(a).batch_size for a in both.architectures} == {8}
    with pytest.raises(ValueError, match="'top' .* is for efficientnet_lite.*--finetune full"):
        CandidatesConfig(architectures=["cnn"], finetune="top")
    small = lite.sized(64)
    assert (small.input_size, small.serve_size) == (64, 64)
    assert lite.sized(1024).serve_size == TRANSFER.serve_size
    # a size asked for is never lowered behind the user's back
    asked = CandidatesConfig(input_size=512).for_arch("efficientnet_lite0")
    with pytest.raises(ValueError, match="--input-size 512 is above the training cache's "):
        asked.sized(256)
    assert asked.sized(512).input_size == 512


def test_moving_average_is_what_is_validated_and_kept():
    """With ema_epochs the kept model is the average, not the last step's weights."""
    data, val = tiny_split(24), tiny_split(8, seed=1)
    plain = train(TrainConfig(arch="cnn", epochs=3, batch_size=8, patience=10), data, val, CLASSES)
    averaged = train(
        TrainConfig(arch="cnn", epochs=3, batch_size=8, patience=10, ema_epochs=1.0),
        data,
        val,
        CLASSES,
    )
    assert weights_digest(averaged.model) != weights_digest(plain.model)
    assert [h["train_loss"] for h in averaged.history] == pytest.approx(
        [h["train_loss"] for h in plain.history]
    )  # the same steps were taken: only what is kept differs


def test_probe_fits_the_head_before_fine_tuning(caplog):
    """probe_views: the fresh head is fitted on the frozen features first, so the first
    epoch starts from a head that already separates the classes."""
    import logging

    from fruitops_models.probe import fit_probe, probe_head
    from fruitops_models.train import evaluate

    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.normal(size=(60, 8)).astype(np.float32))
    labels = torch.from_numpy((features[:, 0] + features[:, 1] > 0).numpy().astype(np.int64))
    weight, bias = fit_probe(features, labels, 2)
    assert ((features @ weight.T + bias).argmax(1) == labels).float().mean() >= 0.95

    data, val = tiny_split(24), tiny_split(8, seed=1)
    torch.manual_seed(0)
    model = build_model("cnn", 2)
    before = evaluate(model, val, 2).metrics["accuracy"]
    probe_head(model, "cnn", data, 2, 32, 0.5, views=2)
    assert evaluate(model, val, 2).metrics["accuracy"] == 1.0 > before

    config = TrainConfig(arch="cnn", epochs=1, batch_size=8, probe_views=2)
    with caplog.at_level(logging.INFO, logger="fruitops.train"):
        train(config, data, val, CLASSES)
    assert "head probed on 2 views" in caplog.text


def test_a_short_run_of_a_pretrained_network_probes_first_and_fine_tunes_gently():
    """Too few steps to train a new head with the layers under it (the demo's 128 photos,
    32 steps): the head is fitted on frozen features first, then everything moves at a
    tenth of the rates. A full data set keeps the recipe; what was given is kept."""
    from fruitops_models.config import ARCH_RECIPES, PROBED_LR_SCALE, SMALL_RUN_PROBE_VIEWS

    recipe = ARCH_RECIPES["efficientnet_lite0"]
    short = TrainConfig(epochs=8).fitted(128)
    assert short.probe_views == SMALL_RUN_PROBE_VIEWS
    assert short.lr == pytest.approx(recipe.lr * PROBED_LR_SCALE)
    assert short.fitted(128) == short  # asked again, the same answer
    full = TrainConfig().fitted(1349)
    assert full.probe_views == 0 and full.lr == recipe.lr
    assert TrainConfig(arch="cnn", epochs=8).fitted(128).probe_views == 0  # nothing to probe
    assert TrainConfig(epochs=8, lr=0.01).fitted(128).lr == 0.01
    assert TrainConfig(epochs=8, probe_views=0).fitted(128).lr == recipe.lr
