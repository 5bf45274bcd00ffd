"""Assemble an audit from per-attack shards so the numbers equal a one-process run.

Each shard ran the spec with a single attack on the same faces, seed and (keyless or
reproducible) protection, so its utility rows and its attack's rows are exactly what the
one-process audit computes; the bootstrap CIs are drawn again over the assembled rows in the
one-process order (`audit.runner.estimates`).
"""

from __future__ import annotations

from typing import Any

from facepriv_core.audit.spec import AuditResult, AuditSpec

_UTILITY_ROW_KEYS = ("utility_cosine", "ssim", "psnr")
#: Utility estimates every shard measures over all the faces (kept with their intervals).
_WHOLE_SET_KEYS = ("verification_accuracy", "verification_accuracy_clean")


def shard_specs(spec: AuditSpec) -> list[AuditSpec]:
    """One spec per attack (one spec with none when the audit has no attack)."""
    if len(spec.attacks) <= 1:
        return [spec]
    return [spec.model_copy(update={"attacks": [a]}) for a in spec.attacks]


def merge_attack_shards(spec: AuditSpec, parts: list[AuditResult]) -> AuditResult:
    """The audit of `spec` from the results of `shard_specs(spec)`, in that order."""
    from facepriv_core.audit.runner import defence_label, estimates
    from facepriv_core.verdicts import overall

    if len(parts) == 1:
        return parts[0]
    base = parts[0]
    rows = [dict(r) for r in base.rows]
    timings = dict(base.timings)
    threat_models: dict[str, str] = {}
    verdicts: dict[str, Any] = {}
    images = dict(base.images)
    for part in parts:
        names = list(part.attacks)
        for row, prow in zip(rows, part.rows, strict=True):
            row.update({k: v for k, v in prow.items()
                        if any(k.startswith(f"{n}.") for n in names)})
        threat_models.update(part.threat_models)
        verdicts.update(part.verdicts)
        timings.update({k: v for k, v in part.timings.items() if k.startswith("attack_")})
        images.update({k: v for k, v in part.images.items()
                       if k not in ("original", "protected")})
    order = list(dict.fromkeys(a.name for a in spec.attacks))
    attack_out = {n: [{k[len(n) + 1:]: v for k, v in row.items() if k.startswith(f"{n}.")}
                      for row in rows] for n in order}
    wire_metrics = {k: v.mean for k, v in base.utility.items()
                    if k not in _UTILITY_ROW_KEYS + _WHOLE_SET_KEYS}
    utility, attack_estimates = estimates(spec, rows, attack_out, wire_metrics)
    utility.update({k: base.utility[k] for k in _WHOLE_SET_KEYS if k in base.utility})
    verdicts = {n: verdicts[n] for n in order if n in verdicts}
    merged = base.model_copy(update={
        "spec": spec, "spec_hash": spec.spec_hash(), "utility": utility,
        "attacks": attack_estimates, "rows": rows, "timings": timings,
        "threat_models": {n: threat_models[n] for n in order if n in threat_models},
        "verdicts": verdicts, "overall_verdict": overall(verdicts, defence_label(spec)),
    })
    merged.images.clear()
    merged.images.update(images)
    return merged
