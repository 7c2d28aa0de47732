"""The small rules of the reference profile: labels read from keys (pinned model URIs are
`fruitops_core.model_ref`'s, tested there)."""

from fruitops_monitoring.reference import class_from_key


def test_class_from_key_reads_the_parent_folder_only_when_it_is_a_class():
    label = class_from_key(["apple", "banana"])
    assert label("incoming/apple/img1.jpg") == "apple"
    assert label("banana/x.png") == "banana"
    assert label("incoming/unknown/img.jpg") is None
    assert label("img.jpg") is None
