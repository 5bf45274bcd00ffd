"""Sidebar shown on every page: the compute device, where audits run, which models load."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import streamlit as st

from app.state import model_card, model_statuses
from facepriv_core.faces.detect import DETECTORS as DETECTOR_CHOICES

#: session_state key of the detector the face pickers use (app/face_input.py).
DETECTOR_KEY = "face_detector"


def device_label() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "GPU: Apple MPS"
    return "CPU (no GPU found)"


@st.cache_resource(show_spinner="connecting to Ray...")
def _runner(name: str, address: str | None) -> Any:
    from facepriv_core.runners import get_runner

    return get_runner(name, address=address)


def selected_runner() -> Any:
    """The audit runner chosen in the sidebar (local unless Ray was picked); same numbers."""
    name = st.session_state.get("runner", "local")
    if name != "ray":
        return _runner("local", None)
    return _runner("ray", st.session_state.get("ray_address") or None)


def runner_choice() -> None:
    """Local process or a Ray cluster (a local one when no address is given)."""
    if os.environ.get("FACEPRIV_HOSTED") == "1":
        return  # hosted: no server-side connection targets
    has_ray = importlib.util.find_spec("ray") is not None
    st.selectbox("Runner", ["local", "ray"] if has_ray else ["local"], key="runner",
                 help="where audits run: this process, or a Ray cluster "
                      "(pip install '.[ray]'); the numbers are the same")
    if st.session_state.get("runner") == "ray":
        st.text_input("Ray address", key="ray_address", placeholder="empty: a local cluster")


def render_sidebar() -> None:
    with st.sidebar:
        st.markdown("### FacePriv")
        st.caption("Audit face-privacy defences with real models and real attacks.")
        st.markdown(f"**Device:** {device_label()}")
        runner_choice()
        st.selectbox("Face detector", DETECTOR_CHOICES, key=DETECTOR_KEY,
                     help="hog: fast. mmod: dlib's CNN, slower, finds harder faces. "
                          "auto: hog, then mmod when hog finds no confident face.")
        with st.expander("Models", expanded=False):
            for s in model_statuses():
                # plain text marks: ":material/..." icons can make the browser fetch from a CDN
                mark = "" if s.available else " - unavailable"
                with st.popover(f"{s.name} ({s.task}){mark}", width="stretch"):
                    if not s.available:
                        st.warning(f"Unavailable: {s.reason}")
                    st.markdown(model_card(s.name))
