"""The face picker every page shares: the built-in sample or an upload, kept in the session.

Uploaded bytes are decoded in memory and never written anywhere; the chosen face lives in
`st.session_state` only, so sessions never see each other's faces.
"""

from __future__ import annotations

import streamlit as st

from app.state import sample_face, sample_image
from facepriv_core import faces

SAMPLE = "Built-in sample (NASA astronaut, public domain)"
UPLOAD = "Upload"


def pick_face() -> tuple[object | None, faces.FaceImage | None]:
    """Render the picker; return (image array, aligned face) or (None, None) with a message."""
    source = st.radio("Face", [SAMPLE, UPLOAD], horizontal=True, key="face_source",
                      label_visibility="collapsed")
    if source == SAMPLE:
        return sample_image(), sample_face()
    upload = st.file_uploader("Upload a face (JPEG, PNG, WebP)", key="face_upload",
                              type=["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"])
    if upload is None:
        return None, None
    try:
        image = faces.load_image(upload.getvalue())
        return image, faces.detect_and_align(image)
    except faces.InputError as exc:
        st.error(str(exc), icon=":material/error:")
        return None, None
