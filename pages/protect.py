"""Protect page: pick a defence and its parameters, see the original, the protected output and
what the server receives, with utility, image metrics and a privacy figure (does the wire
still match the person?) with the engine's verdict. Optimising defences run as a job with
progress, phase and cancel. The choice stays current on every page."""

from __future__ import annotations

import functools
from typing import Any

import streamlit as st
import torch

from app.defence_input import (
    Protection,
    protect_face,
    protections,
    run_protection,
    session_keys,
    signature,
)
from app.defence_input import pick_defence as pick
from app.errors import show_job_error
from app.face_input import context_bar
from app.job_status import progress_block
from app.results import metric_help, verdict_badge, verdict_of
from app.service_banner import service_banner
from app.state import CurrentFace, add_run, recogniser, runs
from facepriv_core import attacks, faces, metrics
from facepriv_core.attacks.base import AttackCase, ProgressEvent
from facepriv_core.defences.base import Defence, DefenceParams
from facepriv_core.defences.keys import KeySource
from facepriv_core.jobs import JobContext, JobHandle, JobStatus, default_runner

st.title("Protect")
face = context_bar()

left, right = st.columns([1, 3])
with left:
    choice = pick()
if choice is None:
    st.stop()
d, params, seed = choice
with right:
    service_banner(d, params)

_PRIVACY = "_protect_privacy"


def privacy_check(run: Protection, sig: str) -> Any:
    """The identity attack (authorised recogniser only, one face) on this wire, once per
    protection: the engine's numbers and verdict, shown next to utility."""
    done: dict[str, Any] = st.session_state.setdefault(_PRIVACY, {})
    if sig not in done:
        attack = attacks.get("identity")
        if attack.applicable(run.protected, run.defence) is not None:
            return None
        case = AttackCase(original=run.original, protected=run.protected, defence=run.defence,
                          defence_params=run.params, seed=run.seed)
        try:
            done[sig] = attack.run(case, attack.Params.model_validate(
                {"other_recognisers": False}))
        except (ValueError, RuntimeError) as exc:
            st.warning(f"The privacy check could not run: {exc}")
            return None
    return done[sig]


def show(run: Protection, sig: str) -> None:
    protected = run.protected
    rec = recogniser()
    with torch.no_grad():
        utility = float(metrics.cosine(protected.utility_embedding(rec),
                                       rec.embed(run.original))[0])
    cols = st.columns(3)
    cols[0].image(face.face.chip150, caption="original (aligned)", width="stretch")
    if protected.image is not None:
        cols[1].image(faces.tensor_to_chips(protected.image)[0], caption="protected output",
                      width="stretch")
    else:
        cols[1].info("This defence sends features, not an image: nothing viewable is "
                     "produced besides what the server receives.")
    cols[2].image(protected.preview[0], width="stretch",
                  caption=f"what the server receives: {run.wire_text}")

    st.markdown("##### Utility: what the authorised service keeps")
    m = st.columns(4)
    m[0].metric("utility cosine", f"{utility:.4f}",
                help=metric_help("utility_cosine"))
    if protected.image is not None:
        shown = faces.tensor_to_chips(protected.image)[0]
        m[1].metric("SSIM to original", f"{metrics.ssim(face.face.chip150, shown):.3f}",
                    help=metric_help("ssim"))
        m[2].metric("PSNR (dB)", f"{metrics.psnr(face.face.chip150, shown):.1f}",
                    help=metric_help("psnr"))
    for k, v in list(protected.metrics.items())[:1]:
        m[3].metric(k.replace("_", " "), f"{v:.3f}", help=metric_help(k))

    st.markdown("##### Privacy: does the wire still match this person?")
    result = privacy_check(run, sig)
    if result is None:
        st.caption("No identity check applies to this wire; run the attacks on the Attack page.")
    else:
        agg = result.aggregates
        p = st.columns(3)
        p[0].metric("identity cosine (dlib-resnet)", f"{agg.get('cosine', float('nan')):.3f}",
                    help=metric_help("cosine", "attack"))
        p[1].metric("matches the person", "yes" if agg.get("match_rate", 0) >= 0.5 else "no",
                    help=metric_help("match_rate", "attack"))
        with p[2]:
            verdict_badge(verdict_of(result), "identity")
        st.caption("One face, the authorised recogniser only: the Attack page runs every "
                   "recogniser and the reconstruction attacks; Curves and Benchmark measure "
                   "on a dataset.")
    if protected.key is None:
        st.caption("This defence uses no secret key.")
    else:
        st.caption(f"Client key: {protected.key.label}, {protected.key.nbytes:,} bytes, "
                   f"fingerprint `{protected.key.fingerprint()}`, kept on the client (never "
                   "shown, logged or exported unless you ask).")
    recorded = {r.extra.get("signature") for r in runs("protect")}
    if sig not in recorded and st.button("Keep this protection in the run history",
                                         help="it then appears on the Report page"):
        record(run, sig, None)
        st.rerun()
    elif sig in recorded:
        st.caption("In the run history (see the Report page).")


def record(run: Protection, sig: str, handle: JobHandle | None) -> None:
    result = st.session_state.get(_PRIVACY, {}).get(sig)
    add_run(kind="protect", name=f"protect with {run.defence.name}", face_label=face.label,
            defence=run.defence.name, params=run.params_dict(), seed=run.seed, handle=handle,
            wire=run.wire_text, wire_preview=run.protected.preview[0],
            original=face.face.chip150, key_fingerprint=run.key_fingerprint,
            result=result, extra={"signature": sig})


def protect_job(face: CurrentFace, d: Defence, params: DefenceParams, seed: int,
                keys: KeySource, ctx: JobContext) -> Protection:
    def progress(step: int, total: int, phase: str = "", preview: Any = None) -> None:
        ctx.progress(ProgressEvent(step, total, preview=preview, phase=phase))

    return run_protection(face, d, params, seed, progress=progress, cancel=ctx.cancelled,
                          keys=keys)


sig = signature(face, d, params, seed)
if not d.optimising:
    run = protect_face(face, d, params, seed)
    if run is not None:
        with right:
            show(run, sig)
    st.stop()

done = protections()
jobs: dict[str, JobHandle] = st.session_state.setdefault("protect_jobs", {})
with right:
    can_start = sig not in done and (sig not in jobs or jobs[sig].status in (
        JobStatus.FAILED, JobStatus.CANCELLED))
    if can_start and st.button(f"Protect with {d.name} (runs as a job)", type="primary"):
        jobs[sig] = default_runner().submit(
            functools.partial(protect_job, face, d, params, seed,
                              session_keys(face, d, params, seed)), name=f"protect {d.name}")
        add_run(kind="protect", name=f"protect with {d.name}", face_label=face.label,
                defence=d.name, params=params.model_dump(mode="json"), seed=seed,
                handle=jobs[sig], original=face.face.chip150, extra={"signature": sig})


@st.fragment(run_every=1.0)
def live() -> None:
    handle = jobs.get(sig)
    if sig in done:
        show(done[sig], sig)
    elif handle is not None and handle.status == JobStatus.DONE:
        done[sig] = handle.result
        st.rerun()
    elif handle is not None and handle.status == JobStatus.FAILED:
        show_job_error(handle, d.name)
    elif handle is not None and handle.status == JobStatus.CANCELLED:
        st.warning(f"{d.name} was cancelled.")
    elif handle is not None:
        progress_block(handle, default_phase="optimising", key=f"protect.{handle.id}")


with right:
    live()
