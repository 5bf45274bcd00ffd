"""Benchmark page: audit several defences, each with its own parameters (the same widgets as
the Protect page), on a dataset, and show the table the papers print (rows = defences,
columns = utility and attack results, every cell filled) with a chart, exportable as CSV."""

from __future__ import annotations

import functools
from typing import Any

import streamlit as st
from pydantic import ValidationError

from app.audits import audit_defences, default_dataset, load_dataset_faces, table_rows
from app.charts import table_figure
from app.errors import show_job_error
from app.face_input import context_bar
from app.job_status import progress_block, status_text
from app.params_form import dataset_picker, params_form
from app.sidebar import selected_runner
from app.state import add_run, defence, kept_widget, runs, upload_cap_text
from facepriv_core import attacks, audit, datasets, defences
from facepriv_core.jobs import JobContext, JobStatus, default_runner

ON_MACHINE = "A dataset on this machine"
ZIP = "Zip upload"

st.title("Benchmark")
context_bar()
st.caption("Each defence runs with the parameters set below (shared with the Protect page). "
           "Optimising defences take seconds per face.")

names = defences.names()
chosen_names: list[str] = kept_widget(
    st.multiselect, "Defences", options=names, key="bench_defences",
    default=[n for n in ("none", "noise", "blur", "pixelate") if n in names])
chosen: list[tuple[str, dict[str, Any]]] = []
if chosen_names:
    cols = st.columns(min(len(chosen_names), 4))
    for i, name in enumerate(chosen_names):
        d = defence(name)
        with cols[i % len(cols)], st.expander(f"{name} parameters"):
            values = params_form(d.Params, key=f"params.{name}")
        try:
            chosen.append((name, d.Params(**values).model_dump(mode="json")))
        except ValidationError as exc:
            st.error(f"{name}: invalid parameters: {exc.errors()[0]['msg']}")
chosen_attacks: list[str] = kept_widget(
    st.multiselect, "Attacks", options=attacks.names(), key="bench_attacks",
    default=["identity", "attribute"],
    help="attacks that do not apply to a defence's wire are skipped for it (n/a)")
source = kept_widget(st.radio, "Dataset", options=[ON_MACHINE, ZIP], horizontal=True,
                     key="bench_source")
spec_text, upload = "", None
if source == ON_MACHINE:
    spec_text = dataset_picker("Dataset", default_dataset(), "bench_dataset",
                               "found under $FACEPRIV_DATA, the FacePriv cache or "
                               "../shared/data; 'other' takes any spec (folder:PATH...)")
else:
    upload = st.file_uploader(f"Zip of person/photo.jpg (up to {upload_cap_text()})",
                              type=["zip"], key="bench_zip")
limit = int(kept_widget(st.slider, "Faces (sampled, seeded)", min_value=4, max_value=400,
                        value=40, key="bench_limit"))


def benchmark(ctx: JobContext, label: str, zip_bytes: bytes | None,
              chosen: list[tuple[str, dict[str, Any]]], attack_names: list[str], n: int,
              runner: Any = None) -> list[Any]:
    """Align once, then audit each defence on the same faces."""
    faces = None
    if zip_bytes is not None:
        ds = datasets.load_zip(zip_bytes).limit(n)
        aligned = datasets.align_dataset(ds)
        faces = audit.Faces(aligned.chips, ds.identities[aligned.indices],
                            [ds.keys[i] if ds.keys else str(i) for i in aligned.indices],
                            aligned.failures)
    else:
        ctx.report(0, len(chosen), phase="aligning the dataset sample")
        faces = load_dataset_faces(label, n)
    return audit_defences(ctx, chosen, attack_names, faces, label, n, runner=runner)


ready = bool(chosen) and (upload is not None if source == ZIP else bool(spec_text))
if st.button("Run benchmark", type="primary", disabled=not ready):
    label = f"zip:{upload.name}" if upload is not None else str(spec_text)
    zip_bytes = upload.getvalue() if upload is not None else None
    handle = default_runner().submit(
        functools.partial(benchmark, label=label, zip_bytes=zip_bytes, chosen=list(chosen),
                          attack_names=list(chosen_attacks), n=limit,
                          runner=selected_runner()),
        name=f"benchmark {label}")
    add_run(kind="benchmark", name=f"benchmark on {label}", face_label=f"{limit} faces of {label}",
            defence=", ".join(n for n, _ in chosen), params={n: p for n, p in chosen}, seed=0,
            handle=handle, extra={"attacks": list(chosen_attacks), "dataset": label})


def chart(items: list[Any], key: str) -> None:
    numeric = table_rows(items, numbers=True)
    columns = [c for c in numeric[0] if any(isinstance(r.get(c), int | float) and
                                            not isinstance(r.get(c), bool) for r in numeric)
               and c != "faces"]
    if not columns:
        return
    default = [c for c in columns if c.endswith(("utility_cosine", "match_rate", "rank1",
                                                 "attr_cossim", "ssim"))][:6] or columns[:4]
    shown = st.multiselect("Columns to chart", columns, default=default, key=f"chart.{key}")
    if shown:
        st.plotly_chart(table_figure(numeric, shown, "Benchmark: utility and attack metrics "
                                     "per defence"), width="stretch", key=f"fig.{key}")


@st.fragment(run_every=1.0)
def live() -> None:
    for run in reversed(runs("benchmark")):
        handle = run.handle
        with st.container(border=True):
            st.markdown(f"**{run.title}**: {status_text(handle)}")
            st.caption(f"faces: {run.face_label} · attacks: "
                       f"{', '.join(run.extra['attacks']) or 'none'}")
            progress_block(handle, key=f"bench.{run.number}")
            items = handle.result if handle.status == JobStatus.DONE else handle.partial
            if handle.status == JobStatus.FAILED:
                show_job_error(handle, "The benchmark")
            if items:
                st.dataframe(table_rows(items), hide_index=True, width="stretch")
                st.download_button("Download CSV",
                                   audit.table_csv(table_rows(items, numbers=True)),
                                   mime="text/csv", file_name="facepriv_benchmark.csv",
                                   key=f"csv.{run.number}")
                if handle.status == JobStatus.DONE:
                    chart(items, str(run.number))


live()
