"""Class names from data are held to a rule before any report, plot or file shows them."""

import pytest
from corpus import build_corpus, ingest

from fruitops_core.records import AssetCheckFailed
from fruitops_data.class_names import MAX_LENGTH, refusal

ALLOWED = ["apple", "pomme à la crème", "香蕉", "apple_granny-smith (2)", "kiwi+lime", "v1.2"]
REFUSED = {
    "apple</script><script>alert(1)</script>": "'/'",
    "$x^$": "'$'",
    "=HYPERLINK(1)": "'='",
    "@sum": "'@'",
    "a&b": "'&'",
    "it's": '"\'"',
    "": "0 characters",
    "x" * (MAX_LENGTH + 1): f"{MAX_LENGTH + 1} characters",
    " apple": "a space at one end",
    "..": "only dots",
}


@pytest.mark.parametrize("name", ALLOWED)
def test_names_people_give_fruit_pass(name):
    assert refusal(name) is None


@pytest.mark.parametrize("name,why", REFUSED.items())
def test_markup_math_and_formulas_are_refused(name, why):
    reason = refusal(name)
    assert reason is not None and why in reason, reason


def test_a_hostile_line_of_classname_txt_stops_ingest_naming_its_origin(settings, tmp_path):
    data = build_corpus(tmp_path / "corpus")
    for name in list(data.glob("train1/apple/*")):
        if name.name not in ("apple-000.jpg", "apple-001.jpg"):
            name.unlink()
    (data / "classname.txt").write_text("apple</script><script>alert(1)</script>\nbanana\n")
    (data / "train.csv").write_text(
        "image:FILE,category\ntrain/apple/apple-000.jpg,0\ntrain/apple/apple-001.jpg,0\n"
    )
    with pytest.raises(AssetCheckFailed, match="class_names_are_allowed") as failed:
        ingest(settings, data)
    message = str(failed.value)
    assert "apple</script>" in message and "classname.txt" in message
    assert "rename it" in message


def test_a_folder_named_as_math_text_stops_ingest_naming_the_folder(settings, tmp_path):
    data = build_corpus(tmp_path / "corpus")
    (data / "train1" / "banana").rename(data / "train1" / "$x^$")
    with pytest.raises(AssetCheckFailed, match=r"the folder train/\$x\^\$"):
        ingest(settings, data, {"data/image_manifest": {"max_unusable_share": 0.5}})
