"""The training report's words on what the choice rests on."""

from fruitops_models.records import Evaluation, ModelScore
from fruitops_models.report import judged_on

BEST = ModelScore(version=1, role="candidate", arch="cnn", accuracy=0.9, macro_f1=0.9)


def evaluation(split: str, images: int, judged: int, total: int, missing: list[str]):
    return Evaluation(
        split=split,
        images=images,
        classes_judged=judged,
        classes_total=total,
        classes_missing=missing,
        scores=[BEST],
        best_candidate=BEST,
        champion=None,
    )


def test_report_names_the_classes_the_choice_could_not_weigh():
    line = judged_on(evaluation("val", 120, 3, 5, ["date", "fig"]))
    assert line.startswith("chosen on val: 120 photos of 3 of the 5 classes")
    assert "no val photo of date, fig" in line


def test_report_of_a_complete_split_lists_nothing_missing():
    line = judged_on(evaluation("test", 40, 8, 8, []))
    assert line == "chosen on test: 40 photos of 8 of the 8 classes"


def test_plots_print_names_from_data_as_written():
    """'$x^$' was parsed as math text and failed training after all its epochs."""
    import io

    import numpy as np
    import pandas as pd

    from fruitops_models import plots

    names = ["$x^$", "a_b"]
    for figure in (
        plots.per_class_f1(pd.DataFrame({"class": names, "f1": [0.5, 0.9]}), "F1"),
        plots.confusion_matrix(np.eye(2, dtype=int), names, "confusion"),
    ):
        figure.savefig(io.BytesIO(), format="png")  # raised ValueError from mathtext before
        assert "$x^$" in [t.get_text() for t in figure.axes[0].get_yticklabels()]


def test_the_cards_weakest_classes_leave_out_perfect_ones():
    """On 8 classes, 5 "weakest" would name classes answered perfectly (the demo's card did)."""
    from fruitops_models.card import WEAKEST, weakest_classes

    rows = [{"class": c, "f1": f} for c, f in [("a", 1.0), ("b", 0.9), ("c", 1.0), ("d", 0.5)]]
    assert [r["class"] for r in weakest_classes(rows)] == ["d", "b"]
    many = [{"class": str(i), "f1": i / 10} for i in range(10)]
    assert [r["class"] for r in weakest_classes(many)] == [str(i) for i in range(WEAKEST)]
    assert weakest_classes([{"class": "a", "f1": 1.0}]) == []
