"""Reports a privacy review board can read: JSON and one self-contained HTML page.

    report.to_html(runs, title="...", author="...", notes="...", include_faces=False) -> str
    report.to_json(runs, title=..., author=..., notes=...) -> str

`runs` is every run of a session, in order; each item is an `AuditResult`, an audit's saved
JSON (`facepriv audit --out DIR` writes DIR/result.json) as a dict, a `SweepResult`, a legacy
`Section`, or a `RunRecord` (what the app builds for a single-face Protect or Attack run:
`RunRecord.protect(...)`, `RunRecord.attack(...)`). The page opens with the title, author,
date and notes, then an executive summary (a defence x attack matrix of verdicts with their
one-line reasons), then each run's details as narrow tables that fit a page width.

Face pixels are left out by default: only metrics and the wire's description. With
`include_faces=True` the runs' images are embedded and the page says so at the top. plotly.js
is inlined only when a run carries a figure. Secret keys cannot get in (serialising a
SecretKey is an error) and params that make a key are left out.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facepriv_core import __version__
from facepriv_core.defences.base import SecretKey
from facepriv_core.metric_docs import doc
from facepriv_core.verdicts import OverallVerdict, Verdict, fmt, overall

FACES_WARNING = ("This report contains face images of the people audited. Share it only with "
                 "people allowed to see them; delete it when the review is done.")
NO_FACES_NOTE = ("No face images are included: only metrics and a description of what the "
                 "server receives.")


@dataclass
class Section:
    """A free-form part of a report (legacy API; runs are preferred)."""

    title: str
    kind: str  # "attack", "sweep", "table", "audit"
    data: dict[str, Any]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    figure: Any = None  # a plotly Figure


class RunRecord(BaseModel):
    """One run of a session as the report shows it (no key, no face pixels in the JSON)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: str = Field(description="audit, protect, attack, sweep, benchmark, ...")
    title: str
    defence: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    key_fingerprint: str | None = None
    wire: str = ""
    source: str = ""
    utility: dict[str, float] = Field(default_factory=dict)
    utility_ci: dict[str, list[float]] = Field(default_factory=dict)
    attacks: dict[str, dict[str, float]] = Field(default_factory=dict)
    attack_ci: dict[str, dict[str, list[float]]] = Field(default_factory=dict)
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    overall_verdict: OverallVerdict | None = None
    threat_models: dict[str, str] = Field(default_factory=dict)
    notes: dict[str, str] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict, description="spec, seed, hash, ...")
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    images: dict[str, Any] = Field(default_factory=dict, exclude=True)
    figure: Any = Field(None, exclude=True)

    @classmethod
    def protect(cls, defence: str, params: Mapping[str, Any], metrics: Mapping[str, float],
                wire_kind: str, wire_shape: Sequence[int], key_fingerprint: str | None = None,
                source: str = "one face", images: Mapping[str, np.ndarray] | None = None,
                title: str | None = None) -> RunRecord:
        """A single-face Protect run: defence, params, key fingerprint, wire, metrics."""
        return cls(kind="protect", title=title or f"Protect: {defence}", defence=defence,
                   params=_public(params), key_fingerprint=key_fingerprint,
                   wire=wire_text(wire_kind, wire_shape), source=source,
                   utility={k: float(v) for k, v in metrics.items()}, images=dict(images or {}))

    @classmethod
    def attack(cls, result: Any, defence: str, params: Mapping[str, Any], wire_kind: str,
               wire_shape: Sequence[int], key_fingerprint: str | None = None,
               source: str = "one face", images: Mapping[str, np.ndarray] | None = None,
               title: str | None = None) -> RunRecord:
        """One attack result (`AttackResult`, verdict included) against a defence."""
        verdicts = {result.attack: result.verdict} if result.verdict is not None else {}
        return cls(kind="attack", title=title or f"{result.attack} against {defence}",
                   defence=defence, params=_public(params), key_fingerprint=key_fingerprint,
                   wire=wire_text(wire_kind, wire_shape), source=source,
                   attacks={result.attack: result.aggregates}, verdicts=verdicts,
                   overall_verdict=overall(verdicts, defence) if verdicts else None,
                   threat_models={result.attack: result.threat_model.sentence},
                   images=dict(images or {}))


def _public(params: Mapping[str, Any]) -> dict[str, Any]:
    from facepriv_core.audit.spec import public_params

    return public_params(dict(params))


def wire_text(kind: str, shape: Sequence[int]) -> str:
    """'image, 3 x 150 x 150' / 'features, 256 x 19 x 19': what the server receives."""
    dims = " x ".join(str(int(d)) for d in shape)
    return f"{kind}, {dims} per face" if dims else kind


def as_run(obj: Any) -> RunRecord:
    """Any supported run object as a RunRecord (see the module docstring)."""
    from facepriv_core.audit.runner import SweepResult
    from facepriv_core.audit.spec import AuditResult

    if isinstance(obj, RunRecord):
        return obj
    if isinstance(obj, Section):
        return _section_run(obj)
    if isinstance(obj, SweepResult):
        return _sweep_run(obj)
    if isinstance(obj, Mapping):
        if "points" in obj and "param" in obj:
            return _sweep_run(SweepResult.model_validate(obj))
        return _audit_run(AuditResult.model_validate(obj))
    if isinstance(obj, AuditResult):
        return _audit_run(obj)
    raise TypeError(f"a report cannot show a {type(obj).__name__}")


def _as_verdict(v: Any) -> Verdict | None:
    """A Verdict from a Verdict or its dict (missing optional fields get neutral values)."""
    if isinstance(v, Verdict):
        return v
    if not isinstance(v, Mapping) or "leaks" not in v or "reason" not in v:
        return None
    value = float(v.get("value", float("nan")))
    defaults = {"metric": "", "value": value, "threshold": float("nan"), "ci": [value, value],
                "threshold_source": "", "higher_leaks": True,
                "status": "leaks" if v["leaks"] else "no_leak"}
    known = set(Verdict.model_fields)
    return Verdict.model_validate({**defaults, **{k: x for k, x in v.items() if k in known
                                                  and x not in (None, "")}})


def _section_run(s: Section) -> RunRecord:
    """A legacy Section as a run: its 'ran on' block names the defence, its 'verdict' (one
    attack) or 'verdicts' (by attack) go into the summary, the rest become tables."""
    data = dict(s.data)
    ran_on = data.pop("ran on", None) if isinstance(data.get("ran on"), Mapping) else None
    verdicts: dict[str, Verdict] = {}
    name = str(data.get("attack") or (s.title.split(" against ")[0] if " against " in s.title
                                      else s.kind))
    one = _as_verdict(data.get("verdict"))
    if one is not None:
        verdicts[name] = one
        data.pop("verdict")
    if isinstance(data.get("verdicts"), Mapping):
        many = {str(k): _as_verdict(v) for k, v in data["verdicts"].items()}
        verdicts.update({k: v for k, v in many.items() if v is not None})
        if len(verdicts) == len(many) + (one is not None):
            data.pop("verdicts")
    record = RunRecord(kind=s.kind, title=s.title, images=s.images, figure=s.figure,
                       verdicts=verdicts, facts=_flat_scalars(data), tables=_tables(data))
    if ran_on is not None:
        params = ran_on.get("params", {})
        record.defence = str(ran_on.get("defence", ""))
        record.params = _public(params) if isinstance(params, Mapping) else {}
        if params and not isinstance(params, Mapping):
            record.facts = {"parameters": params, **record.facts}
        record.wire = str(ran_on.get("wire", ""))
        record.key_fingerprint = ran_on.get("key fingerprint") or ran_on.get("key_fingerprint")
        record.source = str(ran_on.get("faces", ""))
        extra = {k: v for k, v in ran_on.items() if k not in
                 ("params", "defence", "wire", "key fingerprint", "key_fingerprint", "faces")}
        record.facts = {**_flat_scalars(extra), **record.facts}
    if verdicts:
        record.overall_verdict = overall(verdicts, _defence_label(record))
    return record


def _audit_run(r: Any) -> RunRecord:
    spec = r.spec
    source = (f"dataset {spec.dataset}" if spec.dataset else f"{len(spec.images)} photo(s)")
    facts: dict[str, Any] = {
        "faces audited": len(r.rows), "faces skipped": len(r.failures),
        "recogniser (authorised)": spec.recogniser, "seed": spec.seed,
        "bootstrap resamples": spec.bootstrap, "spec hash": r.spec_hash,
        "attacks": ", ".join(f"{a.name}" + (f" ({_kv(a.params)})" if a.params else "")
                             for a in spec.attacks) or "none",
    }
    if r.key is not None:
        facts["key"] = (f"{r.key.label}, {'secret' if r.key.secret else 'reproducible'}")
    return RunRecord(
        kind="audit", title=f"Audit: {r.defence}" + (f" ({_kv(_public(spec.defence_params))})"
                                                     if spec.defence_params else ""),
        defence=r.defence, params=_public(spec.defence_params),
        key_fingerprint=r.key.fingerprint if r.key is not None else None,
        wire=wire_text(r.wire_kind, r.wire_shape), source=source,
        utility={k: v.mean for k, v in r.utility.items()},
        utility_ci={k: [v.ci_low, v.ci_high] for k, v in r.utility.items()},
        attacks={a: {k: v.mean for k, v in m.items()} for a, m in r.attacks.items()},
        attack_ci={a: {k: [v.ci_low, v.ci_high] for k, v in m.items()}
                   for a, m in r.attacks.items()},
        verdicts=dict(r.verdicts), overall_verdict=r.overall_verdict,
        threat_models=dict(r.threat_models), notes=dict(r.notes), facts=facts,
        images=dict(r.images))


def _sweep_run(s: Any) -> RunRecord:
    from facepriv_core.audit.curves import curve_data

    curve = curve_data(s)
    rows = [{s.param: p.value, curve.x_label: pt.x, curve.y_label: pt.y,
             "verdict": p.overall_verdict.reason if p.overall_verdict else ""}
            for p, pt in zip(s.points, curve.points, strict=True)]
    if curve.reference is not None:
        rows.append({s.param: "no defence", curve.x_label: curve.reference.x,
                     curve.y_label: curve.reference.y, "verdict": ""})
    facts: dict[str, Any] = {"x": curve.x_label, "y": curve.y_label}
    if curve.chance is not None:
        facts["chance level (y)"] = curve.chance
    if curve.caution:
        facts["caution"] = curve.caution
    last = s.points[-1] if s.points else None
    if last is not None:
        facts["verdicts in the summary"] = f"the last point ({s.param}={last.value})"
    return RunRecord(kind="sweep", title=f"Sweep: {s.defence}.{s.param}", defence=s.defence,
                     params={s.param: last.value} if last is not None else {},
                     facts=facts, tables={"curve": rows},
                     verdicts=dict(last.verdicts) if last else {},
                     overall_verdict=last.overall_verdict if last else None,
                     figure=_curve_figure(curve))


def _curve_figure(curve: Any) -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover - plotly is a dependency
        return None
    fig = go.Figure(go.Scatter(x=[p.x for p in curve.points], y=[p.y for p in curve.points],
                               mode="lines+markers+text", text=[p.label for p in curve.points],
                               textposition="top center", name=curve.defence))
    if curve.reference is not None:
        fig.add_trace(go.Scatter(x=[curve.reference.x], y=[curve.reference.y],
                                 mode="markers", marker_symbol="star", marker_size=14,
                                 name="no defence"))
    if curve.chance is not None:
        fig.add_hline(y=curve.chance, line_dash="dot", annotation_text=curve.chance_label)
    fig.update_layout(title=f"{curve.defence}: privacy vs utility", xaxis_title=curve.x_label,
                      yaxis_title=curve.y_label, width=700, height=420)
    return fig


def _kv(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _flat_scalars(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as 'a.b' keys; lists of scalars joined; lists of dicts left to _tables."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_scalars(v, f"{key}."))
        elif isinstance(v, list | tuple):
            if v and all(isinstance(x, Mapping) for x in v):
                continue
            out[key] = ", ".join(_cell_text(x) for x in v)
        else:
            out[key] = v
    return out


def _tables(data: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {k: [dict(x) for x in v] for k, v in data.items()
            if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v)}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, SecretKey):
        raise TypeError("a secret key cannot go into a report")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _check_no_secret(obj: Any) -> None:
    """Raise if a SecretKey hides anywhere in the data (the HTML path does not serialise)."""
    if isinstance(obj, SecretKey):
        raise TypeError("a secret key cannot go into a report")
    if isinstance(obj, Mapping):
        for v in obj.values():
            _check_no_secret(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_no_secret(v)


def _records(runs: Sequence[Any]) -> list[RunRecord]:
    for r in runs:
        if isinstance(r, Section):
            _check_no_secret(r.data)
    return [as_run(r) for r in runs]


def to_json(runs: Sequence[Any], environment: Mapping[str, str] | None = None, *,
            title: str = "FacePriv privacy audit", author: str = "", notes: str = "",
            date: dt.datetime | None = None) -> str:
    """The report's data (no images): header, the verdict matrix and every run."""
    records = _records(runs)
    when = date or dt.datetime.now(dt.UTC)
    doc_ = {
        "title": title, "author": author, "notes": notes,
        "created": when.isoformat(timespec="seconds"), "facepriv": __version__,
        "environment": dict(environment or {}),
        "summary": [{"run": r.title, "defence": r.defence, "params": r.params,
                     "overall_verdict": r.overall_verdict.model_dump()
                     if r.overall_verdict else None,
                     "verdicts": {a: {"leaks": v.leaks, "status": v.status,
                                      "reason": v.reason} for a, v in r.verdicts.items()}}
                    for r in records],
        "runs": [r.model_dump() for r in records],
    }
    return json.dumps(doc_, indent=2, default=_json_default, allow_nan=True)


# HTML ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.8em}
h3{margin:1.4em 0 .4em}h4{margin:1em 0 .3em;color:#444}
.meta{color:#555;margin:.2em 0}.notes{background:#f6f8fa;border-left:4px solid #8aa;
padding:.6em 1em;white-space:pre-wrap}
.privacy{padding:.6em 1em;border-radius:4px;margin:1em 0}.privacy.warn{background:#fff3cd;
border:1px solid #e0b400}.privacy.ok{background:#eef6ee;border:1px solid #9c9}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.4em 0 1em}
td,th{border:1px solid #d0d0d0;padding:4px 8px;font-size:13px;text-align:left;
vertical-align:top;overflow-wrap:anywhere}th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv td:first-child{width:32%;color:#444}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;
font-weight:600;color:#fff;margin-right:4px}.leaks{background:#c0392b}
.no_leak{background:#2e7d32}.inconclusive{background:#b9770e}.utility{background:#5d6d7e}
.na{background:#999}.overall{font-size:15px;margin:.4em 0 .8em}
.reason{font-size:12.5px;color:#333}figure{display:inline-block;margin:4px;text-align:center}
figcaption{font-size:12px;color:#555}.muted{color:#777;font-size:12px}
@media print{body{max-width:none}h2{page-break-before:auto}}
"""

BADGE = {"leaks": "LEAKS", "no_leak": "no leak", "inconclusive": "inconclusive",
         "utility": "utility", "na": "no verdict"}


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _cell_text(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return fmt(float(value))
    return str(value)


def _badge(status: str) -> str:
    return f"<span class='badge {status}'>{BADGE.get(status, _esc(status))}</span>"


def _kv_table(rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_cell_text(v))}</td></tr>"
                   for k, v in rows.items() if v not in (None, "", {}))
    return f"<table class='kv'><tbody>{body}</tbody></table>" if body else ""


def _rows_table(rows: list[dict[str, Any]], max_columns: int = 7) -> str:
    """A table of row dicts; wider than max_columns, it is shown transposed (one row per
    column) so it still fits the page."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if len(columns) > max_columns and len(rows) <= max_columns:
        head = "<th></th>" + "".join(f"<th>#{i + 1}</th>" for i in range(len(rows)))
        body = "".join(
            f"<tr><td>{_esc(c)}</td>" + "".join(_num_td(r.get(c)) for r in rows) + "</tr>"
            for c in columns)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if len(columns) > max_columns:  # long and wide: split the columns into narrow tables
        return "".join(_rows_table([{c: r.get(c) for c in chunk} for r in rows], max_columns)
                       for chunk in (columns[i:i + max_columns]
                                     for i in range(0, len(columns), max_columns)))
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_num_td(r.get(c)) for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num_td(value: Any) -> str:
    if value is None:
        return "<td class='muted'>-</td>"
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return f"<td class='num'>{_esc(_cell_text(value))}</td>"
    return f"<td>{_esc(_cell_text(value))}</td>"


def _metric_table(values: Mapping[str, float], cis: Mapping[str, list[float]],
                  section: str) -> str:
    rows = []
    for k, v in values.items():
        d = doc(k, section)  # type: ignore[arg-type]
        ci = cis.get(k)
        ci_text = (f"{fmt(ci[0])} - {fmt(ci[1])}" if ci and ci[0] != ci[1]
                   and np.isfinite(ci).all() else "")
        rows.append(f"<tr><td title='{_esc(d.help)}'>{_esc(d.title)}<br>"
                    f"<span class='muted'>{_esc(k)}</span></td>"
                    f"<td class='num'>{_esc(fmt(float(v)))}</td><td class='num'>{ci_text}</td>"
                    f"<td class='reason'>{_esc(d.direction_text)}</td></tr>")
    if not rows:
        return ""
    return ("<table><colgroup><col style='width:40%'><col style='width:14%'>"
            "<col style='width:20%'><col></colgroup><thead><tr><th>metric</th><th>value</th>"
            "<th>95% CI</th><th>direction</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def _verdict_rules_table(v: Verdict) -> str:
    rows = "".join(
        f"<tr><td>{_esc(doc(o.metric, 'attack').title)}</td>"
        f"<td class='num'>{fmt(o.value)}</td>"
        f"<td class='num'>{fmt(o.ci[0])} - {fmt(o.ci[1])}</td>"
        f"<td class='num'>{fmt(o.threshold)}</td><td class='reason'>{_esc(o.threshold_source)}"
        f"</td><td>{_badge(o.status)}</td></tr>" for o in v.rules)
    return ("<table><colgroup><col style='width:24%'><col style='width:10%'>"
            "<col style='width:15%'><col style='width:10%'><col><col style='width:13%'>"
            "</colgroup><thead><tr><th>rule</th><th>value</th><th>95% CI</th><th>threshold</th>"
            "<th>threshold from</th><th>status</th></tr></thead><tbody>" + rows
            + "</tbody></table>")


def _png_uri(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _defence_label(r: RunRecord) -> str:
    if not r.defence:
        return r.title
    params = _kv(r.params) if r.params else str(r.facts.get("parameters", ""))
    return r.defence + (f" ({params})" if params else "")


def _summary(records: list[RunRecord]) -> str:
    """The executive summary: one row per run that has verdicts, one column per attack,
    each cell a badge and the verdict's sentence; the run's overall line first."""
    judged = [r for r in records if r.verdicts or r.overall_verdict]
    if not judged:
        return ("<p>No run of this report carries a verdict: run an attack or an audit to "
                "judge a defence.</p>")
    attacks = list(dict.fromkeys(a for r in judged for a in r.verdicts))
    out = []
    leaking = [r for r in judged if r.overall_verdict and r.overall_verdict.leaks]
    out.append(f"<p class='overall'><b>{len(leaking)} of {len(judged)} judged runs show a "
               "leak.</b> A verdict <i>leaks</i> when the whole 95% confidence interval of "
               "the attack's headline metric lies beyond its threshold (chance, a majority "
               "class, a mean face or a recogniser's same-person threshold).</p>")
    if len(attacks) <= 3:
        head = "<th style='width:22%'>defence (run)</th><th style='width:18%'>overall</th>" \
            + "".join(f"<th>{_esc(a)}</th>" for a in attacks)
        body = []
        for r in judged:
            o = r.overall_verdict
            cells = [f"<td><b>{_esc(_defence_label(r))}</b><br><span class='muted'>"
                     f"{_esc(r.title)}</span></td>",
                     f"<td>{_badge(o.status if o else 'na')}</td>"]
            for a in attacks:
                v = r.verdicts.get(a)
                cells.append(f"<td>{_badge(v.status)}<div class='reason'>{_esc(v.reason)}"
                             "</div></td>" if v else "<td class='muted'>not run</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                   "</tbody></table>")
    else:  # many attacks: one block per run, one line per attack (fits any width)
        for r in judged:
            o = r.overall_verdict
            out.append(f"<h4>{_badge(o.status if o else 'na')}"
                       f"{_esc(_defence_label(r))} <span class='muted'>{_esc(r.title)}"
                       "</span></h4><table><colgroup><col style='width:20%'>"
                       "<col style='width:14%'><col></colgroup><tbody>")
            for a in attacks:
                v = r.verdicts.get(a)
                out.append(f"<tr><td>{_esc(a)}</td><td>{_badge(v.status)}</td><td "
                           f"class='reason'>{_esc(v.reason)}</td></tr>" if v else
                           f"<tr><td>{_esc(a)}</td><td class='muted'>not run</td><td></td>"
                           "</tr>")
            out.append("</tbody></table>")
    out.append("<ul>" + "".join(f"<li><b>{_esc(_defence_label(r))}</b>: "
                                f"{_esc(r.overall_verdict.reason)}</li>"
                                for r in judged if r.overall_verdict) + "</ul>")
    return "".join(out)


def _run_details(i: int, r: RunRecord, include_faces: bool) -> str:
    out = [f"<h3 id='run-{i}'>{i}. {_esc(r.title)}</h3>"]
    facts: dict[str, Any] = {"kind": r.kind, "defence": r.defence,
                             "parameters": _kv(r.params) if r.params else "defaults",
                             "key fingerprint": r.key_fingerprint,
                             "what the server receives": r.wire, "faces": r.source}
    if not r.defence:
        facts.pop("parameters")
    facts.update(r.facts)
    out.append(_kv_table(facts))
    if r.overall_verdict:
        o = r.overall_verdict
        out.append(f"<p>{_badge(o.status)}{_esc(o.reason)}</p>")
    if r.utility:
        out.append("<h4>Utility and protection</h4>"
                   + _metric_table(r.utility, r.utility_ci, "utility"))
    if r.notes:
        out.append(_kv_table({f"note: {k}": v for k, v in r.notes.items()}))
    for attack, values in r.attacks.items():
        out.append(f"<h4>Attack: {_esc(attack)}</h4>")
        if attack in r.threat_models:
            out.append(f"<p class='reason'><b>Threat model:</b> "
                       f"{_esc(r.threat_models[attack])}</p>")
        v = r.verdicts.get(attack)
        if v is not None:
            out.append(f"<p>{_badge(v.status)}{_esc(v.reason)}</p>" + _verdict_rules_table(v))
        out.append(_metric_table(values, r.attack_ci.get(attack, {}), "attack"))
    for name, rows in r.tables.items():
        out.append(f"<h4>{_esc(name)}</h4>" + _rows_table(rows))
    if include_faces and r.images:
        figs = []
        for caption, image in r.images.items():
            arr = np.asarray(image)
            first = arr[0] if arr.ndim == 4 else arr
            if first.ndim == 3 and first.dtype == np.uint8:
                figs.append(f"<figure><img src='{_png_uri(first)}' width='150' alt=''>"
                            f"<figcaption>{_esc(caption)}</figcaption></figure>")
        out.append("<div>" + "".join(figs) + "</div>")
    if r.figure is not None:
        out.append(r.figure.to_html(full_html=False, include_plotlyjs=False))
    return "".join(out)


def to_html(runs: Sequence[Any], environment: Mapping[str, str] | None = None, *,
            title: str = "FacePriv privacy audit", author: str = "", notes: str = "",
            include_faces: bool = False, date: dt.datetime | None = None) -> str:
    """One self-contained HTML page for a review board (see the module docstring).

    runs: AuditResult, saved audit JSON dicts, SweepResult, RunRecord or Section, in order;
    environment: versions and device (shown at the end); title/author/notes: the header;
    include_faces: embed the runs' face images (off by default; the page warns when on).
    """
    records = _records(runs)
    when = date or dt.datetime.now(dt.UTC)
    figures = any(r.figure is not None for r in records)
    script = ""
    if figures:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"
    privacy = (f"<div class='privacy warn'><b>Contains faces.</b> {FACES_WARNING}</div>"
               if include_faces else f"<div class='privacy ok'>{NO_FACES_NOTE} Secret keys "
               "and the seeds that make them are never included.</div>")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{CSS}</style>{script}</head><body>",
        f"<header><h1>{_esc(title)}</h1>",
        f"<p class='meta'>Author: {_esc(author) if author else '<i>not given</i>'}</p>",
        f"<p class='meta'>Date: {when:%Y-%m-%d %H:%M} UTC &middot; facepriv {__version__} "
        f"&middot; {len(records)} run{'s' if len(records) != 1 else ''}</p>",
        f"<div class='notes'>{_esc(notes)}</div>" if notes else "",
        privacy, "</header>",
        "<section id='summary'><h2>Summary of verdicts</h2>", _summary(records), "</section>",
        "<section id='details'><h2>Details of each run</h2>",
        "".join(_run_details(i + 1, r, include_faces) for i, r in enumerate(records)),
        "</section>",
    ]
    if environment:
        parts.append("<section id='environment'><h2>Environment</h2>"
                     + _kv_table(dict(environment)) + "</section>")
    parts.append("</body></html>")
    return "".join(parts)
