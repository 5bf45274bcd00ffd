"""How results are shown: verdict badges with the engine's sentence, metric tables whose rows
say what each metric means. Verdicts and help texts come from facepriv_core; nothing here
decides whether something leaks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import streamlit as st

BadgeColour = Literal["red", "orange", "green", "blue", "gray"]
#: The engine's verdict status -> badge text, colour, icon.
BADGES: dict[str, tuple[str, BadgeColour, str]] = {
    "leaks": ("LEAKS", "red", ":material/warning:"),
    "inconclusive": ("INCONCLUSIVE", "orange", ":material/help:"),
    "no_leak": ("HOLDS", "green", ":material/verified_user:"),
    "utility": ("UTILITY", "blue", ":material/info:"),
}


def verdict_of(result: Any) -> Any:
    """The engine's Verdict of an AttackResult (None when the attack declares none)."""
    return getattr(result, "verdict", None)


def metric_help(name: str, section: Literal["attack", "utility"] | None = None) -> str | None:
    """The engine's help text for a metric key ('rank1@faceres', 'identity.match_rate'...):
    what it measures and which way is worse (facepriv_core.metric_docs)."""
    from facepriv_core import metric_docs

    entry = metric_docs.doc(name, section)
    return str(entry.text)


def verdict_badge(verdict: Any, label: str = "") -> None:
    """A coloured badge (leaks / holds) and the engine's one-sentence reason."""
    if verdict is None:
        st.caption(f"{label}: no verdict rule for this attack" if label else
                   "No verdict rule for this attack.")
        return
    leaks = bool(verdict.leaks)
    status = getattr(verdict, "status", "leaks" if leaks else "no_leak")
    text, colour, icon = BADGES.get(status, BADGES["leaks" if leaks else "no_leak"])
    prefix = f"{label}: " if label else ""
    st.badge(f"{prefix}{text}", color=colour, icon=icon)
    ci = getattr(verdict, "ci", None) or []
    ci_text = f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})" if len(ci) == 2 and ci[0] != ci[1] else ""
    st.markdown(f"{verdict.reason}{ci_text}")
    source = getattr(verdict, "threshold_source", "")
    direction = "higher = more leakage" if getattr(verdict, "higher_leaks", True) else \
        "lower = more leakage"
    st.caption(f"Rule: `{verdict.metric}` vs threshold {verdict.threshold:.3g} ({direction})"
               + (f"; threshold from {source}" if source else ""))


def metrics_table(values: Mapping[str, float], prefix: str = "") -> None:
    """Metric, value and what it means (the engine's help text), one row each."""
    names = sorted(values)
    rows = [{"metric": n, "value": _fmt(values[n]),
             "what it means": metric_help(f"{prefix}{n}" if prefix else n) or ""}
            for n in names]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"what it means": st.column_config.TextColumn(width="large")})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4g}"
    return "n/a" if v is None else str(v)
