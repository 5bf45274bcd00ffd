"""Face page: pick the built-in sample or upload a face, see it detected and aligned."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from app.state import sample_face, sample_image
from facepriv_core import faces

st.title("Face")
st.caption("Uploads stay in this session's memory: nothing is written to disk or logged.")

source = st.radio("Face", ["Built-in sample (NASA astronaut, public domain)", "Upload"],
                  horizontal=True, label_visibility="collapsed")

image: np.ndarray | None = None
face: faces.FaceImage | None = None
if source.startswith("Built-in"):
    image, face = sample_image(), sample_face()
else:
    upload = st.file_uploader("Upload a face (JPEG, PNG, WebP)",
                              type=["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"])
    if upload is not None:
        try:
            image = faces.load_image(upload.getvalue())
            face = faces.detect_and_align(image)
        except faces.InputError as exc:
            st.error(str(exc), icon=":material/error:")

if image is not None and face is not None:
    marked = Image.fromarray(image)
    draw = ImageDraw.Draw(marked)
    width = max(2, image.shape[1] // 200)
    if face.box is not None:
        draw.rectangle(face.box, outline=(0, 220, 0), width=width)
    for box in face.others:
        draw.rectangle(box, outline=(240, 160, 0), width=width)
    if face.landmarks is not None:
        for x, y in face.landmarks:
            draw.ellipse((x - width * 2, y - width * 2, x + width * 2, y + width * 2),
                         fill=(255, 0, 0))
    if face.others:
        st.info(f"{len(face.others) + 1} faces found: the largest (green) is used.")
    cols = st.columns([2, 1, 1])
    cols[0].image(marked, caption="Detected face and 5 landmarks", width="stretch")
    cols[1].image(face.chip150, caption="dlib chip 150x150 (recogniser input)", width=150)
    cols[2].image(face.chip112, caption="five-point template 112x112", width=112)
