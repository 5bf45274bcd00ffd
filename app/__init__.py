"""Streamlit front end of FacePriv: pages call facepriv_core and hold no engine logic."""
