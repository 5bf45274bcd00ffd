"""FacePriv workbench: Streamlit entry point (page config, sidebar, navigation)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.sidebar import render_sidebar

ROOT = Path(__file__).resolve().parents[1]

st.set_page_config(page_title="FacePriv", page_icon=":material/shield_person:", layout="wide")

navigation = st.navigation([
    st.Page(ROOT / "pages" / "face.py", title="Face", icon=":material/face:", default=True),
])
render_sidebar()
navigation.run()
