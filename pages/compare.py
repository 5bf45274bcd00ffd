"""Compare page: several defences, each with its parameters, audited on the same face (or a
dataset sample) by the same attacks: a table, then a gallery (protected image, what the
server received, reconstructions, the engine's verdicts) one column per defence."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import streamlit as st
from pydantic import ValidationError

from app.audits import DefenceAudit, audit_defences, default_dataset, table_rows
from app.defence_input import current_defence
from app.errors import show_job_error
from app.face_input import context_bar
from app.job_status import progress_block, status_text
from app.params_form import dataset_picker, params_form
from app.results import verdict_badge
from app.sidebar import selected_runner
from app.state import add_run, defence, kept_widget, runs
from facepriv_core import attacks, audit, defences
from facepriv_core.jobs import JobStatus, default_runner

CURRENT_FACE = "Current face"
DATASET = "Dataset sample"

st.title("Compare defences")
face = context_bar()
st.caption("Pick defences and their parameters; they are audited on the same faces by the same "
           "attacks. Parameters are shared with the Protect page.")

names = defences.names()
current = current_defence()[0].name
default = [n for n in dict.fromkeys([current, "blur", "pixelate"]) if n in names]
picked: list[str] = kept_widget(st.multiselect, "Defences", options=names, default=default,
                                key="compare_defences")
chosen: list[tuple[str, dict[str, Any]]] = []
if picked:
    cols = st.columns(min(len(picked), 4))
    for i, name in enumerate(picked):
        d = defence(name)
        with cols[i % len(cols)], st.expander(f"{name} parameters", expanded=False):
            values = params_form(d.Params, key=f"params.{name}")
        try:
            chosen.append((name, d.Params(**values).model_dump(mode="json")))
        except ValidationError as exc:
            st.error(f"{name}: invalid parameters: {exc.errors()[0]['msg']}")

attack_names = attacks.names()
chosen_attacks: list[str] = kept_widget(
    st.multiselect, "Attacks", options=attack_names, key="compare_attacks",
    default=[n for n in ("identity",) if n in attack_names],
    help="attacks that do not apply to a defence's wire are skipped for it (marked n/a)")
source = kept_widget(st.radio, "Faces", options=[CURRENT_FACE, DATASET], horizontal=True,
                     key="compare_source")
dataset, limit = "session:current-face", 1
if source == DATASET:
    dataset = dataset_picker("Dataset", default_dataset(), "compare_dataset", None)
    limit = int(kept_widget(st.slider, "Faces (sampled, seeded)", min_value=4, max_value=200,
                            value=20, key="compare_limit"))
slow = [n for n in picked if defences.get(n).optimising]
if slow:
    st.caption(f"{', '.join(slow)} optimise each face: expect seconds to minutes per face.")

ready = bool(chosen) and bool(dataset)
if st.button("Compare", type="primary", disabled=not ready):
    faces_in_memory = None if source == DATASET else audit.Faces(
        face.face.chip150[None], np.array([0]), ["current face"], {})
    handle = default_runner().submit(
        functools.partial(audit_defences, chosen=list(chosen), attack_names=list(chosen_attacks),
                          faces=faces_in_memory, dataset=dataset, limit=limit,
                          runner=selected_runner()), name="compare")
    add_run(kind="compare", name="comparison of " + ", ".join(n for n, _ in chosen),
            face_label=face.label if source == CURRENT_FACE else f"{limit} faces of {dataset}",
            defence=", ".join(n for n, _ in chosen), params={n: p for n, p in chosen}, seed=0,
            handle=handle, extra={"attacks": list(chosen_attacks)})


def gallery(items: list[DefenceAudit]) -> None:
    cols = st.columns(max(1, min(len(items), 4)))
    for i, item in enumerate(items):
        with cols[i % len(cols)], st.container(border=True):
            st.markdown(f"**{item.label}**")
            if item.result is None:
                st.error(f"could not be audited: {item.error}")
                continue
            r = item.result
            overall = getattr(r, "overall_verdict", None)
            if overall is not None:
                st.badge("overall: LEAKS" if overall.leaks else "overall: HOLDS",
                         color="red" if overall.leaks else "green")
                st.caption(overall.reason)
            images = r.images
            st.image(images["protected"][0], width=150,
                     caption=f"what the server received: {r.wire_kind} "
                             f"{'x'.join(map(str, r.wire_shape))}")
            for attack in r.attacks:
                if attack in images:
                    st.image(images[attack][0], width=150, caption=f"{attack} reconstruction")
            for attack, v in (getattr(r, "verdicts", None) or {}).items():
                verdict_badge(v, attack)
            for attack, why in item.skipped.items():
                st.caption(f"{attack}: {why}")


@st.fragment(run_every=1.0)
def live() -> None:
    history = runs("compare")
    for run in reversed(history):
        with st.container(border=True):
            st.markdown(f"**{run.title}**: {status_text(run.handle)}")
            st.caption(f"faces: {run.face_label} · attacks: "
                       f"{', '.join(run.extra['attacks']) or 'none'}")
            handle = run.handle
            items = handle.result if handle.status == JobStatus.DONE else handle.partial
            if handle.status == JobStatus.FAILED:
                show_job_error(handle, "The audit")
            else:
                progress_block(handle, key=f"compare.{run.number}")
            if items:
                st.dataframe(table_rows(items), hide_index=True, width="stretch")
                gallery(items)


live()
