"""Widgets drawn from a pydantic Params model: sliders with the declared bounds, help text
from the field descriptions. Adding a defence needs no UI code."""

from __future__ import annotations

import typing
from typing import Any

import annotated_types
import streamlit as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

SLIDER_SPAN = 10_000  # wider integer ranges (seeds) get a number box, not a slider


def _bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge | annotated_types.Gt):
            lo = getattr(m, "ge", None) if isinstance(m, annotated_types.Ge) else m.gt
        if isinstance(m, annotated_types.Le | annotated_types.Lt):
            hi = getattr(m, "le", None) if isinstance(m, annotated_types.Le) else m.lt
    return lo, hi


def params_form(model: type[BaseModel], key: str) -> dict[str, Any]:
    """Render one widget per field of `model`; return the chosen values."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        label, help_text, default = name.replace("_", " "), field.description, field.default
        ann = field.annotation
        wkey = f"{key}.{name}"
        lo, hi = _bounds(field)
        if typing.get_origin(ann) is typing.Literal:
            options = list(typing.get_args(ann))
            values[name] = st.selectbox(label, options, index=options.index(default),
                                        help=help_text, key=wkey)
        elif ann is bool:
            values[name] = st.checkbox(label, value=default, help=help_text, key=wkey)
        elif ann is int and lo is not None and hi is not None and hi - lo <= SLIDER_SPAN:
            values[name] = st.slider(label, int(lo), int(hi), int(default), help=help_text,
                                     key=wkey)
        elif ann is float and lo is not None and hi is not None:
            values[name] = st.slider(label, float(lo), float(hi), float(default),
                                     help=help_text, key=wkey)
        elif ann is int:
            values[name] = int(st.number_input(label, value=int(default), step=1,
                                               min_value=None if lo is None else int(lo),
                                               max_value=None if hi is None else
                                               int(min(hi, 2**53 - 1)),
                                               help=help_text, key=wkey))
        elif ann is float:
            values[name] = float(st.number_input(label, value=float(default), help=help_text,
                                                 key=wkey))
        elif ann is str:
            values[name] = st.text_input(label, value=default, help=help_text, key=wkey)
        # Optional paths/objects (e.g. a trained checkpoint) keep their default here.
    return values


def numeric_fields(model: type[BaseModel], points: int = 5) -> dict[str, list[float | int]]:
    """Sweepable fields (int/float with both bounds) with default values spread around the
    field's default, inside its bounds."""
    out: dict[str, list[float | int]] = {}
    for name, field in model.model_fields.items():
        lo, hi = _bounds(field)
        if field.annotation not in (int, float) or lo is None or hi is None:
            continue
        if hi - lo > SLIDER_SPAN and field.annotation is int:
            continue  # seeds and the like are not a privacy knob
        base = field.default if field.default not in (None, 0) else (lo + hi) / 4 or 1
        raw = [lo, *[base * f for f in (0.5, 1, 2, 4)][:points - 1]]
        vals = sorted({min(hi, max(lo, v)) for v in raw})
        out[name] = [round(v) for v in vals] if field.annotation is int else \
            [round(float(v), 4) for v in vals]
    return out
