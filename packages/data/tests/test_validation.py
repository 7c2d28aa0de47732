"""The Great Expectations suites on small manifests: what each coverage warning names."""

import pandas as pd

from fruitops_data.config import ValidationConfig
from fruitops_data.manifest import MANIFEST_COLUMNS
from fruitops_data.validation import validate


def manifest(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    """A manifest of readable 64×64 JPEGs: ``counts[split][label]`` files of each."""
    rows = []
    for split, per_class in counts.items():
        for label, n in per_class.items():
            for i in range(n):
                key = f"ds/{split}/{label}/{i}.jpg"
                rows.append([key, split, label, key, 100, "JPEG", 64, 64, "RGB", True, None])
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(MANIFEST_COLUMNS)


def test_eval_splits_lacking_train_classes_are_warned_by_name():
    data = manifest(
        {
            "train": {"apple": 12, "banana": 12, "cherry": 12, "date": 12},
            "val": {"apple": 6, "banana": 2},  # cherry and date missing, banana thin
            "test": {"apple": 6, "banana": 6, "cherry": 6},  # date missing
        }
    )
    with validate(data, ValidationConfig(min_val_per_class=5)) as outcome:
        summary = outcome.summary
    assert summary["success"]  # warnings only: training may go on
    assert {"val_has_every_train_class", "test_has_every_train_class", "min_val_per_class"} <= set(
        summary["warnings"]
    )
    by_name = {r["name"]: r for r in summary["results"]}
    assert by_name["val_has_every_train_class"]["classes"] == ["cherry", "date"]
    assert by_name["test_has_every_train_class"]["classes"] == ["date"]
    assert by_name["min_val_per_class"]["classes"] == ["banana"]
    messages = "\n".join(summary["messages"])
    assert "val has no photo of 2 of the 4 train classes (cherry, date)" in messages
    assert "test has no photo of 1 of the 4 train classes (date)" in messages
    assert "1 of the 4 classes have fewer than 5 val photos (banana)" in messages


def test_complete_splits_raise_no_coverage_warning():
    data = manifest(
        {
            "train": {"apple": 12, "banana": 12},
            "val": {"apple": 5, "banana": 5},
            "test": {"apple": 3, "banana": 3},
        }
    )
    with validate(data, ValidationConfig(min_val_per_class=5)) as outcome:
        summary = outcome.summary
    assert summary["messages"] == []
    assert not {"val_has_every_train_class", "test_has_every_train_class"} & set(
        summary["warnings"]
    )
    assert "min_val_per_class" not in summary["warnings"]


def test_data_docs_show_file_names_as_text_never_as_markup():
    """Great Expectations' Data Docs put values into their HTML as they are: a file name
    holding a tag ran there. The copy it validates has them escaped."""
    import html

    data = manifest({"train": {"apple": 12, "kiwi": 12}, "val": {"apple": 5, "kiwi": 5}})
    hostile = "raw/ds/train/apple/x<img src=x onerror=alert(1)>.jpg"
    data.loc[0, "key"] = data.loc[1, "key"] = hostile  # a duplicate: the docs list it
    with validate(data, ValidationConfig()) as outcome:
        pages = [p.read_text() for p in outcome.docs_dir.rglob("*.html")]
        summary = outcome.summary
    assert "unique_keys" in summary["failed_expectations"]  # still judged the same
    assert not any("onerror=alert(1)>" in page for page in pages)
    assert any(html.escape(hostile) in page for page in pages)
