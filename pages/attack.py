"""Attack page: launch the attacks that apply to the current defence's wire as background jobs,
watch them live (queue position, phase, the reconstruction improving), cancel them. Every
launch is a new card in the run history, bound to the face, defence, parameters and wire it
attacked, with the engine's verdict; two cards can be compared side by side."""

from __future__ import annotations

from typing import Any

import streamlit as st
from pydantic import ValidationError

from app.defence_input import Protection, pick_defence, protect_face
from app.errors import show_job_error
from app.face_input import context_bar
from app.job_status import progress_block, status_text
from app.params_form import params_form
from app.results import metrics_table, verdict_badge, verdict_of
from app.state import CurrentFace, Run, add_run, kept_widget, runs
from facepriv_core import attacks, faces
from facepriv_core.attacks.base import AttackCase
from facepriv_core.jobs import JobContext, JobStatus, default_runner

st.title("Attack")
face = context_bar()
with st.expander("Change the defence (the same settings as on the Protect page)"):
    choice = pick_defence()
if choice is None:
    st.stop()
protection = protect_face(face, *choice)
if protection is None:
    st.stop()


def submit(name: str, params: Any, protection: Protection, face: CurrentFace) -> Run:
    """Queue one attack on the shared runner; the run (and its handle) live in this session."""
    attack = attacks.get(name)
    case = AttackCase(original=protection.original, protected=protection.protected,
                      defence=protection.defence, defence_params=protection.params,
                      seed=protection.seed)

    def work(ctx: JobContext) -> Any:
        return attack.run(case, params, progress=ctx.progress, cancel=ctx.cancelled)

    handle = default_runner().submit(work, name=name)
    return add_run(kind="attack", name=name, face_label=face.label,
                   defence=protection.defence.name, params=protection.params_dict(),
                   seed=protection.seed, handle=handle, wire=protection.wire_text,
                   wire_preview=protection.protected.preview[0], original=face.face.chip150,
                   key_fingerprint=protection.key_fingerprint,
                   extra={"attack_params": params.model_dump(mode="json"),
                          "threat_model": attack.threat.sentence, "attack_title": attack.title})


st.subheader("Attacks on this wire")
chosen: dict[str, Any] = {}
for name in attacks.names():
    attack = attacks.get(name)
    reason = attack.applicable(protection.protected, protection.defence)
    picked = kept_widget(st.checkbox, f"**{attack.title}** (`{name}`)", key=f"attack.{name}",
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
        submit(name, params, protection, face)


def run_header(run: Run) -> None:
    st.markdown(f"**{run.title}**: {status_text(run.handle)}")
    st.caption(f"face: {run.face_label} · defence `{run.defence}` ({run.params_text()}; "
               f"seed {run.seed})" + (f" · key fingerprint `{run.key_fingerprint}`"
                                      if run.key_fingerprint else "")
               + f" · wire: {run.wire}")


def show_result(run: Run, compact: bool = False) -> None:
    result = run.output
    verdict_badge(verdict_of(result), run.name)
    cols = st.columns(3)
    if run.original is not None:
        cols[0].image(run.original, caption="original", width=150)
    if run.wire_preview is not None:
        cols[1].image(run.wire_preview, caption=f"what the server received ({run.defence})",
                      width=150)
    if result.reconstructions is not None:
        cols[2].image(faces.tensor_to_chips(result.reconstructions)[0],
                      caption=f"{run.name} reconstruction", width=150)
    if not compact:
        with st.expander("All metrics, with what they mean"):
            metrics_table(result.aggregates, prefix=f"{run.name}.")
        st.caption(f"Threat model: {run.extra.get('threat_model', '')}")
    else:
        metrics_table(result.aggregates, prefix=f"{run.name}.")


def card(run: Run) -> None:
    with st.container(border=True):
        run_header(run)
        handle = run.handle
        if handle.status == JobStatus.DONE:
            show_result(run)
        elif handle.status == JobStatus.FAILED:
            show_job_error(handle, run.name)
        elif handle.status == JobStatus.CANCELLED:
            st.warning(f"{run.name} was cancelled.")
        else:
            progress_block(handle, key=f"attack.{run.number}")


@st.fragment(run_every=1.0)
def live_panel() -> None:
    """Polled every second: the page stays responsive while jobs run. Newest first."""
    history = runs("attack")
    compare()
    if history:
        st.subheader(f"Run history ({len(history)}, newest first)")
    for run in reversed(history):
        card(run)


def compare() -> None:
    done = [r for r in runs("attack") if r.handle.status == JobStatus.DONE]
    if len(done) < 2:
        return
    st.subheader("Compare two runs")
    titles = {r.title: r for r in done}
    names = list(titles)
    c1, c2 = st.columns(2)
    a = c1.selectbox("First run", names, index=len(names) - 2, key="compare_run_a")
    b = c2.selectbox("Second run", names, index=len(names) - 1, key="compare_run_b")
    for col, title in ((c1, a), (c2, b)):
        with col, st.container(border=True):
            run_header(titles[title])
            show_result(titles[title], compact=True)


live_panel()
