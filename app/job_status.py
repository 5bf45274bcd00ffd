"""Job status in words: queue position, the phase the work is in, elapsed time."""

from __future__ import annotations

from typing import Any

import streamlit as st

from facepriv_core.jobs import FINISHED, JobStatus


def status_text(handle: Any, default_phase: str = "") -> str:
    """e.g. "queued: 2nd in line", "running: optimising 40/80, 12 s", "done in 31 s"."""
    if handle.status == JobStatus.QUEUED:
        pos = handle.queue_position
        return "queued" + (f": position {pos} in line (jobs run one at a time)" if pos else "")
    if handle.status == JobStatus.RUNNING:
        e = handle.latest
        phase = getattr(handle, "phase", "") or ""
        if not phase and e is not None and e.total:
            phase = f"{default_phase or 'step'} {e.step}/{e.total}".strip()
        return f"running: {phase or 'starting'}, {handle.elapsed:.0f} s"
    if handle.status == JobStatus.DONE:
        return f"done in {handle.elapsed:.1f} s"
    return str(handle.status.value)


def progress_block(handle: Any, default_phase: str = "", key: str = "") -> None:
    """Progress bar with the status line, the live preview and a cancel button."""
    if handle.status in FINISHED:
        return
    st.progress(handle.fraction, text=status_text(handle, default_phase))
    preview = handle.latest_preview
    if preview is not None:
        st.image(preview, caption="live preview (latest step)", width=150)
    latest = handle.latest
    if latest is not None and latest.metrics:
        st.caption(", ".join(f"{k} {v:.3f}" for k, v in latest.metrics.items()))
    if st.button("Cancel", key=f"cancel.{key or handle.id}"):
        handle.cancel()
