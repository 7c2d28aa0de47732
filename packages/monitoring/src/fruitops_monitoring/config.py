"""Typed configs of monitoring (free of Evidently, which takes seconds to import)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, field_validator


class DriftPolicy(BaseModel):
    """When a batch counts as drifted. Any one rule is enough."""

    drift_share: float = Field(
        0.5, gt=0, le=1, description="dataset drift when at least this share of columns drift"
    )
    critical_columns: list[str] = Field(
        default_factory=list,
        description="columns whose drift alone is dataset drift (e.g. predicted_class)",
    )
    min_images: int = Field(2, ge=2, description="fewer images on either side is an error")


class ReferenceConfig(BaseModel):
    """Which held-out images the reference profile is made of."""

    split: str = Field("val", description="the held-out split the reference is made of")
    max_images: int = Field(5000, ge=2, description="at most this many images (key order)")
    components: int = Field(4, ge=1, le=32, description="embedding principal components")


class DriftConfig(DriftPolicy):
    """The drift asset's options: the policy, which traffic it looks at, and whether the run
    is logged to MLflow."""

    log_to_mlflow: bool = True
    folder: str | None = Field(
        None,
        description="lake folder of the report; default: the asset's folder "
        "(`fruitops monitor drift`: drift/<time>)",
    )
    online_day: str | None = Field(
        None,
        description="look at one day of `fruitops serve`'s answers (YYYY-MM-DD: the lake's "
        "predictions/online/<day>/) instead of the scored batch",
    )

    @field_validator("online_day")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        if value:  # "" is the DAG form's "not given"
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"online_day {value!r} is not a day in the form YYYY-MM-DD"
                ) from None
        return value or None
