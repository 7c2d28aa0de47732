"""Promotion by alias, on a fresh SQLite registry with hand-made versions."""

import mlflow
import pytest

from fruitops_core.tracking import configure_mlflow
from fruitops_models.registry import promote_if_better


@pytest.fixture
def registry(settings):
    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.create_registered_model(settings.registered_model)

    def version_with_score(score: float) -> int:
        with mlflow.start_run() as run:
            mlflow.log_metric("val_macro_f1", score)
        mv = client.create_model_version(
            settings.registered_model, "file:///dev/null", run.info.run_id
        )
        return int(mv.version)

    return settings, client, version_with_score


def champion_version(client, name) -> int:
    return int(client.get_model_version_by_alias(name, "champion").version)


def test_first_model_becomes_champion(registry):
    settings, client, make = registry
    v1 = make(0.5)
    decision = promote_if_better(settings, v1, "val_macro_f1", margin=0.01)
    assert decision["promoted"] and decision["previous_champion_version"] is None
    assert champion_version(client, settings.registered_model) == v1


def test_candidate_must_beat_champion_by_margin(registry):
    settings, client, make = registry
    v1 = make(0.70)
    promote_if_better(settings, v1, "val_macro_f1", 0.02)
    v2 = make(0.71)  # better, but not by the margin
    decision = promote_if_better(settings, v2, "val_macro_f1", 0.02)
    assert not decision["promoted"]
    assert champion_version(client, settings.registered_model) == v1
    tags = client.get_model_version(settings.registered_model, str(v2)).tags
    assert tags["promotion.promoted"] == "False"
    assert tags["promotion.previous_champion_score"] == "0.7"
    v3 = make(0.80)
    assert promote_if_better(settings, v3, "val_macro_f1", 0.02)["promoted"]
    assert champion_version(client, settings.registered_model) == v3


def test_missing_metric_is_named(registry):
    settings, _, make = registry
    v1 = make(0.5)
    with pytest.raises(ValueError, match="no metric 'val_top5'"):
        promote_if_better(settings, v1, "val_top5", 0.0)
