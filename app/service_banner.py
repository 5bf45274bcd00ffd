"""A banner for defences whose authorised service is a trained model not trained yet.

Their utility figures would come from an untrained model and mean nothing, so the page says so
plainly and offers the training as a job (progress, cancel); once it is cached every later run
and session uses it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from facepriv_core.jobs import FINISHED, JobStatus, default_runner
from facepriv_core.train.services import prepare_service


def _job_key(defence: Any, params: Any) -> str:
    digest = hashlib.sha256(params.model_dump_json().encode()).hexdigest()[:12]
    return f"train-service-{defence.name}-{digest}"


def service_banner(defence: Any, params: Any) -> None:
    """Nothing when the service is ready; else a warning, a train button and its progress."""
    if defence.service_ready(params):
        return
    key = _job_key(defence, params)
    st.warning(f"**{defence.name}'s authorised service is not trained yet.** Its utility "
               "figures below come from an untrained model and mean nothing. Train it once "
               "(several minutes on CPU, faster on a GPU; cached for every later run).",
               icon="⚠️")
    if st.button("Train the service (runs as a job)", key=f"btn.{key}"):
        default_runner().submit(
            lambda ctx: prepare_service(defence, params, progress=lambda s, t: ctx.report(s, t),
                                        cancel=ctx.cancelled),
            key=key, name=f"train {defence.name} service")
    _progress(key)


@st.fragment(run_every=2.0)
def _progress(key: str) -> None:
    handle = default_runner().cached(key)
    if handle is None:
        return
    if handle.status not in FINISHED:
        step = handle.latest.step if handle.latest else 0
        st.progress(handle.fraction, text=f"training: step {step}, {handle.elapsed:.0f} s")
        if st.button("Cancel training", key=f"cancel.{key}"):
            handle.cancel()
    elif handle.status == JobStatus.DONE:
        st.success("Service trained and cached: protect again to use it.")
    elif handle.status == JobStatus.FAILED:
        st.error(f"Training failed: {handle.error}")
    else:
        st.info("Training was cancelled.")
