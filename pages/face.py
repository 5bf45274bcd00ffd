"""Face page: what the workbench does, the face to work on (sample or upload), and its
detection and alignment."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw

from app.face_input import context_bar, pick_face

st.title("FacePriv workbench")
st.markdown(
    "FacePriv audits **face-privacy defences**: a defence transforms a face before it leaves "
    "the phone or camera, and the untrusted server only sees that *wire*. Here you protect a "
    "face with a defence from the literature, then attack what the server received with real "
    "recognisers, attribute models and reconstruction attacks, and read a **verdict**: does "
    "the identity (or age, gender, the face itself) still leak?")
st.markdown(
    "**What to do next:** 1. pick the face below (the sample, or upload your own photo); "
    "2. **Protect**: choose a defence and its parameters; 3. **Attack**: launch attacks and "
    "read their verdicts; then **Compare** defences, draw privacy/utility **Curves**, run a "
    "**Benchmark** on a dataset, and export a **Report**.")
st.caption("Uploads stay in this session's memory: nothing is written to disk or logged. "
           "The face picked here is used on every page until you pick another.")

current = pick_face()
context_bar()
if current is not None:
    image, face = current.image, current.face
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
    st.page_link(str(Path(__file__).with_name("protect.py")), label="Next: protect this face",
                 icon=":material/shield:")
