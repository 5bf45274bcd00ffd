"""The defence picker shared by the pages: registry choice, Params widgets, the paper cited,
and the face protected with it (directly for closed-form defences; optimising ones run as a
job on the Protect page and their result is kept in the session for the other pages)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import streamlit as st
import torch
from pydantic import ValidationError

from app.params_form import params_form
from app.state import defence
from facepriv_core import defences, faces
from facepriv_core.defences.base import Defence, DefenceParams, Protected
from facepriv_core.defences.keys import KeySource

REPRODUCIBLE_KEY = "reproducible_key"


@dataclass
class Protection:
    defence: Defence
    params: DefenceParams
    seed: int
    original: torch.Tensor
    protected: Protected


def pick_defence(default: str = "pixelate") -> tuple[Defence, DefenceParams, int] | None:
    """Render the picker in the current container; None (with a message) on invalid params."""
    names = defences.names()
    name = st.selectbox("Defence", names, index=names.index(default), key="defence_name",
                        format_func=lambda n: f"{n} (optimising: runs as a job)"
                        if defences.get(n).optimising else n)
    d = defence(name)
    st.markdown(f"**{d.title}**")
    if d.paper is not None:
        st.caption(d.paper.cite())
    values = params_form(d.Params, key=f"params.{name}")
    seed = int(st.number_input("seed", value=0, min_value=0, max_value=2**53 - 1, step=1,
                               key="protect_seed"))
    if d.keyed:
        st.checkbox("reproducible key, not secret", key=REPRODUCIBLE_KEY,
                    help="derive the client key from the seed, so a run can be repeated; "
                         "anyone who knows the seed can rebuild the key. Unchecked, this "
                         "session holds a secret key drawn from OS entropy.")
    try:
        return d, d.Params(**values), seed
    except ValidationError as exc:
        st.error(f"Invalid parameters: {exc.errors()[0]['msg']}")
        return None


def reproducible_key() -> bool:
    return bool(st.session_state.get(REPRODUCIBLE_KEY, False))


def signature(face: faces.FaceImage, d: Defence, params: DefenceParams, seed: int) -> str:
    """Identifies one protection of one face in this session (the face digest stays in memory)."""
    blob = json.dumps([d.name, params.model_dump(mode="json"), seed, reproducible_key()],
                      sort_keys=True).encode()
    return hashlib.sha256(blob + face.chip150.tobytes()).hexdigest()[:16]


def session_keys(face: faces.FaceImage, d: Defence, params: DefenceParams, seed: int
                 ) -> KeySource:
    """The client key source for this protection: from the seed when the user ticked
    "reproducible key, not secret", else derived from this session's secret (OS entropy), so
    the key stays the same across reruns of one session and differs between sessions."""
    if reproducible_key():
        return KeySource.from_seed(seed)
    master = st.session_state.setdefault("_client_key_source", KeySource.secret())
    return master.derive(signature(face, d, params, seed))


def run_protection(face: faces.FaceImage, d: Defence, params: DefenceParams, seed: int,
                   progress=None, cancel=None, keys: KeySource | None = None) -> Protection:
    """Protect one face; keyed defences draw a fresh secret key when `keys` is None."""
    x = faces.chips_to_tensor(face.chip150)
    protected = d.protect_keyed(x, params, torch.Generator().manual_seed(seed),
                                keys if keys is not None else KeySource.secret(),
                                progress=progress, cancel=cancel)
    return Protection(d, params, seed, x, protected)


def protect_face(face: faces.FaceImage, d: Defence, params: DefenceParams, seed: int
                 ) -> Protection | None:
    """The protected face: computed now for closed-form defences; for optimising ones, the
    result the Protect page's job left in this session (or a message saying to run it)."""
    if d.optimising:
        done = st.session_state.setdefault("protections", {})
        found = done.get(signature(face, d, params, seed))
        if found is None:
            st.info(f"{d.name} optimises each face: run it on the Protect page first (it runs "
                    "as a job with progress); its result is then used here.")
        return found
    try:
        return run_protection(face, d, params, seed, keys=session_keys(face, d, params, seed))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{d.name} could not protect this face: {exc}")
        return None
