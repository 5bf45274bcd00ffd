"""FacePriv workbench: Streamlit entry point (page config, sidebar, navigation)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

from app.sidebar import render_sidebar  # noqa: E402

st.set_page_config(page_title="FacePriv", page_icon=":material/shield_person:", layout="wide")

navigation = st.navigation([
    st.Page(ROOT / "pages" / "face.py", title="Face", icon=":material/face:", default=True),
    st.Page(ROOT / "pages" / "protect.py", title="Protect", icon=":material/shield:"),
    st.Page(ROOT / "pages" / "attack.py", title="Attack", icon=":material/swords:"),
    st.Page(ROOT / "pages" / "compare.py", title="Compare", icon=":material/compare:"),
    st.Page(ROOT / "pages" / "curves.py", title="Curves", icon=":material/show_chart:"),
    st.Page(ROOT / "pages" / "benchmark.py", title="Benchmark", icon=":material/table:"),
    st.Page(ROOT / "pages" / "report.py", title="Report", icon=":material/description:"),
])
render_sidebar()
navigation.run()
