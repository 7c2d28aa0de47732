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
from pydantic_settings import BaseSettings, SettingsConfigDict

from fruitops_core.asset_keys import CHAMPION_MODEL

#: The inference engines (openvino: the faster, see benchmarks/bench_score.py).
Backend = Literal["openvino", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class ScoringConfig(BaseModel):
    model_uri: str | None = Field(
        None, description="default: the champion version chosen by " + CHAMPION_MODEL
    )
    batch_size: int = Field(128, ge=1, description="images scored at once")
    precision: Literal["auto", "fp32"] = Field(
        "auto",
        description="auto: the fastest precision that passed the gate against fp32 (int8, "
        "bf16), else fp32",
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
    output: str | None = Field(
        None,
        description="path or s3:// URI of the table; default predictions/<input>.<format> "
        "in the lake (`fruitops score`), else the day's or the asset's folder",
    )
    format: Literal["parquet", "csv"] = Field("parquet", description="table format")

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
    """Which model the precision gate checks, in which back ends, and the rule a faster
    precision must pass against fp32 on the held-out photos (`fruitops_serving.precision`)."""

    model_uri: str | None = Field(
        None,
        description="models:/NAME/VERSION to check; default: the champion version chosen by "
        + CHAMPION_MODEL,
    )
    # every back end by default: the scoring DAG's `backend` param sets only
    # serving/batch_predictions, so the gate holds a verdict for whichever one it picks
    backends: list[Backend] = Field(
        default_factory=lambda: list(BACKENDS),
        min_length=1,
        description="back ends whose faster precisions are compared with the fp32 module",
    )
    min_agreement: float = Field(
        0.98,
        ge=0,
        le=1,
        description="share of held-out photos that must keep fp32's answer (at most 2 in 100 "
        "may change)",
    )
    max_accuracy_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="accuracy the faster precision may lose on the labelled held-out photos "
        "(0.01: one point, NNCF's own default)",
    )
    significance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="refused when McNemar's exact test finds it less accurate at this level",
    )
    calibration_images: int = Field(
        512,
        ge=1,
        description="training photos int8 is calibrated on (NNCF post-training quantization)",
    )


#: Where `fruitops score` and each dated scoring note the table they wrote last
#: (`fruitops monitor drift` reads it).
LATEST_PREDICTIONS = "predictions/latest.json"


def dated_folder(date: str) -> str:
    """The lake folder of one day's scoring: its table and its quarantine list."""
    return f"predictions/{date}"


SERVE_ENV_PREFIX = "FRUITOPS_SERVE_"


class ServingConfig(BaseSettings):
    """How `fruitops serve` (and the registered model under plain `mlflow models serve`)
    answers photos online. Read from `FRUITOPS_SERVE_*` variables, which `fruitops serve`'s
    options set for its workers."""

    model_config = SettingsConfigDict(env_prefix=SERVE_ENV_PREFIX, extra="ignore")

    model_uri: str | None = Field(
        None,
        description="models:/NAME@ALIAS or models:/NAME/VERSION; default: the champion alias, "
        "watched for a new champion",
    )
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every one)")
    port: int = Field(5001, ge=1, le=65_535, description="port to listen on")
    workers: int = Field(1, ge=1, le=64, description="server processes, each with the model")
    watch_seconds: float = Field(
        30.0,
        ge=0,
        description="how often the alias is checked for a new version, swapped in once "
        "loaded (0: never)",
    )
    max_photos: int = Field(32, ge=1, description="photos in one request at most")
    max_request_bytes: int = Field(
        32 * 1024**2, ge=1024, description="bytes in one request at most"
    )
    max_batch: int = Field(
        1,
        ge=1,
        description="photos of concurrent requests scored together at most (1: each request "
        "on its own, which kept the model busiest; a request's own photos go together)",
    )
    model_threads: int | None = Field(
        None,
        ge=1,
        description="threads the model computes on; default: every core in fp32 and bf16, "
        "half of them in int8 (the others decode photos and answer requests)",
    )
    record: bool = Field(
        True, description="record every answer in the lake (predictions/online/<date>/)"
    )
    record_seconds: float = Field(
        10.0, gt=0, description="recorded answers are appended to the lake this often"
    )
    record_rows: int = Field(
        512, ge=1, description="or as soon as this many are waiting, whichever comes first"
    )

    def threads(self, precision: str) -> int:
        """`model_threads`, or as many as answered the most photos per second on 2 cores
        (AMD EPYC, `benchmarks/bench_online.py`'s load): int8 costs about what decoding a
        photo and answering its request cost, so it gets half the cores (420 photos/s on
        one, 350 on both); fp32 costs several times more, so it gets them all (capped at
        AVX2: 150 photos/s on both, 130 on one)."""
        from fruitops_models.hardware import usable_cores

        if self.model_threads is not None:
            return self.model_threads
        cores = usable_cores()
        return max(1, cores // 2) if precision == "int8" else cores


def setting_name(field: str) -> str:
    """How a user sets ``field`` of `ServingConfig`: the option and the variable."""
    return f"--{field.replace('_', '-')} or {SERVE_ENV_PREFIX}{field.upper()}"


def online_folder(day: str) -> str:
    """Where the online answers of one day are appended, a part file per flush."""
    return f"predictions/online/{day}"
