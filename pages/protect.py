"""Protect page: pick a defence and its parameters, see the original, the protected output and
what the server receives, with instant utility and image metrics."""

from __future__ import annotations

import streamlit as st
import torch

from app.defence_input import pick_defence, protect_face
from app.face_input import pick_face
from app.state import recogniser
from facepriv_core import faces, metrics

st.title("Protect")
_, face = pick_face()
if face is None:
    st.stop()

left, right = st.columns([1, 3])
with left:
    choice = pick_defence()
if choice is None:
    st.stop()
run = protect_face(face, *choice)
if run is None:
    st.stop()
protected = run.protected
rec = recogniser()
with torch.no_grad():
    utility = float(metrics.cosine(protected.utility_embedding(rec), rec.embed(run.original))[0])

with right:
    cols = st.columns(3)
    cols[0].image(face.chip150, caption="original (aligned)", width="stretch")
    if protected.image is not None:
        cols[1].image(faces.tensor_to_chips(protected.image)[0], caption="protected output",
                      width="stretch")
    else:
        cols[1].info("This defence sends features, not an image: nothing viewable is "
                     "produced besides what the server receives.")
    shape = "x".join(map(str, protected.wire_shape))
    cols[2].image(protected.preview[0], width="stretch",
                  caption=f"what the server receives: {protected.wire_kind} {shape}, "
                          f"{protected.wire_bytes:,} bytes")
    m = st.columns(4)
    m[0].metric("utility cosine", f"{utility:.4f}",
                help="authorised embedding from the wire vs the unprotected embedding")
    if protected.image is not None:
        shown = faces.tensor_to_chips(protected.image)[0]
        m[1].metric("SSIM to original", f"{metrics.ssim(face.chip150, shown):.3f}")
        m[2].metric("PSNR (dB)", f"{metrics.psnr(face.chip150, shown):.1f}")
    for k, v in protected.metrics.items():
        m[3].metric(k.replace("_", " "), f"{v:.3f}")
    if protected.key is None:
        st.caption("This defence uses no secret key.")
    else:
        st.caption(f"Secret key: {protected.key.nbytes:,} bytes, kept on the client "
                   "(never shown, logged or exported unless you ask).")
