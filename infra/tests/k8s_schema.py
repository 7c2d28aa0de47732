"""Kubernetes manifests checked offline against the API's own types, strictly.

The types are those of the official Kubernetes Python client (`kubernetes.client.models`,
generated from the API's OpenAPI document; installed with Airflow's cncf.kubernetes
provider): every field must be one of its type's, of the right kind, and the required ones
present. What only a cluster can check (admission, quotas, images) is listed in
infra/deploy/README.md.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client import models

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}


def class_name(doc: dict[str, Any]) -> str:
    """``apps/v1`` + ``Deployment`` → ``V1Deployment``."""
    version = doc["apiVersion"].rsplit("/", 1)[-1]
    return f"{version[0].upper()}{version[1:]}{doc['kind']}"


def problems(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` is not a valid object of its kind; empty when it is."""
    name = class_name(doc)
    if not hasattr(models, name):
        return [f"{doc['apiVersion']} {doc['kind']}: not a kind this API knows"]
    found = _walk(doc, name, doc["kind"])
    if not found:  # required fields: the client's own constructors check them
        try:
            client.ApiClient()._ApiClient__deserialize(doc, name)
        except ValueError as err:
            found.append(f"{doc['kind']}: {err}")
    return found


def _walk(value: Any, type_name: str, path: str) -> list[str]:
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: a list expected, got {type(value).__name__}"]
        inner = type_name[5:-1]
        return [p for i, item in enumerate(value) for p in _walk(item, inner, f"{path}[{i}]")]
    if type_name.startswith(("dict(", "dict[")):  # the client has written both
        if not isinstance(value, dict):
            return [f"{path}: a map expected, got {type(value).__name__}"]
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return [p for k, item in value.items() for p in _walk(item, inner, f"{path}.{k}")]
    if type_name == "object":  # int-or-string, quantities, free-form
        return []
    if type_name in PRIMITIVES:
        expected = PRIMITIVES[type_name]
        ok = isinstance(value, expected) and not (type_name != "bool" and value is True)
        return [] if ok else [f"{path}: {type_name} expected, got {value!r}"]
    klass = getattr(models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: a {type_name} object expected, got {type(value).__name__}"]
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    found = []
    for key, item in value.items():
        if key not in by_key:
            found.append(f"{path}.{key}: not a field of {type_name}")
        else:
            found += _walk(item, klass.openapi_types[by_key[key]], f"{path}.{key}")
    return found
