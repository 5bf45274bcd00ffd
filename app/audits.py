"""Audits of several defences on the same faces, as one background job (Compare and
Benchmark pages), and their table with every cell filled. Numbers and verdicts come from
`facepriv_core.audit`; attacks that do not apply to a defence's wire are skipped and said so."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepriv_core import attacks, audit, datasets, defences
from facepriv_core.jobs import JobContext

NOT_APPLICABLE = "n/a"


@dataclass
class DefenceAudit:
    """One defence with its params, audited (or the reason it could not be)."""

    defence: str
    params: dict[str, Any]
    result: audit.AuditResult | None = None
    error: str = ""
    skipped: dict[str, str] = field(default_factory=dict)  # attack -> why it was not run

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v not in ("", None))
        return f"{self.defence} ({shown})" if shown else self.defence


def applicable_attacks(defence: str, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The attacks whose declared wire kinds include the defence's, and why the others not."""
    wire = defences.get(defence).wire_kind
    keep, skipped = [], {}
    for n in names:
        a = attacks.get(n)
        if wire in a.applies_to:
            keep.append(n)
        else:
            skipped[n] = f"does not apply to a {wire} wire"
    return keep, skipped


def people_sample(ds: datasets.FaceDataset, limit: int, seed: int = 0, per_person: int = 5
                  ) -> datasets.FaceDataset:
    """Up to `limit` faces, a few photos each of randomly drawn people (seeded): verification
    needs same-person pairs and rank-1 needs a gallery, which a uniform draw of a few faces
    from many people rarely gives. Datasets with one photo per person get a uniform draw."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(ds.identities)
    chosen: list[int] = []
    for person in rng.permutation(np.unique(ids)):
        photos = np.flatnonzero(ids == person)
        if len(photos) >= 2:
            chosen += [int(i) for i in rng.permutation(photos)[:per_person]]
        if len(chosen) >= limit:
            break
    if len(chosen) < 2:
        return ds.limit(limit, seed=seed)
    return ds.subset(sorted(chosen[:limit]))


def load_dataset_faces(spec: str, limit: int, seed: int = 0) -> audit.Faces:
    ds = people_sample(datasets.load(spec), limit, seed)
    aligned = datasets.align_dataset(ds)
    return audit.Faces(aligned.chips, ds.identities[aligned.indices],
                       [ds.keys[i] if ds.keys else str(i) for i in aligned.indices],
                       aligned.failures)


def audit_defences(ctx: JobContext, chosen: list[tuple[str, dict[str, Any]]],
                   attack_names: list[str], faces: audit.Faces | None, dataset: str,
                   limit: int, seed: int = 0, runner: Any = None) -> list[DefenceAudit]:
    """Align once (dataset) or use the faces given, then audit each defence on them, on
    `runner` (the sidebar's choice; local when None)."""
    if runner is None:
        from facepriv_core.runners import LocalRunner

        runner = LocalRunner()
    if faces is None:
        ctx.report(0, len(chosen), phase="aligning the dataset sample")
        faces = load_dataset_faces(dataset, limit, seed)
    out: list[DefenceAudit] = []
    for i, (name, params) in enumerate(chosen):
        ctx.check_cancel()
        ctx.report(i, len(chosen), phase=f"auditing {name} ({i + 1}/{len(chosen)})")
        keep, skipped = applicable_attacks(name, attack_names)
        item = DefenceAudit(name, params, skipped=skipped)
        spec = audit.AuditSpec(defence=name, defence_params=params, dataset=dataset,
                               limit=limit, seed=seed, bootstrap=200 if len(faces.chips) > 1
                               else 0, attacks=[audit.AttackSpec(name=a) for a in keep])
        try:
            item.result = runner.audit(spec, cancel=ctx.cancelled, faces=faces)
        except (ValueError, RuntimeError) as exc:  # typed engine errors derive from these
            if ctx.cancelled():
                raise
            item.error = str(exc)
        out.append(item)
        ctx.partial(list(out))
    ctx.report(len(chosen), len(chosen), phase="done")
    return out


def table_rows(items: list[DefenceAudit], numbers: bool = False) -> list[dict[str, Any]]:
    """One row per defence: params, utility, each attack's headline metrics and verdict.
    Every column has a value in every row: numbers formatted (or raw with `numbers`), "n/a"
    where an attack does not apply, the error where the audit failed."""
    rows: list[dict[str, Any]] = []
    for item in items:
        row: dict[str, Any] = {"defence": item.defence,
                               "params": item.label.partition(" (")[2].rstrip(")") or
                               "defaults"}
        if item.result is not None:
            base = audit.table([item.result])[0]
            base.pop("defence", None)
            base.pop("params", None)
            row.update(base)
            verdicts = getattr(item.result, "verdicts", None) or {}
            for attack, v in verdicts.items():
                row[f"{attack} verdict"] = "leaks" if v.leaks else "holds"
            overall = getattr(item.result, "overall_verdict", None)
            if overall is not None:
                row["overall"] = "leaks" if overall.leaks else "holds"
        else:
            row["error"] = item.error
        for attack in item.skipped:
            row[f"{attack} verdict"] = NOT_APPLICABLE
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    filled = []
    for r in rows:
        out: dict[str, Any] = {}
        for c in columns:
            v = r.get(c)
            if numbers:
                out[c] = v
            elif v is None:
                out[c] = NOT_APPLICABLE if c != "error" else ""
            elif isinstance(v, float):
                out[c] = "n/a" if v != v else f"{v:.3f}"
            else:
                out[c] = str(v)
        filled.append(out)
    return filled


def default_dataset() -> str:
    """The dataset sample pages start from: Olivetti (ten photos per person, so verification
    and rank-1 mean something) when this machine has it, else the first one found."""
    from facepriv_core import data_sources

    found = data_sources.available_datasets()
    return next((d.spec for d in found if d.name == "olivetti"),
                found[0].spec if found else "")

