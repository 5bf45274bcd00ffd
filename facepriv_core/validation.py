"""Parameter validation whose errors a user can act on.

pydantic's own ValidationError text is several lines with a documentation link; users of the
CLI and the app need one line that says which value is wrong and what the valid parameters
are, with their bounds. `validate` builds a Params model and turns a failure into an
InvalidParamsError with exactly that.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from facepriv_core.errors import InvalidParamsError

M = TypeVar("M", bound=BaseModel)


def _bounds(field: FieldInfo) -> str:
    lo = hi = None
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            lo = f">= {m.ge}"
        elif isinstance(m, annotated_types.Gt):
            lo = f"> {m.gt}"
        elif isinstance(m, annotated_types.Le):
            hi = f"<= {m.le}"
        elif isinstance(m, annotated_types.Lt):
            hi = f"< {m.lt}"
    return " and ".join(b for b in (lo, hi) if b)


def _type_name(ann: Any) -> str:
    if typing.get_origin(ann) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(ann))
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if args and len(args) < len(typing.get_args(ann)):
        return _type_name(args[0]) + " or empty"
    return getattr(ann, "__name__", str(ann))


def describe_fields(model: type[BaseModel]) -> str:
    """'name (type, bounds, default X), ...' for every field of `model`."""
    parts = []
    for name, field in model.model_fields.items():
        bits = [_type_name(field.annotation)]
        bounds = _bounds(field)
        if bounds:
            bits.append(bounds)
        if not field.is_required():
            bits.append(f"default {field.default!r}")
        parts.append(f"{name} ({', '.join(bits)})")
    return ", ".join(parts) if parts else "none"


def explain(exc: ValidationError) -> str:
    """The errors of `exc` as one line: 'field: what is wrong; ...' (no input dump, no link)."""
    items = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        msg = "not a parameter" if err.get("type") == "extra_forbidden" else err.get("msg", "")
        items.append(f"{where}: {msg}")
    return "; ".join(items).replace("\n", " ")


def validate(model: type[M], values: Mapping[str, Any], what: str) -> M:
    """model(**values), or an InvalidParamsError naming the bad value and the valid fields."""
    try:
        return model(**dict(values))
    except ValidationError as exc:
        raise InvalidParamsError(f"invalid {what}: {explain(exc)}. Valid parameters: "
                                 f"{describe_fields(model)}") from None
    except TypeError as exc:  # e.g. non-string keys from a YAML mapping
        raise InvalidParamsError(f"invalid {what}: {exc}") from None
