"""The session's run history as the engine's report runs and as a verdict summary. Numbers and
verdicts are the engine's; face pixels go in only when the user opts in."""

from __future__ import annotations

from typing import Any

from app.state import Run
from facepriv_core import faces, report
from facepriv_core.jobs import JobStatus


def finished(history: list[Run]) -> list[Run]:
    return [r for r in history if r.handle is None or r.handle.status == JobStatus.DONE]


def summary_rows(history: list[Run]) -> list[dict[str, str]]:
    """One row per verdict in the session: run, face, defence, attack, verdict, sentence."""
    rows: list[dict[str, str]] = []

    def add(run: Run, defence: str, attack: str, v: Any) -> None:
        status = getattr(v, "status", "") or ("leaks" if v.leaks else "no_leak")
        rows.append({"run": f"#{run.number}", "faces": run.face_label, "defence": defence,
                     "attack": attack, "verdict": status.replace("_", " "),
                     "reason": v.reason})

    for run in finished(history):
        out = run.output
        if run.kind in ("attack", "protect"):
            result = out if run.kind == "attack" else run.result
            v = getattr(result, "verdict", None)
            if v is not None:
                add(run, f"{run.defence} ({run.params_text()})",
                    run.name if run.kind == "attack" else "identity (one recogniser)", v)
        elif run.kind in ("compare", "benchmark"):
            for item in out or []:
                verdicts = getattr(item.result, "verdicts", None) or {}
                for attack, v in verdicts.items():
                    add(run, item.label, attack, v)
    return rows


def _images(run: Run, extra: dict[str, Any], include_faces: bool) -> dict[str, Any]:
    if not include_faces:
        return {}
    images = {}
    if run.original is not None:
        images["original"] = run.original
    if run.wire_preview is not None:
        images["what the server received"] = run.wire_preview
    images.update(extra)
    return images


def _wire_of(run: Run) -> str:
    handle = run.handle
    result = None if handle is None else handle.result
    return getattr(result, "wire_text", "")


def native_runs(history: list[Run], include_faces: bool) -> list[Any]:
    """The session's finished runs as the engine's report API takes them: RunRecords for
    single-face Protect / Attack runs, AuditResults for Compare / Benchmark, SweepResults."""
    record = report.RunRecord
    out: list[Any] = []
    for run in finished(history):
        extra_images: dict[str, Any] = {}
        if run.kind == "attack":
            result = run.output
            recon = getattr(result, "reconstructions", None)
            if recon is not None:
                extra_images[f"{run.name} reconstruction"] = faces.tensor_to_chips(recon)[0]
            kind, shape = _wire_kind_shape(run)
            out.append(record.attack(result, run.defence, run.params, kind, shape,
                                     key_fingerprint=run.key_fingerprint,
                                     source=run.face_label,
                                     images=_images(run, extra_images, include_faces),
                                     title=run.title))
        elif run.kind == "protect":
            protection = run.handle.result if run.handle is not None else None
            metrics = dict(getattr(run.result, "aggregates", {}) or {})
            kind, shape = _wire_kind_shape(run)
            rec = record.protect(run.defence, run.params, metrics, kind, shape,
                                 key_fingerprint=run.key_fingerprint or getattr(
                                     protection, "key_fingerprint", None),
                                 source=run.face_label,
                                 images=_images(run, {}, include_faces), title=run.title)
            v = getattr(run.result, "verdict", None)
            if v is not None:  # the Protect page's privacy check: identity, one recogniser
                from facepriv_core.verdicts import overall

                rec.verdicts = {"identity": v}
                rec.overall_verdict = overall(rec.verdicts, run.defence)
            out.append(rec)
        elif run.kind in ("compare", "benchmark"):
            out.extend(item.result for item in run.output or [] if item.result is not None)
        elif run.kind == "sweep":
            out.append(run.output)
    return out


def _wire_kind_shape(run: Run) -> tuple[str, list[int]]:
    """('image', [3, 150, 150]) from the run's wire text ('image 3x150x150, 67,500 bytes')."""
    text = run.wire or _wire_of(run)
    kind, _, rest = text.partition(" ")
    dims = rest.split(",")[0]
    try:
        return kind, [int(d) for d in dims.split("x") if d]
    except ValueError:
        return kind, []


def build_report(history: list[Run], title: str, author: str, notes: str,
                 include_faces: bool) -> tuple[str, str]:
    """(JSON, HTML) of the session's report through the engine's report API; the verdict
    summary comes first, face pixels only with `include_faces`."""
    from facepriv_core.audit import environment
    from facepriv_core.models import resolve_device

    env = environment(resolve_device("auto"))
    runs = native_runs(history, include_faces)
    return (report.to_json(runs, env, title=title, author=author, notes=notes),
            report.to_html(runs, env, title=title, author=author, notes=notes,
                           include_faces=include_faces))
