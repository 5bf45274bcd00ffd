"""Protect page: pick a defence and its parameters, see the original, the protected output and
what the server receives, with instant utility and image metrics. Optimising defences run as
a job with progress and cancel."""

from __future__ import annotations

import streamlit as st
import torch

from app.defence_input import Protection, protect_face, run_protection, signature
from app.defence_input import pick_defence as pick
from app.face_input import pick_face
from app.state import recogniser
from facepriv_core import faces, metrics
from facepriv_core.jobs import FINISHED, JobHandle, JobStatus, default_runner

st.title("Protect")
_, face = pick_face()
if face is None:
    st.stop()

left, right = st.columns([1, 3])
with left:
    choice = pick()
if choice is None:
    st.stop()
d, params, seed = choice


def show(run: Protection) -> None:
    protected = run.protected
    rec = recogniser()
    with torch.no_grad():
        utility = float(metrics.cosine(protected.utility_embedding(rec),
                                       rec.embed(run.original))[0])
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
        st.caption(f"Client key: {protected.key.label}, {protected.key.nbytes:,} bytes, "
                   f"fingerprint {protected.key.fingerprint()}, kept on the client (never "
                   "shown, logged or exported unless you ask).")


if not d.optimising:
    run = protect_face(face, d, params, seed)
    if run is not None:
        with right:
            show(run)
    st.stop()

sig = signature(face, d, params, seed)
done: dict[str, Protection] = st.session_state.setdefault("protections", {})
jobs: dict[str, JobHandle] = st.session_state.setdefault("protect_jobs", {})
with right:
    if sig not in done and st.button(f"Protect with {d.name} (runs as a job)", type="primary"):
        jobs[sig] = default_runner().submit(
            lambda ctx, a=(face, d, params, seed): run_protection(
                *a, progress=lambda s, t: ctx.report(s, t), cancel=ctx.cancelled),
            name=f"protect {d.name}")


@st.fragment(run_every=1.0)
def live() -> None:
    handle = jobs.get(sig)
    if sig in done:
        show(done[sig])
    elif handle is not None and handle.status not in FINISHED:
        step = handle.latest.step if handle.latest else 0
        st.progress(handle.fraction, text=f"{d.name}: step {step}, {handle.elapsed:.0f} s")
        if st.button("Cancel", key=f"cancel_protect.{handle.id}"):
            handle.cancel()
    elif handle is not None and handle.status == JobStatus.DONE:
        done[sig] = handle.result
        show(handle.result)
    elif handle is not None and handle.status == JobStatus.FAILED:
        st.error(f"{d.name} failed: {handle.error}")
    elif handle is not None:
        st.warning(f"{d.name} was cancelled.")


with right:
    live()
