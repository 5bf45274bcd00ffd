"""Curves page: sweep one parameter of a defence over a range, on the current face or a
dataset sample, and draw privacy against utility; several sweeps share one chart."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import streamlit as st

from app.charts import sweep_figure
from app.defence_input import pick_defence, protect_face, reproducible_key
from app.face_input import pick_face
from app.params_form import numeric_fields
from facepriv_core import attacks, audit
from facepriv_core.jobs import FINISHED, JobContext, JobHandle, JobStatus, default_runner

OLIVETTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "olivetti" / \
    "olivettifaces.mat"

st.title("Curves")
_, face = pick_face()
if face is None:
    st.stop()
left, right = st.columns([1, 2])
with left, st.expander("Defence", expanded=True):
    choice = pick_defence()
if choice is None:
    st.stop()
d, params, seed = choice
fields = numeric_fields(d.Params)
if not fields:
    st.info(f"{d.name} has no numeric parameter to sweep.")
    st.stop()
probe = None if d.optimising else protect_face(face, d, params, seed)
if probe is None and not d.optimising:
    st.stop()

with right:
    param = st.selectbox("Parameter to sweep", list(fields), key="sweep_param")
    values_text = st.text_input("Values (comma-separated)", key=f"sweep_values.{d.name}.{param}",
                                value=",".join(map(str, fields[param])))
    # An optimising defence is not run here just to list attacks: its declared wire decides.
    usable = [n for n in attacks.names()
              if (d.wire_kind in attacks.get(n).applies_to if probe is None
                  else attacks.get(n).applicable(probe.protected, d) is None)]
    chosen = st.multiselect("Attacks", usable, default=[n for n in ("identity",) if n in usable],
                            key="sweep_attacks")
    source = st.radio("Faces", ["Current face", "Dataset sample"], horizontal=True,
                      key="sweep_source")
    dataset = limit = None
    if source == "Dataset sample":
        dataset = st.text_input("Dataset", value=f"olivetti:{OLIVETTI}" if OLIVETTI.is_file()
                                else "folder:/path/to/people", key="sweep_dataset")
        limit = st.slider("Faces", 4, 200, 20, key="sweep_limit")

sweeps: dict[str, JobHandle] = st.session_state.setdefault("sweeps", {})


def parse_values(text: str, kind: type) -> list[Any]:
    return [kind(v) for v in (t.strip() for t in text.split(",")) if v]


if st.button("Run sweep", type="primary"):
    try:
        values = parse_values(values_text, typing.cast(type, d.Params.model_fields[param]
                                                       .annotation))
    except ValueError:
        st.error("Values must be numbers separated by commas, e.g. 1,4,8,16.")
        st.stop()
    base = {"defence": d.name, "defence_params": params.model_dump(), "seed": seed,
            "reproducible_key": reproducible_key(),
            "attacks": [{"name": n} for n in chosen]}
    if dataset:
        spec = audit.AuditSpec(**base, dataset=dataset, limit=limit, bootstrap=0)
        faces_in_memory = None
    else:  # the face stays in memory: the spec only labels it
        spec = audit.AuditSpec(**base, dataset="session:current-face", bootstrap=0)
        faces_in_memory = audit.Faces(face.chip150[None], [0], ["current face"], {})

    def work(ctx: JobContext, spec: audit.AuditSpec = spec, values: list = values,
             faces: audit.Faces | None = faces_in_memory) -> audit.SweepResult:
        return audit.sweep(spec, param, values, cancel=ctx.cancelled, faces=faces,
                           progress=lambda _stage, done, total: ctx.report(done, total))

    label = f"{d.name}: {param} in {values}" + (f" ({dataset}, {limit})" if dataset else "")
    # Only dataset sweeps are shared through the runner's cache: an in-memory face belongs to
    # this session, and its spec is only a label that another session's face would also carry.
    key = f"{spec.spec_hash()}:{param}:{values}" if dataset else None
    sweeps[label] = default_runner().submit(work, key=key, name=label,
                                            meta={"spec": spec.model_dump()})


def draw(done: dict[str, audit.SweepResult]) -> None:
    metric_names = sorted({f"{a}.{m}" for r in done.values() for p in r.points
                           for a, ms in p.attacks.items() for m in ms})
    utility_names = sorted({u for r in done.values() for p in r.points for u in p.utility})
    c1, c2 = st.columns(2)
    x_name = c1.selectbox("Utility (x)", utility_names, key="curve_x",
                          index=utility_names.index("utility_cosine"))
    y_name = c2.selectbox("Privacy attack metric (y)", metric_names or ["(none)"], key="curve_y")
    fig = sweep_figure(done, x_name, y_name)
    st.plotly_chart(fig, width="stretch")


@st.fragment(run_every=1.0)
def live() -> None:
    done = {}
    for label, handle in sweeps.items():
        if handle.status not in FINISHED:
            st.progress(handle.fraction, text=f"{label}: {handle.status.value}")
            if st.button("Cancel", key=f"cancel_sweep.{handle.id}"):
                handle.cancel()
        elif handle.status == JobStatus.DONE:
            done[label] = handle.result
        elif handle.status == JobStatus.FAILED:
            st.error(f"{label} failed: {handle.error}")
    if done:
        draw(done)


live()
