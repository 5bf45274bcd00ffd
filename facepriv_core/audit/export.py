"""Audit results as tables in the style of the papers' tables, and as CSV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facepriv_core.audit.spec import AuditResult

TABLE_METRICS = ("match_rate", "rank1", "cosine", "ssim", "psnr", "srra", "attr_cossim",
                 "gender_flip_rate", "age_abs_error", "emotion_agreement")


def table(results: Sequence[AuditResult]) -> list[dict[str, Any]]:
    """One row per audit in the style of the FaceMix and PMT tables: the defence and its params,
    utility means, then each attack's headline metrics as 'attack.metric' columns."""
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "defence": r.defence,
            "params": ", ".join(f"{k}={v}" for k, v in r.spec.defence_params.items()),
            "faces": len(r.rows),
        }
        row.update({k: v.mean for k, v in r.utility.items()})
        for attack, estimates in r.attacks.items():
            row.update({f"{attack}.{m}": e.mean for m, e in estimates.items()
                        if m in TABLE_METRICS})
        rows.append(row)
    return rows


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    import csv
    import io

    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
