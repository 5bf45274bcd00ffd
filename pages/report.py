"""Report page: everything this session ran, exported as JSON or one self-contained HTML file
(images embedded, plotly charts, specs, versions, seeds; secret keys never included)."""

from __future__ import annotations

import streamlit as st

from app.charts import sweep_figure
from facepriv_core import faces, report
from facepriv_core.audit import environment
from facepriv_core.jobs import JobHandle, JobStatus
from facepriv_core.models import resolve_device

st.title("Report")


def finished(store: str) -> dict[str, JobHandle]:
    jobs: dict[str, JobHandle] = st.session_state.get(store, {})
    return {k: h for k, h in jobs.items() if h.status == JobStatus.DONE}


sections: list[report.Section] = []
for name, h in finished("attack_jobs").items():
    meta, result = h.meta, h.result
    images = {"original": meta["original"], "what the server received": meta["wire"]}
    if result.reconstructions is not None:
        images[f"{name} reconstruction"] = faces.tensor_to_chips(result.reconstructions)[0]
    sections.append(report.Section(
        f"{name} against {meta['defence']}", "attack",
        {"defence": meta["defence"], "params": meta["params"], "seed": meta["seed"],
         "threat model": meta["threat_model"], "aggregates": result.aggregates},
        images=images))
for label, h in finished("sweeps").items():
    result = h.result
    sections.append(report.Section(
        f"Sweep: {label}", "sweep",
        {"spec": h.meta.get("spec", {}),
         "points": [{result.param: p.value, **p.utility,
                     **{f"{a}.{m}": v for a, ms in p.attacks.items() for m, v in ms.items()}}
                    for p in result.points]},
        figure=sweep_figure({label: result}, "utility_cosine",
                            next((f"{a}.{m}" for p in result.points[:1] for a in p.attacks
                                  for m in ("match_rate", "ssim", "attr_cossim")
                                  if m in p.attacks[a]), "identity.match_rate"))))
for label, h in finished("bench_jobs").items():
    sections.append(report.Section(f"Benchmark: {label}", "table", {"table": h.result}))

if not sections:
    st.info("Nothing to report yet: run attacks, sweeps or a benchmark on the other pages.")
    st.stop()

st.write(f"{len(sections)} results from this session.")
for s in sections:
    st.markdown(f"- **{s.title}** ({s.kind})")
env = environment(resolve_device("auto"))
c1, c2 = st.columns(2)
c1.download_button("Download JSON", report.to_json(sections, env), mime="application/json",
                   file_name="facepriv_report.json")
c2.download_button("Download HTML", report.to_html(sections, env), mime="text/html",
                   file_name="facepriv_report.html")
