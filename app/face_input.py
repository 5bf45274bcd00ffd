"""The face picker (Face page) and the "current face / current defence" bar every page shows.

Uploaded bytes are decoded in memory and never written anywhere; the chosen face lives in
`st.session_state` only, so sessions never see each other's faces, and it stays the current
face on every page until another one is picked.
"""

from __future__ import annotations

import streamlit as st

from app.state import (
    SAMPLE_LABEL,
    SAMPLE_SHORT,
    UPLOAD_LABEL,
    CurrentFace,
    current_face,
    kept_widget,
    sample_face,
    sample_image,
    set_face,
    upload_cap_bytes,
    upload_cap_text,
)
from facepriv_core import faces


def pick_face() -> CurrentFace | None:
    """Render the picker; the face it sets stays current on every page. None (with a message)
    when an upload could not be used."""
    source = kept_widget(st.radio, "Face", options=[SAMPLE_LABEL, UPLOAD_LABEL], horizontal=True,
                         key="face_source", label_visibility="collapsed")
    if source == SAMPLE_LABEL:
        if current_face().label != SAMPLE_SHORT:
            set_face(SAMPLE_SHORT, sample_image(), sample_face())
        return current_face()
    upload = st.file_uploader(f"Upload a face (JPEG, PNG, WebP, GIF, BMP or TIFF; up to "
                              f"{upload_cap_text()})", key="face_upload",
                              type=["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"])
    if upload is None:
        current = current_face()
        if current.label != SAMPLE_SHORT:
            return current  # the earlier upload stays current after a page change
        st.info("Choose a photo: until then the built-in sample stays the current face.")
        return None
    detector = st.session_state.get("face_detector", "hog")  # app/sidebar.py's select box
    seen = st.session_state.get("_upload_seen")
    if seen == (upload.file_id, detector):
        return current_face()
    try:
        image = faces.load_image(upload.getvalue(), max_bytes=upload_cap_bytes())
        aligned = faces.detect_and_align(image, method=detector)
    except faces.InputError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    st.session_state["_upload_seen"] = (upload.file_id, detector)
    return set_face(f"upload {upload.name}", image, aligned)


def context_bar() -> CurrentFace:
    """One line under each page title: the face and the defence the page works on."""
    from app.defence_input import current_defence

    face = current_face()
    d, params, seed = current_defence()
    shown = ", ".join(f"{k}={v}" for k, v in params.model_dump(mode="json").items()
                      if v not in ("", None)) or "defaults"
    with st.container(border=True):
        c1, c2 = st.columns([1, 12], vertical_alignment="center")
        c1.image(face.face.chip112, width=56)
        c2.markdown(f"**Current face:** {face.label} &nbsp;·&nbsp; **Current defence:** "
                    f"`{d.name}` ({shown}; seed {seed})")
        c2.caption("Change the face on the Face page and the defence on the Protect page; "
                   "both stay as they are when you switch pages.")
    return face
