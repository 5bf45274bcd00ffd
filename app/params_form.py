"""Widgets drawn from a pydantic Params model: sliders with the declared bounds, select boxes
for choices, a picker of this machine's datasets for dataset fields, help text from the field
descriptions. Adding a defence needs no UI code; values survive page changes."""

from __future__ import annotations

import typing
from enum import Enum
from typing import Any

import annotated_types
import streamlit as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.state import kept_widget

SLIDER_SPAN = 10_000  # wider integer ranges (seeds) get a number box, not a slider
#: str fields whose value is a dataset spec: drawn as a picker of the datasets found here.
DATASET_FIELDS = ("aux", "dataset", "aux_dataset")
DEVICES = ("auto", "cpu", "cuda", "mps")


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    lo: Any = None
    hi: Any = None
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge | annotated_types.Gt):
            lo = getattr(m, "ge", None) if isinstance(m, annotated_types.Ge) else m.gt
        if isinstance(m, annotated_types.Le | annotated_types.Lt):
            hi = getattr(m, "le", None) if isinstance(m, annotated_types.Le) else m.lt
    return lo, hi


def choices(name: str, field: FieldInfo) -> list[Any] | None:
    """The values a field may take, when it is a choice: a Literal, an Enum, declared
    `json_schema_extra={"choices": [...]}`, a dlib-resnet `stage` or a compute `device`."""
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        return list(typing.get_args(ann))
    if isinstance(ann, type) and issubclass(ann, Enum):
        return [m.value for m in ann]
    extra = field.json_schema_extra
    declared = extra.get("choices") if isinstance(extra, dict) else None
    if isinstance(declared, list):
        return list(declared)
    if ann is str and name == "stage":
        from facepriv_core.models.dlib_resnet import STAGES

        return list(STAGES)
    if ann is str and name == "device":
        return list(DEVICES)
    return None


def dataset_picker(label: str, default: str, key: str, help_text: str | None,
                   empty_means: str | None = None) -> str:
    """A select box of the datasets on this machine (plus 'other...' for a typed spec).
    `empty_means` labels the empty value, for fields whose engine default is this machine's
    own choice (e.g. the auxiliary set)."""
    from facepriv_core import data_sources
    from facepriv_core.limits import current

    # Hosted mode: no typed specs and no server paths shown, so visitors cannot probe which
    # paths exist on the server; only the datasets found here, by name.
    server_paths = current().server_paths
    found = data_sources.available_datasets()
    labels = {d.spec: f"{d.name}: {d.description}" + (f" ({d.path})" if server_paths else "")
              for d in found}
    if empty_means is not None:
        labels[""] = empty_means
    other = "other (type a dataset spec)"
    options = [*([""] if empty_means is not None else []), *[d.spec for d in found],
               *([other] if server_paths else [])]
    if not options:
        st.info("No dataset is available on this server: use a zip upload.")
        return ""
    index = options.index(default) if default in options else 0
    picked = kept_widget(st.selectbox, label, options=options, index=index, key=key,
                         help=help_text, format_func=lambda s: labels.get(s, s))
    if picked == other:
        return str(kept_widget(st.text_input, f"{label}: dataset spec", value=default,
                               key=f"{key}.typed", help="olivetti:PATH, sfhq:PATH, "
                               "folder:PATH (one sub-folder per person) or lfw"))
    return str(picked)


def _aux_default_label() -> str:
    from facepriv_core import data_sources

    found = data_sources.default_aux()
    return f"this machine's default ({found})" if found else \
        "none found here: choose 'other' and type a spec"


def params_form(model: type[BaseModel], key: str) -> dict[str, Any]:
    """Render one widget per field of `model`; return the chosen values."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        label, help_text, default = name.replace("_", " "), field.description, field.default
        ann = field.annotation
        wkey = f"{key}.{name}"
        lo, hi = _bounds(field)
        options = choices(name, field)
        if options is not None:
            index = options.index(default) if default in options else 0
            values[name] = kept_widget(st.selectbox, label, options=options, index=index,
                                       help=help_text, key=wkey)
        elif ann is str and name in DATASET_FIELDS:
            values[name] = dataset_picker(label, default, wkey, help_text,
                                          empty_means=_aux_default_label())
        elif ann is bool:
            values[name] = kept_widget(st.checkbox, label, value=default, help=help_text,
                                       key=wkey)
        elif ann is int and lo is not None and hi is not None and hi - lo <= SLIDER_SPAN:
            values[name] = kept_widget(st.slider, label, min_value=int(lo), max_value=int(hi),
                                       value=int(default), help=help_text, key=wkey)
        elif ann is float and lo is not None and hi is not None:
            values[name] = kept_widget(st.slider, label, min_value=float(lo),
                                       max_value=float(hi), value=float(default),
                                       help=help_text, key=wkey)
        elif ann is int:
            values[name] = int(kept_widget(
                st.number_input, label, value=int(default), step=1,
                min_value=None if lo is None else int(lo),
                max_value=None if hi is None else int(min(hi, 2**53 - 1)),
                help=help_text, key=wkey))
        elif ann is float:
            values[name] = float(kept_widget(st.number_input, label, value=float(default),
                                             help=help_text, key=wkey))
        elif ann is str:
            values[name] = kept_widget(st.text_input, label, value=default, help=help_text,
                                       key=wkey)
        # Optional paths/objects (e.g. a trained checkpoint) keep their default here.
    return values


def stored_values(model: type[BaseModel], key: str) -> dict[str, Any]:
    """The values `params_form(model, key)` last showed, without drawing anything (pages that
    only summarise the current defence); fields never drawn keep their defaults."""
    from app.state import kept

    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        wkey = f"{key}.{name}"
        value = kept(wkey)
        if field.annotation is str and name in DATASET_FIELDS and value is not None \
                and str(value).startswith("other"):
            value = kept(f"{wkey}.typed", "")
        if value is not None:
            out[name] = value
    return out


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
