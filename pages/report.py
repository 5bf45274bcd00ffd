"""Report page: every run of this session (Protect, Attack, Compare, Curves, Benchmark) with a
title, author and notes, the verdict summary first, exported through the engine's report API
as JSON or one self-contained HTML file. Face images go in only when asked (default: none);
secret keys never (only their fingerprints)."""

from __future__ import annotations

import streamlit as st

from app.face_input import context_bar
from app.report_sections import build_report, finished, summary_rows
from app.state import kept_widget, runs

st.title("Report")
context_bar()

history = runs()
done = finished(history)
if not done:
    st.info("Nothing to report yet: run attacks, comparisons, sweeps or a benchmark on the other "
            "pages (or keep a protection in the run history on the Protect page).")
    st.stop()

c1, c2 = st.columns(2)
title = kept_widget(c1.text_input, "Title", value="FacePriv privacy audit", key="report_title")
author = kept_widget(c2.text_input, "Author", value="", key="report_author")
notes = kept_widget(st.text_area, "Notes", value="", key="report_notes",
                    help="context for the reader: what was audited, why, caveats")
include_faces = kept_widget(
    st.checkbox, "Embed face images (original, wire, reconstructions)", value=False,
    key="report_faces",
    help="off by default: the report then holds metrics and wire descriptions only")
if include_faces:
    st.warning("The report file will contain pictures of the faces you used (including "
               "uploads). Share it only with people allowed to see them.",
               icon=":material/warning:")

st.subheader("Verdict summary")
rows = summary_rows(history)
if rows:
    st.table(rows)  # a table, not a grid: the reasons wrap and read in full
else:
    st.caption("No verdicts yet in this session's runs.")

st.subheader(f"Runs in the report ({len(done)} of {len(history)}; unfinished runs are left out)")
for run in done:
    st.markdown(f"- **{run.title}** ({run.kind}): {run.face_label}")

report_json, html = build_report(history, title, author, notes, include_faces)
c1, c2 = st.columns(2)
c1.download_button("Download JSON", report_json, mime="application/json",
                   file_name="facepriv_report.json")
c2.download_button("Download HTML", html, mime="text/html", file_name="facepriv_report.html")
