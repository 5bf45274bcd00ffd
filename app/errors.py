"""Errors shown in words: one helper every page calls, so no page shows a raw exception.

A FacePrivError's own message is meant for the user and is shown as is; anything else gets a
sentence without the exception's class name. The traceback is shown only in debug mode
(FACEPRIV_DEBUG=1), folded in a "details" expander.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from facepriv_core.jobs import user_message

DEBUG_ENV = "FACEPRIV_DEBUG"


def debug_mode() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def show_details(detail: str | None) -> None:
    """The traceback in a collapsed expander, in debug mode only."""
    if detail and debug_mode():
        with st.expander("details", expanded=False):
            st.code(detail, language="text")


def show_job_error(handle: Any, what: str | None = None) -> None:
    """A failed job's message (jobs keep it in words) and, in debug mode, its traceback."""
    label = what or handle.name
    st.error(f"{label} failed: {handle.error or 'no reason was recorded'}")
    show_details(getattr(handle, "error_detail", None))


def show_exception(exc: BaseException, what: str = "This step") -> None:
    """An exception caught by a page: its user message, and the traceback in debug mode."""
    import traceback

    st.error(user_message(exc, what))
    show_details("".join(traceback.format_exception(exc)))
