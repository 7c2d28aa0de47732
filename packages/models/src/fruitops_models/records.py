"""The typed records the ``models/`` assets hand on: JSON in the lake, torch- and MLflow-free,
so any layer above may read them (`fruitops_core.assets.record`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Champion(BaseModel):
    """``models/champion_model``: the registry's champion once promotion weighed the
    candidates against it."""

    name: str
    version: int
    run_id: str
    model_uri: str = Field(description="models:/NAME/VERSION: the version chosen")
    alias_uri: str = Field(description="models:/NAME@champion: what the alias names now")
    decision: dict[str, Any] = Field(
        default_factory=dict, description="promotion's verdict: scores, margin, reason"
    )


#: the model version's tag with its precisions as the serving package's precision gate
#: decided them, in a line (shown by `fruitops models list`)
GATE_TAG = "precision_gate"
