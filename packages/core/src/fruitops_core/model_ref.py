"""`ModelRef`: a registered model's ``models:/`` URI as one typed value, parsed in one place.

MLflow names a registered model by alias (``models:/NAME@ALIAS``, moves when the alias does)
or by version (``models:/NAME/VERSION``, pinned). Everything FruitOps records (a gate
verdict, a reference profile, a scored table) names the pinned form, so the version that
answered can be found again after the alias moved.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

_URI = re.compile(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))")


class ModelRef(BaseModel):
    """A registered model by name, and by alias or version (one of the two)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    alias: str | None = None
    version: int | None = Field(None, ge=1)

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; a ValueError naming the URI
        otherwise (a ``runs:/`` URI, a path)."""
        match = _URI.fullmatch(str(uri))
        if match is None:
            raise ValueError(
                f"model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION"
            )
        name, alias, version = match.groups()
        return cls(name=name, alias=alias, version=int(version) if version else None)

    @classmethod
    def parse_or_none(cls, uri: str) -> ModelRef | None:
        """The registered model ``uri`` names, or None for another kind of URI (runs:/, a
        folder) that MLflow loads as it is."""
        try:
            return cls.parse(uri)
        except ValueError:
            return None

    @classmethod
    def pinned(cls, name: str, version: int | str) -> ModelRef:
        """One registered version (not an alias that moves)."""
        return cls(name=name, version=int(version))

    def at(self, version: int | str) -> ModelRef:
        """This model pinned to ``version``, however it was named."""
        return ModelRef.pinned(self.name, version)

    @model_validator(mode="after")
    def _alias_or_version(self) -> ModelRef:
        if (self.alias is None) == (self.version is None):
            raise ValueError(f"models:/{self.name}: give an alias or a version, not both or none")
        return self

    @property
    def is_pinned(self) -> bool:
        return self.version is not None

    @property
    def uri(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"

    def __str__(self) -> str:
        return self.uri
