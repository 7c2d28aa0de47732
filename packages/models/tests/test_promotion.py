"""Promotion by alias on a fresh SQLite registry: only a better candidate becomes champion."""

import pytest

from fruitops_core.tracking import Tracking
from fruitops_models.records import Evaluation, ModelScore
from fruitops_models.registry import promote_if_better


@pytest.fixture
def registry(settings):
    tracking = Tracking(settings)
    tracking.activate()
    client = tracking.client
    client.create_registered_model(settings.registered_model)

    def new_version() -> int:
        with tracking.start_run(kind="training") as run:
            pass
        mv = client.create_model_version(
            settings.registered_model, "file:///dev/null", run.info.run_id
        )
        return int(mv.version)

    return settings, client, new_version


def score(version: int, macro_f1: float, role: str = "candidate") -> ModelScore:
    return ModelScore(version=version, role=role, arch="cnn", accuracy=macro_f1, macro_f1=macro_f1)


def evaluation(candidate: tuple[int, float], champion: tuple[int, float] | None) -> Evaluation:
    """A models/model_evaluation value: both scored on the same split."""
    best = score(*candidate)
    champ = score(*champion, role="champion") if champion else None
    return Evaluation(
        split="val",
        images=20,
        classes_judged=2,
        classes_total=2,
        classes_missing=[],
        scores=[s for s in (best, champ) if s],
        best_candidate=best,
        champion=champ,
    )


def champion_version(client, name) -> int:
    return int(client.get_model_version_by_alias(name, "champion").version)


def test_first_model_becomes_champion(registry):
    settings, client, new = registry
    v1 = new()
    decision = promote_if_better(Tracking(settings), evaluation((v1, 0.5), None), margin=0.01)
    assert decision["promoted"] and decision["previous_champion_version"] is None
    assert champion_version(client, settings.registered_model) == v1


def test_worse_or_barely_better_candidates_stay_out(registry):
    settings, client, new = registry
    v1, v2, v3, v4 = new(), new(), new(), new()
    promote_if_better(Tracking(settings), evaluation((v1, 0.70), None), 0.02)
    worse = promote_if_better(Tracking(settings), evaluation((v2, 0.60), (v1, 0.70)), 0.02)
    assert not worse["promoted"] and "does not beat" in worse["reason"]
    barely = promote_if_better(Tracking(settings), evaluation((v3, 0.71), (v1, 0.70)), 0.02)
    assert not barely["promoted"]
    assert champion_version(client, settings.registered_model) == v1
    tags = client.get_model_version(settings.registered_model, str(v3)).tags
    assert tags["promotion.promoted"] == "False"
    assert tags["promotion.candidate_score"] == "0.71"
    assert tags["promotion.previous_champion_score"] == "0.7"
    better = promote_if_better(Tracking(settings), evaluation((v4, 0.80), (v1, 0.70)), 0.02)
    assert better["promoted"] and champion_version(client, settings.registered_model) == v4


def test_pending_candidates_are_the_unweighed_versions_after_the_champion(registry):
    from fruitops_models.registry import WEIGHED_TAG, pending_candidates

    settings, client, new = registry
    name = settings.registered_model
    v1, v2, v3 = new(), new(), new()
    assert [p["version"] for p in pending_candidates(client, name, None)] == [v1, v2, v3]
    assert [p["version"] for p in pending_candidates(client, name, v1)] == [v2, v3]
    promote_if_better(Tracking(settings), evaluation((v2, 0.4), (v1, 0.5)), 0.0)  # v2 weighed, lost
    assert client.get_model_version(name, str(v2)).tags[WEIGHED_TAG] == str(v1)
    assert [p["version"] for p in pending_candidates(client, name, v1)] == [v3]


@pytest.mark.slow
def test_the_first_model_and_one_of_other_classes_are_crowned_at_registration(settings):
    import torch

    from fruitops_models.architectures import build_model
    from fruitops_models.registry import log_and_register

    tracking = Tracking(settings)
    tracking.activate()
    client = tracking.client
    example = torch.rand(2, 3, 32, 32)

    def register(classes: list[str]) -> int:
        with tracking.start_run(kind="training") as run:  # the experiment's artifact store
            model = build_model("cnn", len(classes))
            return log_and_register(model, classes, 32, example, run, "cnn")["version"]

    first = register(["apple", "kiwi"])
    assert champion_version(client, settings.registered_model) == first
    second = register(["apple", "kiwi"])  # same classes: waits for promotion
    assert champion_version(client, settings.registered_model) == first
    other = register(["banana", "lemon", "lime"])  # the champion cannot name these
    assert champion_version(client, settings.registered_model) == other
    tags = client.get_model_version(settings.registered_model, str(other)).tags
    assert "trained on other classes" in tags["promotion.reason"]
    assert second == first + 1


def test_a_champion_crowned_in_this_run_is_weighed_with_its_candidates():
    """The demo's case: v1 (crowned at registration) and v2 trained in one run; the report's
    best candidate is the better of the two, not the runner-up. An older champion is not a
    candidate."""
    from fruitops_models.evaluation import best_candidate

    scores = [score(1, 0.97, role="champion"), score(2, 0.55)]
    assert best_candidate(scores, this_run={1, 2}).version == 1
    assert best_candidate(scores, this_run={2}).version == 2
    tie = [*scores, score(3, 0.55)]
    assert best_candidate(tie, this_run={3, 2}).version == 2
