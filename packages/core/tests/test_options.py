"""Options made from config fields: what the parser accepts and what a DAG Param says."""

from typing import Annotated, Literal

import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from fruitops_core.options import ConfigOption, param_map, param_schema, with_options


class Recipe(BaseModel):
    archs: list[Literal["cnn", "resnet18"]] = Field(default_factory=lambda: ["cnn"], min_length=1)
    epochs: int = Field(40, ge=1, le=500, description="most epochs")
    lr: float = Field(3e-3, gt=0, description="peak learning rate")
    augment: bool = Field(True, description="augment the batches")
    source: str | None = Field(None, description="where the photos are")
    precision: Literal["auto", "fp32"] = "auto"


OPTIONS = [ConfigOption("models/x", Recipe, f) for f in Recipe.model_fields]


def command_app(seen: list) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @with_options(OPTIONS)
    def train(config: dict, name: Annotated[str, typer.Argument()] = "run") -> None:
        seen.append((name, config))

    return app


def test_values_arrive_as_asset_config_with_defaults_and_none_left_out():
    seen: list = []
    runner = CliRunner()
    result = runner.invoke(
        command_app(seen), ["first", "--archs", "cnn", "--archs", "resnet18", "--no-augment"]
    )
    assert result.exit_code == 0, result.output
    ((name, config),) = seen
    assert name == "first"
    assert config == {
        "models/x": {
            "archs": ["cnn", "resnet18"],  # plain strings, not the Enum the parser used
            "epochs": 40,
            "lr": 3e-3,
            "augment": False,
            "precision": "auto",
        }
    }  # source (None) is "not given"


def test_choices_and_bounds_are_the_parser_s():
    runner = CliRunner()
    for args, named in (
        (["--archs", "vgg"], "--archs"),
        (["--precision", "int8"], "--precision"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "501"], "--epochs"),
    ):
        result = runner.invoke(command_app([]), args)
        assert result.exit_code == 2 and named in result.output, (args, result.output)
    help_text = runner.invoke(command_app([]), ["--help"], env={"COLUMNS": "200"}).output
    assert "most epochs" in help_text
    assert "peak learning rate (> 0)" in help_text  # a bound Typer cannot check, said


def test_param_schema_is_the_field_s_json_schema():
    schemas = {o.field: param_schema(o) for o in OPTIONS}
    assert schemas["epochs"] == {
        "default": 40,
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "description": "most epochs",
    }
    assert schemas["lr"]["exclusiveMinimum"] == 0
    assert schemas["archs"]["items"]["enum"] == ["cnn", "resnet18"]
    assert schemas["archs"]["minItems"] == 1
    assert schemas["source"] == {
        "default": "",  # empty means "not given" in a form
        "type": "string",
        "description": "where the photos are",
    }
    assert param_map(OPTIONS[:2]) == {
        "archs": ("models/x", "archs"),
        "epochs": ("models/x", "epochs"),
    }
