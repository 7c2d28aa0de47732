import numpy as np
import pytest
import torch

from fruitops_models.architectures import FruitClassifier, build_model
from fruitops_models.config import ARCHITECTURES
from fruitops_models.metrics import macro_f1


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_maps_pixels_to_logits(arch):
    model = build_model(arch, num_classes=7).eval()
    assert isinstance(model, FruitClassifier)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(ValueError, match="cnn, resnet18"):
        build_model("vgg", 3)


def test_normalisation_is_inside_the_model():
    model = build_model("cnn", 3)
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    confusion = np.zeros((4, 4), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)
    assert macro_f1(confusion) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
