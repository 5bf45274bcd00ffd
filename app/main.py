"""FacePriv workbench: Streamlit entry point (page config, sidebar, navigation)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

from app.errors import show_exception  # noqa: E402
from app.sidebar import render_sidebar  # noqa: E402
from app.state import session_id  # noqa: E402
from facepriv_core.jobs import set_session  # noqa: E402

# No page_icon and no page icons: the browser fetches a ":material/..." or emoji favicon from a
# public CDN (fonts.gstatic.com), and a privacy tool makes no outbound call. Icons inside the
# pages use the Material font Streamlit serves itself.
st.set_page_config(page_title="FacePriv", layout="wide")

navigation = st.navigation([
    st.Page(ROOT / "pages" / "face.py", title="Face", default=True),
    st.Page(ROOT / "pages" / "protect.py", title="Protect"),
    st.Page(ROOT / "pages" / "attack.py", title="Attack"),
    st.Page(ROOT / "pages" / "compare.py", title="Compare"),
    st.Page(ROOT / "pages" / "curves.py", title="Curves"),
    st.Page(ROOT / "pages" / "benchmark.py", title="Benchmark"),
    st.Page(ROOT / "pages" / "report.py", title="Report"),
])
set_session(session_id())  # jobs submitted by this run belong to this session (fair queue)
try:
    render_sidebar()
    navigation.run()
except Exception as exc:  # the last net: words, never a traceback or a class name
    show_exception(exc, "This page")
