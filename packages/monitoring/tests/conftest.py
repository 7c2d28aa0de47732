import pytest
import torch

from fruitops_models.architectures import FruitClassifier, build_backbone
from fruitops_models.registry import LoadedModel


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    """A small CNN with fixed random weights: a model view without training or a registry."""
    torch.manual_seed(0)
    module = FruitClassifier(build_backbone("cnn", 3)).eval()
    return LoadedModel(module, ["banana", "kiwi", "lemon"], 48, "tiny", 1, "none", "tiny")
