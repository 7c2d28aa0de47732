"""The small rules of the reference profile: pinned model URIs and labels read from keys."""

import pytest

from fruitops_monitoring.reference import class_from_key, versioned_uri


@pytest.mark.parametrize(
    "uri",
    ["models:/fruit-classifier@champion", "models:/fruit-classifier/3", "models:/fruit-classifier"],
)
def test_versioned_uri_pins_any_model_uri_to_the_version(uri):
    assert versioned_uri(uri, 7) == "models:/fruit-classifier/7"


def test_versioned_uri_rejects_a_non_registry_uri():
    with pytest.raises(ValueError, match="expected models:/NAME"):
        versioned_uri("runs:/abc/model", 1)


def test_class_from_key_reads_the_parent_folder_only_when_it_is_a_class():
    label = class_from_key(["apple", "banana"])
    assert label("incoming/apple/img1.jpg") == "apple"
    assert label("banana/x.png") == "banana"
    assert label("incoming/unknown/img.jpg") is None
    assert label("img.jpg") is None
