"""Asset declarations: a key, its upstream keys, the function, how it is stored, its checks.

This is the Dagster idea of software-defined assets, kept small on purpose: the decorators
return plain spec objects (no global registry); `fruitops_core.registry` collects them from
the modules that packages expose through the ``fruitops.assets`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel

from fruitops_core.lake import Lake
from fruitops_core.scratch import user_scratch
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tables import ParquetTable
from fruitops_core.tracking import Tracking

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class NoConfig(BaseModel):
    """Config of an asset that takes none."""


# --- storage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IOPolicy:
    """How an asset's value becomes bytes in the lake, and back."""

    name: str
    filename: str

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def describe(self, value: Any) -> dict[str, Any]:
        """Small metadata about a value for the materialization record."""
        return {}

    def store(self, lake: Lake, path: str, value: Any) -> tuple[str, str]:
        """Write ``value`` at ``path``; return its URI and version (a content hash)."""
        data = self.encode(value)
        return lake.write_bytes(path, data), hashlib.sha256(data).hexdigest()[:16]

    def load(self, lake: Lake, path: str) -> Any:
        return self.decode(lake.read_bytes(path))


class _ParquetIO(IOPolicy):
    def encode(self, value: pd.DataFrame) -> bytes:
        if not isinstance(value, pd.DataFrame):
            raise TypeError(f"a parquet asset must return a pandas DataFrame, got {type(value)}")
        buffer = io.BytesIO()
        value.to_parquet(buffer, index=False)
        return buffer.getvalue()

    def decode(self, data: bytes) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(data))

    def describe(self, value: pd.DataFrame) -> dict[str, Any]:
        return {"rows": len(value)}


class _JsonIO(IOPolicy):
    def encode(self, value: Any) -> bytes:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        return json.dumps(value, indent=2, sort_keys=True, default=str).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)


class _ParquetFileIO(IOPolicy):
    """A `ParquetTable` moved as a file: never decoded into memory on either side."""

    def store(self, lake: Lake, path: str, value: ParquetTable) -> tuple[str, str]:
        if not isinstance(value, ParquetTable):
            raise TypeError(f"a parquet_file asset must return a ParquetTable, got {type(value)}")
        return lake.put_file(value.path, path), value.sha256()[:16]

    def load(self, lake: Lake, path: str) -> ParquetTable:
        local = lake.local_path(path)
        if local is not None:  # a local lake: read the stored file in place
            return ParquetTable(local)
        digest = hashlib.sha256(lake.uri(path).encode()).hexdigest()[:16]
        local = user_scratch("tables") / digest / Path(path).name
        return ParquetTable(lake.get_file(path, local))

    def describe(self, value: ParquetTable) -> dict[str, Any]:
        return {"rows": len(value)}


@dataclass(frozen=True)
class _RecordIO(_JsonIO):
    """A typed record (a pydantic model) as JSON: written as the plain JSON asset, read back
    as the model, so what an asset hands on is checked on both sides of the lake."""

    model: type[BaseModel] = BaseModel

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, self.model):
            raise TypeError(f"this asset must return a {self.model.__name__}, got {type(value)}")
        return super().encode(value)

    def decode(self, data: bytes) -> BaseModel:
        return self.model.model_validate_json(data)


def record(model: type[BaseModel]) -> IOPolicy:
    """The IO of an asset whose value is a ``model`` record (`_RecordIO`)."""
    return _RecordIO("json", "data.json", model)


parquet: IOPolicy = _ParquetIO("parquet", "data.parquet")
parquet_file: IOPolicy = _ParquetFileIO("parquet_file", "data.parquet")
json_io: IOPolicy = _JsonIO("json", "data.json")


# --- context and checks -----------------------------------------------------------------


@dataclass
class AssetContext(Generic[ConfigT]):
    """What an asset function gets besides its upstream values."""

    key: str
    run_id: str
    settings: FruitOpsSettings
    lake: Lake
    config: ConfigT
    log: logging.Logger
    metadata: dict[str, Any] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    """Scratch space for this materialization (files the artifact is built in); removed after."""
    previous: dict[str, Any] | None = None
    """The metadata of this asset's last materialization; None the first time."""
    asset_dir: str = ""
    """This materialization's own lake folder (`version_dir`): its artifact and every extra
    file it writes go there, so nothing a committed record names is ever overwritten."""
    tracking: Tracking = None  # type: ignore[assignment]
    """The MLflow resource (`fruitops_core.tracking.Tracking`): every MLflow call of an asset
    goes through it. Built from ``settings`` unless the caller injects one."""

    def __post_init__(self) -> None:
        self.asset_dir = self.asset_dir or version_dir(self.key, new_version_id())
        self.tracking = self.tracking or Tracking(self.settings)

    def add_metadata(self, **values: Any) -> None:
        """Record small facts (counts, metrics, URIs) in the materialization record."""
        self.metadata.update(values)


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetCheckSpec:
    """A check on an asset's value; a failing blocking check stops everything downstream."""

    asset_key: str
    name: str
    fn: Callable[[AssetContext, Any], CheckResult]
    blocking: bool = True
    description: str = ""


def asset_check(asset_key: str, *, blocking: bool = True) -> Callable[..., AssetCheckSpec]:
    def wrap(fn: Callable[[AssetContext, Any], CheckResult]) -> AssetCheckSpec:
        return AssetCheckSpec(
            asset_key=asset_key,
            name=fn.__name__,
            fn=fn,
            blocking=blocking,
            description=inspect.getdoc(fn) or "",
        )

    return wrap


# --- the asset -----------------------------------------------------------------------------


def dep_argument(key: str) -> str:
    """The function argument that receives the upstream asset ``key``: its last segment."""
    return key.rsplit("/", 1)[-1]


def asset_dir(key: str) -> str:
    """The lake folder of asset ``key``: its record, history, versions and ``current``."""
    return f"assets/{key}"


#: The folder under `asset_dir` that holds one folder per materialization.
VERSIONS = "versions"
#: On a local lake, the link in `asset_dir` to the version the record names.
CURRENT = "current"


def new_version_id() -> str:
    """A materialization's folder name: its UTC start, so names sort oldest first."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


def version_dir(key: str, version_id: str) -> str:
    return f"{asset_dir(key)}/{VERSIONS}/{version_id}"


@dataclass(frozen=True)
class AssetSpec:
    key: str
    fn: Callable[..., Any]
    deps: tuple[str, ...] = ()
    io: IOPolicy = json_io
    config_model: type[BaseModel] = NoConfig
    description: str = ""
    checks: tuple[AssetCheckSpec, ...] = ()
    settings_config: tuple[tuple[str, str], ...] = ()
    """(config field, settings attribute) pairs: a setting that is set counts as given config."""
    reuse_key: Callable[..., Any] | None = None
    """``reuse_key(ctx, **upstream)``: what decides whether the last result still holds (a
    JSON-able value). While it is the same, by the same code, `materialize` keeps the stored
    result instead of running the function, and records ``reused`` (docs/design.md)."""

    @property
    def group(self) -> str:
        return self.key.split("/", 1)[0]

    def artifact_path(self, folder: str) -> str:
        """Where the artifact lies in a materialization's folder (`AssetContext.asset_dir`)."""
        return f"{folder}/{self.io.filename}"

    @property
    def record_path(self) -> str:
        return f"{asset_dir(self.key)}/materialization.json"

    def with_checks(self, checks: tuple[AssetCheckSpec, ...]) -> AssetSpec:
        return dataclasses.replace(self, checks=self.checks + checks)

    def given_config(self, values: dict[str, Any] | None, settings: FruitOpsSettings) -> dict:
        """The config a caller gave, with the settings that stand for config fields."""
        from_settings = {
            name: getattr(settings, attribute)
            for name, attribute in self.settings_config
            if getattr(settings, attribute) is not None
        }
        return {**from_settings, **(values or {})}

    def parse_config(self, values: dict[str, Any] | None) -> BaseModel:
        """Validate user config; a wrong key or value names the asset and the field."""
        from pydantic import ValidationError

        try:
            return self.config_model.model_validate(values or {})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(f"wrong config for asset {self.key}: {problems}") from None


def asset(
    key: str,
    *,
    deps: tuple[str, ...] | list[str] = (),
    io: IOPolicy = json_io,
    config: type[BaseModel] = NoConfig,
    config_from_settings: dict[str, str] | None = None,
    reuse_key: Callable[..., Any] | None = None,
) -> Callable[[Callable[..., Any]], AssetSpec]:
    """Declare ``fn(ctx, **upstream)`` as the function that makes asset ``key``.

    Upstream values are passed by the last segment of their key
    (``data/image_manifest`` → ``image_manifest``). ``config_from_settings`` maps config
    fields to the settings (environment variables) that give them when a caller does not.
    ``reuse_key(ctx, **upstream)`` names what decides whether the last result still holds
    (`AssetSpec.reuse_key`).
    """

    def wrap(fn: Callable[..., Any]) -> AssetSpec:
        params = set(inspect.signature(fn).parameters)
        missing = [dep_argument(d) for d in deps if dep_argument(d) not in params]
        if missing:
            raise TypeError(f"asset {key}: function {fn.__name__} lacks parameters {missing}")
        return AssetSpec(
            key=key,
            fn=fn,
            deps=tuple(deps),
            io=io,
            config_model=config,
            description=(inspect.getdoc(fn) or "").split("\n\n")[0],
            settings_config=tuple((config_from_settings or {}).items()),
            reuse_key=reuse_key,
        )

    return wrap
