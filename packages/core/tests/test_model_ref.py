"""`ModelRef`: the one parser of ``models:/`` URIs."""

import pytest
from pydantic import ValidationError

from fruitops_core.model_ref import ModelRef


@pytest.mark.parametrize(
    "uri",
    ["models:/fruit-classifier@champion", "models:/fruit-classifier/3"],
)
def test_any_model_uri_pins_to_a_version(uri):
    assert ModelRef.parse(uri).at(7).uri == "models:/fruit-classifier/7"


@pytest.mark.parametrize(
    ("uri", "alias", "version"),
    [
        ("models:/fruit-classifier@champion", "champion", None),
        ("models:/fruit-classifier/12", None, 12),
    ],
)
def test_a_uri_round_trips(uri, alias, version):
    ref = ModelRef.parse(uri)
    assert (ref.name, ref.alias, ref.version, ref.is_pinned) == (
        "fruit-classifier", alias, version, version is not None,
    )  # fmt: skip
    assert ref.uri == str(ref) == uri


@pytest.mark.parametrize(
    "uri",
    ["runs:/abc/model", "models:/", "models:/name", "models:/a/b/c", "models:/name/x", "/tmp/x"],
)
def test_a_non_registry_uri_is_refused_by_name(uri):
    with pytest.raises(ValueError, match=r"expected models:/NAME@ALIAS or models:/NAME/VERSION"):
        ModelRef.parse(uri)


def test_version_zero_is_not_a_version():
    with pytest.raises(ValidationError):
        ModelRef.pinned("fruit-classifier", 0)


def test_a_ref_is_an_alias_or_a_version():
    with pytest.raises(ValidationError, match="an alias or a version"):
        ModelRef(name="fruit-classifier", alias="champion", version=3)
    assert ModelRef.parse_or_none("runs:/abc/model") is None
