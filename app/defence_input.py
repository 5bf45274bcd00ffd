"""The defence picker shared by the pages: registry choice, Params widgets, the paper cited,
and the face protected with it (directly for closed-form defences; optimising ones run as a
job on the Protect page and their result is kept in the session for the other pages).

The choice lives in the session store: every page that draws the picker shows the same
defence and values, and pages that do not draw it read `current_defence()`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import streamlit as st
import torch
from pydantic import ValidationError

from app.params_form import params_form, stored_values
from app.state import CurrentFace, defence, kept, kept_widget
from facepriv_core import defences, faces
from facepriv_core.defences.base import Defence, DefenceParams, Protected
from facepriv_core.defences.keys import KeySource

DEFAULT_DEFENCE = "pixelate"
REPRODUCIBLE_KEY = "reproducible_key"
_PROTECTIONS = "_protections"
MAX_KEPT = 48


@dataclass(repr=False)
class Protection:
    defence: Defence
    params: DefenceParams
    seed: int
    original: torch.Tensor
    protected: Protected
    face_label: str = ""

    @property
    def key_fingerprint(self) -> str | None:
        key = self.protected.key
        return None if key is None else key.fingerprint()

    @property
    def wire_text(self) -> str:
        p = self.protected
        return f"{p.wire_kind} {'x'.join(map(str, p.wire_shape))}, {p.wire_bytes:,} bytes"

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    def __repr__(self) -> str:
        return f"Protection({self.defence.name}, {self.wire_text})"


def _label(n: str) -> str:
    d = defences.get(n)
    title = getattr(d, "title", n)
    return f"{n}: {title}" + (" (optimising, runs as a job)" if d.optimising else "")


def pick_defence(default: str = DEFAULT_DEFENCE, key: str = "defence_name",
                 params_key: str = "params") -> tuple[Defence, DefenceParams, int] | None:
    """Render the picker in the current container; None (with a message) on invalid params."""
    names = defences.names()
    name = kept_widget(st.selectbox, "Defence", options=names, index=names.index(default),
                       key=key, format_func=_label)
    d = defence(name)
    st.markdown(f"**{d.title}**")
    if d.paper is not None:
        st.caption(d.paper.cite())
    values = params_form(d.Params, key=f"{params_key}.{name}")
    seed = int(kept_widget(st.number_input, "seed", value=0, min_value=0,
                           max_value=2**53 - 1, step=1, key=f"{params_key}.seed",
                           help="seeds the defence's randomness (noise, optimisation)"))
    if d.keyed:
        kept_widget(st.checkbox, "reproducible key, not secret", value=False,
                    key=REPRODUCIBLE_KEY,
                    help="derive the client key from the seed, so a run can be repeated; "
                         "anyone who knows the seed can rebuild the key. Unchecked, this "
                         "session holds a secret key drawn from OS entropy.")
    try:
        return d, d.Params(**values), seed
    except ValidationError as exc:
        st.error(f"Invalid parameters: {exc.errors()[0]['msg']}")
        return None


def current_defence() -> tuple[Defence, DefenceParams, int]:
    """The defence the Protect page's picker shows, without drawing it."""
    name = kept("defence_name", DEFAULT_DEFENCE)
    d = defence(name)
    try:
        params = d.Params(**stored_values(d.Params, f"params.{name}"))
    except ValidationError:
        params = d.Params()
    return d, params, int(kept("params.seed", 0))


def reproducible_key() -> bool:
    return bool(kept(REPRODUCIBLE_KEY, False))


def signature(face: CurrentFace, d: Defence, params: DefenceParams, seed: int) -> str:
    """Identifies one protection of one face in this session (the face digest stays in memory)."""
    blob = json.dumps([d.name, params.model_dump(mode="json"), seed, reproducible_key()],
                      sort_keys=True).encode()
    return hashlib.sha256(blob + face.digest.encode()).hexdigest()[:16]


def session_keys(face: CurrentFace, d: Defence, params: DefenceParams, seed: int
                 ) -> KeySource:
    """The client key source for this protection: from the seed when the user ticked
    "reproducible key, not secret", else derived from this session's secret (OS entropy), so
    the key stays the same across reruns of one session and differs between sessions."""
    if reproducible_key():
        return KeySource.from_seed(seed)
    master = st.session_state.setdefault("_client_key_source", KeySource.secret())
    return master.derive(signature(face, d, params, seed))


def run_protection(face: CurrentFace, d: Defence, params: DefenceParams, seed: int,
                   progress: Any = None, cancel: Any = None,
                   keys: KeySource | None = None) -> Protection:
    """Protect one face; keyed defences draw a fresh secret key when `keys` is None."""
    x = faces.chips_to_tensor(face.face.chip150)
    protected = d.protect_keyed(x, params, torch.Generator().manual_seed(seed),
                                keys if keys is not None else KeySource.secret(),
                                progress=progress, cancel=cancel)
    return Protection(d, params, seed, x, protected, face.label)


def protections() -> dict[str, Protection]:
    """Protections done in this session, by `signature` (optimising ones come from jobs)."""
    done: dict[str, Protection] = st.session_state.setdefault(_PROTECTIONS, {})
    return done


def protect_face(face: CurrentFace, d: Defence, params: DefenceParams, seed: int,
                 quiet: bool = False) -> Protection | None:
    """The protected face: computed now for closed-form defences (once per session and
    signature); for optimising ones, the result the Protect page's job left in this session
    (or a message saying to run it)."""
    sig = signature(face, d, params, seed)
    done = protections()
    if sig in done:
        return done[sig]
    if d.optimising:
        if not quiet:
            st.info(f"{d.name} optimises each face: run it on the Protect page first (it runs "
                    "as a job with progress); its result is then used here.")
        return None
    try:
        done[sig] = run_protection(face, d, params, seed,
                                   keys=session_keys(face, d, params, seed))
        while len(done) > MAX_KEPT:  # slider moves make many; the oldest go first
            done.pop(next(iter(done)))
    except (ValueError, RuntimeError) as exc:
        st.error(f"{d.name} could not protect this face: {exc}")
        return None
    return done[sig]
