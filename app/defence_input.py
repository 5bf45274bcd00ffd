"""The defence picker shared by the pages: registry choice, Params widgets, the paper cited,
and the face protected with it."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch
from pydantic import ValidationError

from app.params_form import params_form
from app.state import defence
from facepriv_core import defences, faces
from facepriv_core.defences.base import Defence, DefenceParams, Protected


@dataclass
class Protection:
    defence: Defence
    params: DefenceParams
    seed: int
    original: torch.Tensor
    protected: Protected


def pick_defence(default: str = "pixelate") -> tuple[Defence, DefenceParams, int] | None:
    """Render the picker in the current container; None (with a message) on invalid params."""
    names = [n for n in defences.names() if not defences.get(n).optimising]
    name = st.selectbox("Defence", names, index=names.index(default), key="defence_name")
    d = defence(name)
    st.markdown(f"**{d.title}**")
    if d.paper is not None:
        st.caption(d.paper.cite())
    values = params_form(d.Params, key=f"params.{name}")
    seed = int(st.number_input("seed", value=0, step=1, key="protect_seed"))
    try:
        return d, d.Params(**values), seed
    except ValidationError as exc:
        st.error(f"Invalid parameters: {exc.errors()[0]['msg']}")
        return None


def protect_face(face: faces.FaceImage, d: Defence, params: DefenceParams, seed: int
                 ) -> Protection | None:
    """Protect the aligned face; a defence error becomes a message, never a traceback."""
    x = faces.chips_to_tensor(face.chip150)
    try:
        protected = d.protect(x, params, torch.Generator().manual_seed(seed))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{d.name} could not protect this face: {exc}")
        return None
    return Protection(d, params, seed, x, protected)
