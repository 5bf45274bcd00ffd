"""Curves page: sweep one parameter of a defence over a range, on a dataset sample (default) or
the current face, and draw privacy against utility; several sweeps (defences) share one chart
with the "no defence" point and chance rank-1 as references."""

from __future__ import annotations

import functools
import typing
from typing import Any

import numpy as np
import streamlit as st

from app.audits import default_dataset, load_dataset_faces
from app.charts import sweep_figure
from app.defence_input import pick_defence, reproducible_key
from app.errors import show_job_error
from app.face_input import context_bar
from app.job_status import progress_block, status_text
from app.params_form import dataset_picker, numeric_fields
from app.sidebar import selected_runner
from app.state import add_run, kept_widget, runs
from facepriv_core import attacks, audit, metric_docs
from facepriv_core.jobs import JobContext, JobStatus, default_runner

X_CHOICES = ("verification_accuracy", "utility_cosine", "ssim", "psnr")
DATASET = "Dataset sample (recommended)"
CURRENT = "Current face only"

st.title("Curves")
face = context_bar()
st.caption("A curve is a sweep of one defence parameter: each point audits the same faces. "
           "Run several sweeps (other defences too) and they share one chart.")
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

with right:
    param = kept_widget(st.selectbox, "Parameter to sweep", options=list(fields),
                        key=f"sweep_param.{d.name}")
    values_text = kept_widget(st.text_input, "Values (comma-separated)",
                              key=f"sweep_values.{d.name}.{param}",
                              value=",".join(map(str, fields[param])))
    usable = [n for n in attacks.names() if d.wire_kind in attacks.get(n).applies_to]
    chosen = kept_widget(st.multiselect, "Attacks", options=usable, key=f"sweep_attacks.{d.name}",
                         default=[n for n in ("identity",) if n in usable])
    source = kept_widget(st.radio, "Faces", options=[DATASET, CURRENT], horizontal=True,
                         key="sweep_source")
    dataset, limit = "session:current-face", 1
    if source == DATASET:
        dataset = dataset_picker("Dataset", default_dataset(), "sweep_dataset", None)
        limit = int(kept_widget(st.slider, "Faces (sampled, seeded)", min_value=4,
                                max_value=200, value=40, key="sweep_limit",
                                help="verification accuracy needs several photos of a "
                                     "person: small samples fall back to utility cosine"))
    else:
        st.warning("One face gives one sample per point: rank-1 and match rates are then 0 or "
                   "1 and say little. Use a dataset sample to judge a defence.",
                   icon=":material/warning:")


def parse_values(text: str, kind: type) -> list[Any]:
    return [kind(v) for v in (t.strip() for t in text.split(",")) if v]


def sweep_job(ctx: JobContext, spec: audit.AuditSpec, param: str, values: list[Any],
              faces: audit.Faces | None, runner: Any) -> audit.SweepResult:
    """The sweep with the no-defence reference on the same faces, on the sidebar's runner
    (engine: audit.sweep, one Ray task per point on a cluster)."""
    if faces is None:
        ctx.report(0, len(values) + 1, phase="aligning the dataset sample")
        faces = load_dataset_faces(str(spec.dataset), int(spec.limit or 20), spec.seed)
    return runner.sweep(spec, param, values, cancel=ctx.cancelled, faces=faces, reference=True,
                        progress=lambda _s, done, total: ctx.report(
                            done, total, phase=f"{param}: point {done}/{total} (the last is "
                                               "the no-defence reference)"))


if st.button("Run sweep", type="primary", disabled=not chosen):
    try:
        values = parse_values(values_text, typing.cast(type, d.Params.model_fields[param]
                                                       .annotation))
    except ValueError:
        st.error("Values must be numbers separated by commas, e.g. 1,4,8,16.")
        st.stop()
    spec = audit.AuditSpec(defence=d.name, defence_params=params.model_dump(mode="json"),
                           seed=seed, attacks=[audit.AttackSpec(name=n) for n in chosen],
                           dataset=dataset, limit=limit if source == DATASET else None,
                           bootstrap=0, reproducible_key=reproducible_key())
    faces_in_memory = None if source == DATASET else audit.Faces(
        face.face.chip150[None], np.array([0]), ["current face"], {})
    handle = default_runner().submit(
        functools.partial(sweep_job, spec=spec, param=param, values=values,
                          faces=faces_in_memory, runner=selected_runner()),
        name=f"sweep {d.name}",
        # Dataset sweeps are shared through the runner's cache; an in-memory face belongs to
        # this session, and its spec is only a label another session's face would also carry.
        key=f"curve:{spec.spec_hash()}:{param}:{values}" if source == DATASET else None)
    add_run(kind="sweep", name=f"sweep {param} of {d.name}",
            face_label=face.label if source == CURRENT else f"{limit} faces of {dataset}",
            defence=d.name, params=params.model_dump(mode="json"), seed=seed, handle=handle,
            extra={"param": param, "values": values, "attacks": list(chosen),
                   "one_face": source == CURRENT})


def draw(sweeps: list[audit.SweepResult], names: list[str]) -> None:
    """The engine's curve data for these sweeps (default axes: the service's verification
    accuracy and the strongest unauthorised recogniser's rank-1), on one chart."""
    first = audit.curve_data(sweeps[0])
    xs = list(dict.fromkeys([first.x_metric, *X_CHOICES]))
    ys = list(dict.fromkeys([first.y_metric, *sorted(
        f"{a}.{m}" for p in sweeps[0].points for a, ms in p.attacks.items() for m in ms)]))
    c1, c2 = st.columns(2)
    x_name = c1.selectbox("Utility (x)", xs, key="curve_x", format_func=_label,
                          help="default: what the authorised service achieves on the wire")
    y_name = c2.selectbox("Privacy (y)", ys, key="curve_y", format_func=_label,
                          help="default: rank-1 identification by the strongest recogniser "
                               "the service did not authorise (lower = more private)")
    curves = audit.curves_data(dict(zip(names, sweeps, strict=True)), x=x_name, y=y_name)
    for name, c in zip(names, curves, strict=True):
        if c.caution:
            st.caption(f"{name}: {c.caution}")
    st.plotly_chart(sweep_figure(curves, names), width="stretch")


def _label(key: str) -> str:
    from facepriv_core.audit.curves import X_LABELS, Y_LABELS

    return X_LABELS.get(key) or Y_LABELS.get(key.partition(".")[2]) or \
        f"{metric_docs.doc(key).title} ({key})"


@st.fragment(run_every=1.0)
def live() -> None:
    done: list[audit.SweepResult] = []
    names: list[str] = []
    for run in runs("sweep"):
        handle = run.handle
        if handle.status == JobStatus.DONE:
            done.append(handle.result)
            names.append(f"#{run.number} {run.defence} ({run.extra['param']})")
        elif handle.status == JobStatus.FAILED:
            show_job_error(handle, run.title)
        elif handle.status == JobStatus.CANCELLED:
            st.caption(f"{run.title} was cancelled.")
        else:
            st.markdown(f"**{run.title}**: {status_text(handle)}")
            progress_block(handle, key=f"sweep.{run.number}")
    if done:
        draw(done, names)


live()
