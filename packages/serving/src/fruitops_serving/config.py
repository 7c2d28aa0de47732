"""The options of the ``serving/`` assets and of `fruitops score`, and where predictions go.

The one place each option's default, bounds and help are written (docs/design.md): the
assets declare these models, and the command's options, the scoring DAG's Params and the
work modules read them from here, never from `fruitops_serving.assets`. Light on purpose:
the DAG files import it while Airflow parses them.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args

from pydantic import BaseModel, Field, field_validator

#: The inference engines (openvino: the faster, see benchmarks/bench_score.py).
Backend = Literal["openvino", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class ScoringConfig(BaseModel):
    model_uri: str | None = Field(
        None, description="default: the champion version chosen by models/champion_model"
    )
    batch_size: int = Field(128, ge=1, description="images scored at once")
    precision: Literal["auto", "fp32"] = Field(
        "auto", description="auto: bf16 where it passed the gate against fp32, else fp32"
    )
    backend: Backend = Field(
        "openvino", description="inference engine (openvino: the faster, see benchmarks/)"
    )
    date: str | None = Field(
        None,
        description="the batch's day, YYYY-MM-DD (the scoring DAG gives its run's): its table "
        "is kept as predictions/<date>/predictions.parquet, one per day; default: in the "
        "asset's own folder",
    )

    @field_validator("date")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        # checked here, not as a schema pattern: the DAG's param holds "{ds}" until the run
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a day in the form YYYY-MM-DD") from None
        return value


class PrecisionGateConfig(BaseModel):
    """Which model the precision gate checks, and in which back ends."""

    model_uri: str | None = Field(
        None,
        description="models:/NAME/VERSION to check; default: the champion version chosen by "
        "models/champion_model",
    )
    # every back end by default: the scoring DAG's `backend` param sets only
    # serving/batch_predictions, so the gate holds a verdict for whichever one it picks
    backends: list[Backend] = Field(
        default_factory=lambda: list(BACKENDS),
        min_length=1,
        description="back ends whose bf16 is compared with the fp32 module",
    )


#: Where `fruitops score` and each dated scoring note the table they wrote last
#: (`fruitops monitor drift` reads it).
LATEST_PREDICTIONS = "predictions/latest.json"


def dated_folder(date: str) -> str:
    """The lake folder of one day's scoring: its table and its quarantine list."""
    return f"predictions/{date}"


class OutputConfig(BaseModel):
    """Where `fruitops score` writes its table."""

    output: str | None = Field(
        None,
        description="path or s3:// URI of the table; default predictions/<input>.<format> "
        "in the lake",
    )
    format: Literal["parquet", "csv"] = Field("parquet", description="table format")
