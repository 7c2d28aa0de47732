"""Command-line options and DAG Params made from the assets' pydantic configs.

Each option's default, bounds, choices and help are written once, on the config field, in
the spirit of Hugging Face's ``HfArgumentParser``: a `ConfigOption` names the field, and
`with_options` (Typer) and `param_schema` (Airflow Params, made in `fruitops_airflow.factory`)
build the rest from it, so a command and a DAG cannot drift apart from the asset they
configure.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

#: DAG param → (asset key, config field) it sets.
ParamMap = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class ConfigOption:
    """The config field ``field`` of asset ``asset`` (whose config model is ``model``),
    exposed as ``--<name>`` and as the DAG param ``<name>`` (``name`` defaults to the field)."""

    asset: str
    model: type[BaseModel]
    field: str
    name: str = ""
    #: the option's default where it differs from the field's (the DAGs' candidate list)
    override: Any = None

    @property
    def param(self) -> str:
        return self.name or self.field

    @property
    def info(self) -> FieldInfo:
        return self.model.model_fields[self.field]

    def default(self) -> Any:
        if self.override is not None:
            return self.override
        return self.info.get_default(call_default_factory=True)


def asset_configs(
    options: Sequence[ConfigOption], values: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``{asset: {field: value}}`` from option values by param name; None means not given."""
    config: dict[str, dict[str, Any]] = {}
    for option in options:
        value = values.get(option.param)
        if value is not None:
            config.setdefault(option.asset, {})[option.field] = value
    return config


def param_map(options: Sequence[ConfigOption]) -> ParamMap:
    return {o.param: (o.asset, o.field) for o in options}


# --- Typer --------------------------------------------------------------------------------


def _typer_parameter(option: ConfigOption) -> inspect.Parameter:
    info = option.info
    bounds: dict[str, Any] = {}
    help_text = info.description or ""
    for item in info.metadata:
        if isinstance(item, Ge):
            bounds["min"] = item.ge
        elif isinstance(item, Le):
            bounds["max"] = item.le
        elif isinstance(item, Gt):  # checked by pydantic before anything runs
            help_text += f" (> {item.gt})"
        elif isinstance(item, Lt):
            help_text += f" (< {item.lt})"
    annotation = info.annotation
    if get_origin(annotation) is list:  # a repeatable option
        (item,) = get_args(annotation)
        if get_origin(item) is Literal:  # Typer takes choices in a list only as an Enum
            item = StrEnum(option.param, {str(v): str(v) for v in get_args(item)})
        annotation = list[item]  # type: ignore[valid-type]
    default = option.default()
    flag = f"--{option.param.replace('_', '-')}"
    is_flag = annotation is bool or annotation == bool | None  # None: left to the config
    decls = [f"{flag}/--no-{flag[2:]}"] if is_flag else [flag]
    typer_option = typer.Option(*decls, help=help_text, show_default=True, **bounds)
    return inspect.Parameter(
        option.param,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[annotation, typer_option],
    )


def _plain(value: Any) -> Any:
    """Enum members (choices in a list) back to their values."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.value if isinstance(value, StrEnum) else value


def with_options(options: Sequence[ConfigOption]) -> Callable[[Callable[..., Any]], Any]:
    """Give a command one option per `ConfigOption`; it receives them as ``config``
    (``{asset: {field: value}}``) beside its own parameters."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)  # Typer reads them from here
        own = [p for p in signature.parameters.values() if p.name != "config"]
        made = [_typer_parameter(o) for o in options]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {o.param: _plain(kwargs.pop(o.param)) for o in options}
            return fn(config=asset_configs(options, values), **kwargs)

        command.__signature__ = signature.replace(parameters=[*own, *made])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *made]}
        del command.__wrapped__  # Typer must read the signature above, not fn's
        return command

    return wrap


# --- Airflow ------------------------------------------------------------------------------


def param_schema(option: ConfigOption) -> dict[str, Any]:
    """The field's JSON schema as Airflow Param keywords. A None default ("not given") is ""
    for a string, which a form can hold, and null for a number or a choice."""
    schema = dict(option.model.model_json_schema()["properties"][option.field])
    schema.pop("title", None)
    schema.pop("default", None)
    default = option.default()
    nullable = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if nullable:
        schema.update(nullable[0])
        if schema.get("type") == "string" and "enum" not in schema:
            default = "" if default is None else default
        elif "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return {"default": default, **schema}
