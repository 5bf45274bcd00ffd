"""Plain-data descriptions of every registered defence and attack, with their parameters.

The CLI's `facepriv defences` / `facepriv attacks`, the app and any API read the same
description, drawn from each plugin's class attributes and its pydantic `Params` schema, so a
new plugin is listed correctly without editing any front end.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from facepriv_core import attacks, defences

_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _field_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "choice"
    if "anyOf" in prop:
        return " | ".join(_field_type(p) for p in prop["anyOf"])
    return str(prop.get("type", "any"))


def describe_params(params_cls: type[BaseModel]) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, default, bounds, choices, description."""
    schema = params_cls.model_json_schema()
    props: dict[str, Any] = schema.get("properties", {})
    out = []
    for name, prop in props.items():
        if "$ref" in prop or "allOf" in prop:  # a Literal/enum defined once in $defs
            ref = (prop.get("$ref") or prop["allOf"][0]["$ref"]).rsplit("/", 1)[-1]
            prop = {**schema.get("$defs", {}).get(ref, {}), **prop}
        bounds = {op: prop[key] for key, op in _BOUNDS.items() if key in prop}
        out.append({
            "name": name,
            "type": _field_type(prop),
            "default": prop.get("default"),
            "bounds": bounds,
            "choices": prop.get("enum"),
            "description": prop.get("description", ""),
        })
    return out


def describe_defences() -> list[dict[str, Any]]:
    """Every registered defence: name, title, paper, wire kind, key/optimising, parameters."""
    rows = []
    for name, cls in defences.classes().items():
        paper = getattr(cls, "paper", None)
        rows.append({
            "name": name,
            "title": cls.title,
            "paper": paper.cite() if paper is not None else None,
            "wire_kind": str(cls.wire_kind),
            "optimising": bool(getattr(cls, "optimising", False)),
            "params": describe_params(cls.Params),
        })
    return rows


def describe_attacks() -> list[dict[str, Any]]:
    """Every registered attack: name, title, threat model, the wires it applies to, params."""
    rows = []
    for name, cls in attacks.classes().items():
        rows.append({
            "name": name,
            "title": cls.title,
            "threat_model": cls.threat.sentence,
            "attacker_knows": list(cls.threat.knows),
            "applies_to": sorted(str(k) for k in cls.applies_to),
            "params": describe_params(cls.Params),
        })
    return rows
