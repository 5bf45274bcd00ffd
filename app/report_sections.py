"""The session's run history as report sections and as a verdict summary. Numbers and
verdicts are the engine's; face pixels go in only when the user opts in."""

from __future__ import annotations

from typing import Any

from app.audits import DefenceAudit, table_rows
from app.charts import Curve, axis_names, sweep_figure
from app.state import Run
from facepriv_core import faces, report
from facepriv_core.jobs import JobStatus


def _verdict_dict(v: Any) -> dict[str, Any]:
    return {"leaks": bool(v.leaks), "status": getattr(v, "status", ""), "metric": v.metric,
            "value": v.value, "threshold": v.threshold, "reason": v.reason}


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


def sections(history: list[Run], include_faces: bool = False) -> list[report.Section]:
    """Every finished run as a section: what it ran on (face label, defence, params, seed,
    key fingerprint, wire), the engine's verdicts and metrics; images only if asked."""
    out: list[report.Section] = []
    for run in finished(history):
        bound = {"faces": run.face_label, "defence": run.defence, "seed": run.seed}
        if run.kind in ("attack", "protect"):
            bound.update({"params": run.params_text(), "wire": run.wire or _wire_of(run)})
            if run.key_fingerprint:
                bound["key fingerprint"] = run.key_fingerprint
        result = run.output if run.kind == "attack" else run.result
        if run.kind == "protect" and run.handle is not None and run.handle.result is not None:
            p = run.handle.result
            bound["wire"] = p.wire_text
            if p.key_fingerprint:
                bound["key fingerprint"] = p.key_fingerprint
        data: dict[str, Any] = {"ran on": bound}
        images: dict[str, Any] = {}
        figure = None
        if run.kind in ("attack", "protect") and result is not None:
            v = getattr(result, "verdict", None)
            if v is not None:
                data["verdict"] = _verdict_dict(v)
            data["metrics"] = dict(result.aggregates)
            if run.kind == "attack":
                data["threat model"] = run.extra.get("threat_model", "")
                data["attack params"] = run.extra.get("attack_params", {})
            recon = getattr(result, "reconstructions", None)
            images = _images(run, {} if recon is None else {
                f"{run.name} reconstruction": faces.tensor_to_chips(recon)[0]}, include_faces)
        elif run.kind in ("compare", "benchmark"):
            items: list[DefenceAudit] = run.output or []
            data["attacks"] = ", ".join(run.extra.get("attacks", [])) or "none"
            data["table"] = table_rows(items)
            for item in items:
                overall = getattr(item.result, "overall_verdict", None)
                if overall is not None:
                    data[f"overall verdict: {item.label}"] = overall.reason
            if include_faces and run.kind == "compare":
                for item in items:
                    if item.result is not None and "protected" in item.result.images:
                        images[f"{item.label}: wire"] = item.result.images["protected"][0]
        elif run.kind == "sweep":
            curve: Curve = run.output
            xs, ys = axis_names([curve])
            data["points"] = [{curve.sweep.param: p.value, **p.utility,
                               **{f"{a}.{m}": v for a, ms in p.attacks.items()
                                  for m, v in ms.items()}} for p in curve.sweep.points]
            if xs and ys:
                figure = sweep_figure([curve], xs[0], ys[0])
        out.append(report.Section(f"{run.title}", _kind(run.kind), data, images=images,
                                  figure=figure))
    return out


def _wire_of(run: Run) -> str:
    handle = run.handle
    result = None if handle is None else handle.result
    return getattr(result, "wire_text", "")


def _kind(kind: str) -> str:
    return {"attack": "attack", "protect": "attack", "sweep": "sweep"}.get(kind, "table")


def native_runs(history: list[Run], include_faces: bool) -> list[Any]:
    """The session's finished runs as the engine's report API takes them: RunRecords for
    single-face Protect / Attack runs, AuditResults for Compare / Benchmark, SweepResults."""
    record = report.RunRecord  # type: ignore[attr-defined, unused-ignore]
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
            out.append(run.output.sweep)
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
    if hasattr(report, "RunRecord"):  # the engine's review-board report
        runs = native_runs(history, include_faces)
        to_html: Any = report.to_html
        to_json: Any = report.to_json
        return (to_json(runs, env, title=title, author=author, notes=notes),
                to_html(runs, env, title=title, author=author, notes=notes,
                        include_faces=include_faces))
    parts = sections(history, include_faces=include_faces)
    front = {"title": title, "author": author or "(not given)", "notes": notes or "(none)"}
    html = report.to_html([report.Section("About this report", "table", {"about": front}),
                           report.Section("Verdict summary", "table",
                                          {"verdicts": summary_rows(history)}),
                           *parts], env)
    return report.to_json(parts, env), html
