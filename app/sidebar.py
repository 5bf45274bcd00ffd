"""Sidebar shown on every page: the compute device and which models can load here."""

from __future__ import annotations

import streamlit as st

from app.state import model_card, model_statuses


def device_label() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "GPU: Apple MPS"
    return "CPU (no GPU found)"


def render_sidebar() -> None:
    with st.sidebar:
        st.markdown("### FacePriv")
        st.caption("Audit face-privacy defences with real models and real attacks.")
        st.markdown(f"**Device:** {device_label()}")
        with st.expander("Models", expanded=False):
            for s in model_statuses():
                mark = ":material/check_circle:" if s.available else ":material/block:"
                with st.popover(f"{mark} {s.name} ({s.task})", width="stretch"):
                    if not s.available:
                        st.warning(f"Unavailable: {s.reason}")
                    st.markdown(model_card(s.name))
