"""Attack page: launch the attacks that apply to the defence's wire as background jobs, watch
them live (progress, the reconstruction improving, metrics), cancel them, compare results."""

from __future__ import annotations

from typing import Any

import streamlit as st
from pydantic import ValidationError

from app.defence_input import Protection, pick_defence, protect_face
from app.face_input import pick_face
from app.params_form import params_form
from facepriv_core import attacks, faces
from facepriv_core.attacks.base import AttackCase
from facepriv_core.jobs import FINISHED, JobContext, JobHandle, JobStatus, default_runner

st.title("Attack")
_, face = pick_face()
if face is None:
    st.stop()
with st.expander("Defence", expanded=False):
    choice = pick_defence()
if choice is None:
    st.stop()
run = protect_face(face, *choice)
if run is None:
    st.stop()

jobs: dict[str, JobHandle] = st.session_state.setdefault("attack_jobs", {})


def submit(name: str, params: Any, protection: Protection) -> JobHandle:
    """Queue one attack on the shared runner; the handle lives in this session only."""
    attack = attacks.get(name)
    case = AttackCase(original=protection.original, protected=protection.protected,
                      defence=protection.defence, defence_params=protection.params,
                      seed=protection.seed)

    def work(ctx: JobContext) -> Any:
        return attack.run(case, params, progress=ctx.progress, cancel=ctx.cancelled)

    meta = {"defence": protection.defence.name, "params": protection.params.model_dump(),
            "seed": protection.seed, "original": faces.tensor_to_chips(protection.original)[0],
            "wire": protection.protected.preview[0], "threat_model": attack.threat.sentence}
    return default_runner().submit(work, name=name, meta=meta)


st.subheader("Attacks on this wire")
chosen: dict[str, Any] = {}
for name in attacks.names():
    attack = attacks.get(name)
    reason = attack.applicable(run.protected, run.defence)
    picked = st.checkbox(f"**{attack.title}** (`{name}`)", key=f"attack.{name}",
                         disabled=reason is not None, help=reason)
    st.caption(reason or f"Threat model: {attack.threat.sentence}")
    if picked and reason is None:
        with st.expander(f"{name} parameters"):
            values = params_form(attack.Params, key=f"attack_params.{name}")
        try:
            chosen[name] = attack.Params(**values)
        except ValidationError as exc:
            st.error(f"{name}: invalid parameters: {exc.errors()[0]['msg']}")

if st.button("Launch", type="primary", disabled=not chosen):
    for name, params in chosen.items():
        jobs[name] = submit(name, params, run)


def show_result(name: str, handle: JobHandle) -> None:
    result = handle.result
    means = result.aggregates
    st.dataframe({"metric": list(means), "mean": list(means.values())}, hide_index=True)
    if result.reconstructions is not None:
        cols = st.columns(3)
        cols[0].image(face.chip150, caption="original", width=150)
        cols[1].image(run.protected.preview[0], caption="what the server received", width=150)
        cols[2].image(faces.tensor_to_chips(result.reconstructions)[0],
                      caption=f"{name} reconstruction", width=150)


@st.fragment(run_every=1.0)
def live_panel() -> None:
    """Polled every second: the page stays responsive while jobs run."""
    for name, handle in list(jobs.items()):
        with st.container(border=True):
            st.markdown(f"**{name}**: {handle.status.value}, {handle.elapsed:.1f} s")
            if handle.status not in FINISHED:
                st.progress(handle.fraction)
                preview = handle.latest_preview
                if preview is not None:
                    st.image(preview, caption="latest reconstruction", width=150)
                latest = handle.latest
                if latest is not None and latest.metrics:
                    st.caption(", ".join(f"{k} {v:.3f}" for k, v in latest.metrics.items()))
                if st.button("Cancel", key=f"cancel.{name}.{handle.id}"):
                    handle.cancel()
            elif handle.status == JobStatus.DONE:
                show_result(name, handle)
            elif handle.status == JobStatus.FAILED:
                st.error(f"{name} failed: {handle.error}")
            else:
                st.warning(f"{name} was cancelled.")


live_panel()
