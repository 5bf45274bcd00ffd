"""Face page: pick the built-in sample or upload a face, see it detected and aligned."""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageDraw

from app.face_input import pick_face

st.title("Face")
st.caption("Uploads stay in this session's memory: nothing is written to disk or logged.")

image, face = pick_face()
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
