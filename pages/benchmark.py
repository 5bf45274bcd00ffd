"""Benchmark page: audit several defences on a dataset and show the table the papers print
(rows = defences, columns = utility and attack results), exportable as CSV."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from facepriv_core import attacks, audit, datasets, defences
from facepriv_core.jobs import FINISHED, JobContext, JobHandle, JobStatus, default_runner

OLIVETTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "olivetti" / \
    "olivettifaces.mat"

st.title("Benchmark")
st.caption("Each defence runs with its default parameters (tune them on the Protect page; the "
           "CLI's `facepriv audit --spec` takes any parameters). Optimising defences take "
           "seconds per face.")

names = defences.names()
chosen = st.multiselect("Defences", names, key="bench_defences",
                        default=[n for n in ("none", "noise", "blur", "pixelate") if n in names])
chosen_attacks = st.multiselect("Attacks", attacks.names(), key="bench_attacks",
                                default=["identity", "attribute"])
source = st.radio("Dataset", ["Olivetti", "Folder on the server", "Zip upload", "LFW"],
                  horizontal=True, key="bench_source")
spec_text, upload = None, None
if source == "Olivetti":
    spec_text = st.text_input("olivettifaces.mat", value=str(OLIVETTI), key="bench_olivetti")
    spec_text = f"olivetti:{spec_text}"
elif source == "Folder on the server":
    spec_text = "folder:" + st.text_input("Folder (one sub-folder per person)",
                                          key="bench_folder")
elif source == "Zip upload":
    upload = st.file_uploader("Zip of person/photo.jpg", type=["zip"], key="bench_zip")
else:
    spec_text = "lfw"
    st.caption("LFW comes through scikit-learn's fetcher and needs the network.")
limit = st.slider("Faces (sampled, seeded)", 4, 400, 40, key="bench_limit")

jobs: dict[str, JobHandle] = st.session_state.setdefault("bench_jobs", {})


def benchmark(ctx: JobContext, label: str, ds_spec: str, zip_bytes: bytes | None,
              defence_names: list[str], attack_names: list[str], n: int) -> list[dict]:
    """Align once, then audit each defence on the same faces."""
    ds = datasets.load_zip(zip_bytes) if zip_bytes is not None else datasets.load(ds_spec)
    ds = ds.limit(n)
    aligned = datasets.align_dataset(ds)
    faces = audit.Faces(aligned.chips, ds.identities[aligned.indices],
                        [ds.keys[i] if ds.keys else str(i) for i in aligned.indices],
                        aligned.failures)
    results = []
    for i, name in enumerate(defence_names):
        ctx.report(i, len(defence_names))
        spec = audit.AuditSpec(defence=name, dataset=label, limit=n, bootstrap=0,
                               attacks=[{"name": a} for a in attack_names])
        results.append(audit.run(spec, cancel=ctx.cancelled, faces=faces))
        ctx.partial(audit.table(results))
    ctx.report(len(defence_names), len(defence_names))
    return audit.table(results)


ready = bool(chosen) and (upload is not None if source == "Zip upload" else bool(spec_text))
if st.button("Run benchmark", type="primary", disabled=not ready):
    label = f"zip:{upload.name}" if upload is not None else str(spec_text)
    zip_bytes = upload.getvalue() if upload is not None else None
    jobs[label] = default_runner().submit(
        lambda ctx, a=(label, str(spec_text), zip_bytes, list(chosen), list(chosen_attacks),
                       limit): benchmark(ctx, *a),
        name=label)


@st.fragment(run_every=1.0)
def live() -> None:
    for label, handle in jobs.items():
        st.markdown(f"**{label}**: {handle.status.value}, {handle.elapsed:.0f} s")
        if handle.status not in FINISHED:
            st.progress(handle.fraction)
            if st.button("Cancel", key=f"cancel_bench.{handle.id}"):
                handle.cancel()
        rows = handle.result if handle.status == JobStatus.DONE else handle.partial
        if handle.status == JobStatus.FAILED:
            st.error(f"failed: {handle.error}")
        if rows:
            st.dataframe(rows, hide_index=True)
            st.download_button("Download CSV", audit.table_csv(rows), mime="text/csv",
                               file_name="facepriv_benchmark.csv", key=f"csv.{handle.id}")


live()
