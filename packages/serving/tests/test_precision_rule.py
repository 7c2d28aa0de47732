"""The rule a faster precision must pass against fp32: agreement, accuracy drop, McNemar."""

import math

import numpy as np
import pytest

from fruitops_serving.config import PrecisionGateConfig
from fruitops_serving.precision import compare, describe, mcnemar_p
from fruitops_serving.records import PrecisionCheck

RULE = PrecisionGateConfig()


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(2, 0) == 0.5  # 2 photos lost, none won: as likely as a coin's HH or TT
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10)
    assert mcnemar_p(4, 3) == 1.0
    # symmetric, and the textbook value for 15 against 5 discordant pairs
    assert mcnemar_p(15, 5) == mcnemar_p(5, 15)
    assert mcnemar_p(15, 5) == pytest.approx(2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    assert round(mcnemar_p(15, 5), 4) == 0.0414


def _answers(n: int, changed: list[int], to: int = 99) -> np.ndarray:
    out = np.arange(n) % 7
    out[changed] = to
    return out


def test_a_few_harmless_changes_pass():
    labels = np.arange(300) % 7
    fp32 = labels.copy()
    fp32[:20] = 99  # fp32 wrong on 20
    faster = fp32.copy()
    faster[[0, 1]] = labels[[0, 1]]  # two photos won
    faster[[100, 101]] = 99  # two lost
    check = compare(fp32, faster, labels, RULE)
    assert check["passed"] and "refused" not in check
    assert check["agreement"] == pytest.approx(296 / 300)
    assert check["accuracy_drop"] == 0 and check["mcnemar_p"] == 1.0
    assert (check["only_fp32_right"], check["only_faster_right"]) == (2, 2)
    assert "98.7% of 300 held-out photos kept fp32's answer" in describe(PrecisionCheck(**check))


def test_each_part_of_the_rule_refuses_and_names_its_setting():
    labels = np.arange(400) % 7
    # 12 photos lost, none won: agreement 97 % < 98 %, drop 3 points > 1, p < 0.05
    faster = _answers(400, list(range(12)))
    check = compare(labels, faster, labels, RULE)
    assert check["passed"] is False
    for setting in ("min_agreement", "max_accuracy_drop", "significance"):
        assert f"setting {setting}" in check["refused"]
    # the same changes judged under looser settings pass
    loose = PrecisionGateConfig(min_agreement=0.9, max_accuracy_drop=0.05, significance=1e-6)
    assert compare(labels, faster, labels, loose)["passed"]
    # significant alone: 5 lost of 1000 is p 0.0625, not significant; 8 lost is
    labels = np.arange(1000) % 7
    assert compare(labels, _answers(1000, list(range(5))), labels, RULE)["passed"]
    eight = compare(labels, _answers(1000, list(range(8))), labels, RULE)
    assert eight["refused"].startswith("McNemar's test finds it less accurate (p = 0.008")


def test_unlabelled_photos_are_judged_on_agreement_and_few_photos_never_pass():
    fp32 = np.arange(100) % 5
    check = compare(fp32, fp32.copy(), None, RULE)
    assert check == {"images": 100, "agreement": 1.0, "passed": True}
    few = compare(fp32[:3], fp32[:3], None, RULE)
    assert few["passed"] is False and few["refused"] == "only 3 held-out images (needs 20)"
    more_accurate = compare(np.full(100, 9), fp32, fp32, RULE)  # every answer changed, all right
    assert "agreed with fp32 on 0.0%" in more_accurate["refused"]
    assert "McNemar" not in more_accurate["refused"]  # significantly better is not refused


@pytest.mark.parametrize("field,value", [("min_agreement", 1.5), ("significance", 0)])
def test_the_rule_s_settings_are_bounded(field, value):
    with pytest.raises(ValueError, match=field):
        PrecisionGateConfig(**{field: value})
