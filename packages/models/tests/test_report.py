"""The training report's words on what the choice rests on."""

from fruitops_models.report import judged_on


def test_report_names_the_classes_the_choice_could_not_weigh():
    evaluation = {
        "split": "val",
        "images": 120,
        "classes_judged": 3,
        "classes_total": 5,
        "classes_missing": ["date", "fig"],
    }
    line = judged_on(evaluation)
    assert line.startswith("chosen on val: 120 photos of 3 of the 5 classes")
    assert "no val photo of date, fig" in line


def test_report_of_a_complete_split_lists_nothing_missing():
    line = judged_on(
        {
            "split": "test",
            "images": 40,
            "classes_judged": 8,
            "classes_total": 8,
            "classes_missing": [],
        }
    )
    assert line == "chosen on test: 40 photos of 8 of the 8 classes"
