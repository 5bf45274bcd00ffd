"""FacePriv's second front end: Gradio Blocks, for ZeroGPU Spaces and scripted audits.

`python -m app.gradio_app` (or `facepriv serve --ui gradio`) serves the auditor's core path on
one page: a face (the built-in sample or an upload), a defence with widgets drawn from its
pydantic `Params`, the protected output beside what the server receives, attacks streamed live
(progress and the reconstruction improving) with the engine's verdict, a privacy/utility curve
and an HTML report. The same engine computes everything (facepriv_core; the verdicts are the
ones `facepriv audit` prints). API endpoints `/protect`, `/attack`, `/audit` and `/verify`
(app/gradio_api.py) take typed arguments and return the CLI's JSON.

Privacy, as in the Streamlit app: analytics off; no CDN fonts (system fonts); uploads and
served images live in a private temporary folder in RAM (/dev/shm where it exists), cleaned
every minute and removed at exit; API images travel base64 and never touch disk; keys never
leave the engine; session results live in this process's memory, per browser session.
"""


import atexit
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _private_temp_dir() -> Path:
    """A 0700 folder in RAM when the OS has one: where Gradio keeps uploads it receives."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="facepriv-gradio-", dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


if __package__ in (None, ""):  # run as a file (a Space's app_file): make `app` importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("GRADIO_TEMP_DIR", str(_private_temp_dir()))

import gradio as gr  # noqa: E402  (the settings above must come first)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from app import gradio_api  # noqa: E402
from app.gpu import gpu  # noqa: E402
from facepriv_core import attacks, audit, defences, faces, metrics, models, report  # noqa: E402
from facepriv_core.attacks.base import AttackCase, ProgressEvent  # noqa: E402
from facepriv_core.defences.keys import (  # noqa: E402
    REPRODUCIBLE_LABEL,
    SECRET_LABEL,
    KeySource,
)
from facepriv_core.errors import FacePrivError  # noqa: E402
from facepriv_core.plugin_catalog import describe_params  # noqa: E402

MAX_SESSIONS = 64
DEFAULT_DEFENCE = "pixelate"
THEME = gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])


@dataclass
class Session:
    """One browser session's state, in memory only: the face, its protection and its runs."""

    face: faces.FaceImage | None = None
    face_label: str = gradio_api.SAMPLE_KEY
    defence: str = DEFAULT_DEFENCE
    params: dict[str, Any] = field(default_factory=dict)
    protection: Any = None  # (x, Protected, Defence, params) of the last protect
    runs: list[report.RunRecord] = field(default_factory=list)


_SESSIONS: OrderedDict[str, Session] = OrderedDict()
_LOCK = threading.Lock()


def session(request: gr.Request | None) -> Session:
    """This browser session's state (the oldest sessions are dropped past MAX_SESSIONS)."""
    key = getattr(request, "session_hash", None) or "local"
    with _LOCK:
        state = _SESSIONS.pop(key, None) or Session()
        _SESSIONS[key] = state
        while len(_SESSIONS) > MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
        return state


def forget(request: gr.Request) -> None:
    """Drop a closed session's faces and results at once."""
    with _LOCK:
        _SESSIONS.pop(getattr(request, "session_hash", None) or "local", None)


def user_error(exc: Exception) -> gr.Error:
    """A FacePriv error in words (never a class name or traceback)."""
    return gr.Error(str(exc), print_exception=False)


# ---- widgets drawn from a plugin's Params -------------------------------------------------


def widget_for(spec: dict[str, Any]) -> gr.components.Component:
    """One input widget for one parameter, from its description (type, bounds, choices)."""
    label, info, default = spec["name"], spec["description"] or None, spec["default"]
    bounds = spec["bounds"]
    if spec["choices"]:
        return gr.Dropdown(choices=list(spec["choices"]), value=default, label=label, info=info,
                           interactive=True)
    if spec["type"] == "boolean":
        return gr.Checkbox(value=bool(default), label=label, info=info, interactive=True)
    if spec["type"] in ("integer", "number"):
        lo = bounds.get(">=", bounds.get(">"))
        hi = bounds.get("<=", bounds.get("<"))
        step = 1 if spec["type"] == "integer" else None
        if lo is not None and hi is not None and (hi - lo) <= 1000:
            return gr.Slider(minimum=lo, maximum=hi, value=default, step=step or (hi - lo) / 100,
                             label=label, info=info, interactive=True)
        return gr.Number(value=default, minimum=lo, maximum=hi, precision=0 if step else None,
                         label=label, info=info, interactive=True)
    text = default if isinstance(default, str) else ("" if default is None else repr(default))
    return gr.Textbox(value=text, label=label, info=info, interactive=True)


def params_from_widgets(defence: str, values: list[Any]) -> dict[str, Any]:
    """Widget values back into the defence's parameters (validated by its Params)."""
    cls = defences.classes()[defence]
    out: dict[str, Any] = {}
    for spec, value in zip(describe_params(cls.Params), values, strict=True):
        if spec["type"] == "integer" and value is not None:
            value = int(value)
        if spec["type"] not in ("integer", "number", "boolean", "choice", "string") \
                and isinstance(value, str):
            value = _literal(value)
        if value != spec["default"]:
            out[spec["name"]] = value
    cls.Params(**out)  # raises a ValidationError with the field's message
    return out


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ---- the auditor's path: face, protect, attack, curve, report -----------------------------


def protect_ui(request: gr.Request, image: np.ndarray | None, defence: str,
               reproducible: bool, *values: Any
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
    """Align the face, protect it, measure utility the way the service gets it."""
    state = session(request)
    try:
        params = params_from_widgets(defence, list(values))
        face, label = gradio_api.face_from(image)
        result = _protect(face, defence, params, reproducible)
    except FacePrivError as exc:
        raise user_error(exc) from None
    except ValueError as exc:  # pydantic's ValidationError: the widget's bounds
        raise gr.Error(_validation_text(exc), print_exception=False) from None
    x, protected, d, dparams, figures = result
    state.face, state.face_label, state.defence, state.params = face, label, defence, params
    state.protection = (x, protected, d, dparams)
    fingerprint = protected.key.fingerprint() if protected.key is not None else None
    state.runs.append(report.RunRecord.protect(
        defence, params, {k: v for k, v in figures.items() if v is not None},
        protected.wire_kind, list(protected.wire_shape), fingerprint, source=label))
    key_note = ("no key" if protected.key is None else
                f"client key kept on the client, fingerprint {protected.key.fingerprint()}, "
                + (REPRODUCIBLE_LABEL if reproducible else SECRET_LABEL))
    summary = (f"**{defence}** on the {label}: wire `{protected.wire_kind}` "
               f"{list(protected.wire_shape)}, {key_note}. Utility cosine "
               f"{figures['utility_cosine']:.3f} (what the authorised service still gets).")
    return face.chip150, protected.preview[0], figures, summary


@gpu(duration=60)
def _protect(face: faces.FaceImage, defence: str, params: dict[str, Any],
             reproducible: bool = False) -> tuple[torch.Tensor, Any, Any, Any, dict[str, Any]]:
    device = models.resolve_device("auto")
    x = faces.chips_to_tensor(face.chip150[None], device)
    d = defences.get(defence, device=str(device))
    dparams = d.Params(**params)
    key = KeySource.from_seed(0) if reproducible else KeySource.secret()
    protected = d.protect_keyed(x, dparams, torch.Generator(device=device).manual_seed(0), key)
    rec = models.get("dlib-resnet", device)
    with torch.no_grad():
        cos = float(metrics.cosine(protected.utility_embedding(rec), rec.embed(x))[0])
    figures: dict[str, Any] = {"utility_cosine": cos}
    if protected.image is not None:
        shown = faces.tensor_to_chips(protected.image)[0]
        figures["ssim"] = metrics.ssim(face.chip150, shown)
        psnr = metrics.psnr(face.chip150, shown)
        figures["psnr"] = None if np.isinf(psnr) else psnr
    return x, protected, d, dparams, figures


def _validation_text(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid value')}"
    return str(exc)


def attack_ui(name: str, request: gr.Request
              ) -> Iterator[tuple[str, np.ndarray | None, str, dict[str, Any]]]:
    """Run one attack on the protected face, streaming progress and the latest
    reconstruction; end with the engine's verdict."""
    state = session(request)
    if state.protection is None or state.face is None:
        raise gr.Error("Protect a face first (step 2).", print_exception=False)
    x, protected, d, dparams = state.protection
    attack = attacks.get(name, device=str(x.device))
    reason = attack.applicable(protected, d)
    if reason:
        raise gr.Error(f"{name} does not apply to {state.defence}: {reason}",
                       print_exception=False)
    events: queue.Queue[ProgressEvent] = queue.Queue()
    outcome: dict[str, Any] = {}
    cancel = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = _attack(attack, x, protected, d, dparams, events.put,
                                        cancel.is_set)
        except Exception as exc:  # reported below in words
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    started, preview = time.monotonic(), None
    try:
        while thread.is_alive() or not events.empty():
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if event.preview is not None:
                preview = event.preview
            shown = ", ".join(f"{k} {v:.3f}" for k, v in event.metrics.items())
            yield (f"{name}: step {event.step}/{event.total} "
                   f"({time.monotonic() - started:.0f} s) {shown}", preview, "", {})
    finally:
        cancel.set()  # the browser went away: stop the attack
    thread.join()
    if "error" in outcome:
        exc = outcome["error"]
        text = str(exc) if isinstance(exc, FacePrivError | ValueError) else \
            "the attack failed unexpectedly; see the server log"
        raise gr.Error(f"{name}: {text}", print_exception=False)
    result = outcome["result"]
    preview = (None if result.reconstructions is None
               else faces.tensor_to_chips(result.reconstructions)[0])
    verdict = getattr(result, "verdict", None)  # the engine judges every attack run
    badge = ("" if verdict is None else
             f"### {'LEAKS' if verdict.leaks else 'No leak shown'}: {name}\n{verdict.reason}")
    figures = {k: round(v, 4) for k, v in result.aggregates.items()}
    fingerprint = protected.key.fingerprint() if protected.key is not None else None
    state.runs.append(report.RunRecord.attack(
        result, state.defence, state.params, protected.wire_kind,
        list(protected.wire_shape), fingerprint, source=state.face_label))
    yield (f"{name}: done in {time.monotonic() - started:.0f} s", preview, badge,
           {"metrics": figures, "verdict": None if verdict is None else verdict.model_dump()})


@gpu(duration=120)
def _attack(attack: Any, x: torch.Tensor, protected: Any, d: Any, dparams: Any,
            progress: Any, cancel: Any) -> Any:
    rec = models.get("dlib-resnet", x.device)
    with torch.no_grad():
        clean = rec.embed(x)
    case = AttackCase(original=x, protected=protected, defence=d, defence_params=dparams,
                      identities=np.arange(len(x)), seed=0, embeddings={"dlib-resnet": clean})
    return attack.run(case, attack.Params(), progress=progress, cancel=cancel)


def curve_ui(param: str, values_text: str, attack: str, request: gr.Request) -> Any:
    """Sweep one parameter of the current defence on the current face: utility vs the
    attack's headline metric, one point per value."""
    import plotly.graph_objects as go

    state = session(request)
    if state.face is None:
        raise gr.Error("Protect a face first (step 2).", print_exception=False)
    values = [gradio_api.parse_params(f'{{"v": {v.strip()}}}')["v"]
              for v in values_text.split(",") if v.strip()]
    if not param or not values:
        raise gr.Error("Name a parameter and a comma-separated list of values.",
                       print_exception=False)
    xs, ys, labels, metric = [], [], [], ""
    for value in values:
        try:
            result = gradio_api.audit_face(state.face, state.face_label, state.defence,
                                           {**state.params, param: value},
                                           gradio_api.attack_specs([attack]))
        except FacePrivError as exc:
            raise user_error(exc) from None
        verdict = result.verdicts.get(attack) if hasattr(result, "verdicts") else None
        metric = verdict.metric if verdict is not None else next(iter(result.attacks[attack]))
        xs.append(result.utility["utility_cosine"].mean)
        ys.append(verdict.value if verdict is not None else result.attacks[attack][metric].mean)
        labels.append(f"{param}={value}")
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers+text", text=labels,
                               textposition="top center", name=state.defence))
    fig.update_layout(title=f"{state.defence}: privacy vs utility on one face "
                            "(one face: a trend, not a verdict)",
                      xaxis_title="utility: authorised cosine to the clean embedding",
                      yaxis_title=f"{attack}: {metric} (higher = more leakage)",
                      template="plotly_white", height=420)
    return fig


def report_ui(title: str, author: str, notes: str, request: gr.Request) -> str:
    """The engine's review-board report of this session's runs (verdict summary first; no
    face pixels), the same page `facepriv report` and the Streamlit Report page produce."""
    state = session(request)
    if not state.runs:
        raise gr.Error("Nothing to report yet: protect and attack a face first.",
                       print_exception=False)
    device = models.resolve_device("auto")
    page = report.to_html(state.runs, audit.environment(device), title=title or
                          "FacePriv privacy audit", author=author, notes=notes,
                          include_faces=False)
    out = Path(os.environ["GRADIO_TEMP_DIR"]) / f"facepriv-report-{time.strftime('%H%M%S')}.html"
    out.write_text(page)
    return str(out)


# ---- layout ---------------------------------------------------------------------------------


def build() -> gr.Blocks:
    """The Blocks app: UI events plus the named API endpoints."""
    defence_names = sorted(defences.names())
    attack_names = sorted(attacks.names())
    with gr.Blocks(title="FacePriv", analytics_enabled=False, delete_cache=(60, 300)) as demo:
        gr.Markdown(
            "# FacePriv: audit a face-privacy defence\n"
            "1. Pick a face (leave empty for the built-in public-domain sample). "
            "2. Pick a defence and its parameters, then **Protect**. "
            "3. Launch an attack and read the verdict. "
            "Faces stay in this server's memory for your session only.")
        with gr.Row():
            face_in = gr.Image(type="numpy", label="Face photo (empty: built-in sample)",
                               sources=["upload"], height=260)
            original = gr.Image(label="aligned face", interactive=False, height=260)
            wire = gr.Image(label="what the server receives", interactive=False, height=260)
        defence_dd = gr.Dropdown(defence_names, value=DEFAULT_DEFENCE, label="Defence")
        @gr.render(inputs=defence_dd)
        def _params(name: str) -> None:
            cls = defences.classes()[name]
            paper = getattr(cls, "paper", None)
            gr.Markdown(f"**{cls.title}**" + (f" ({paper.cite()})" if paper else ""))
            with gr.Row(equal_height=False):
                widgets = [widget_for(s) for s in describe_params(cls.Params)]
            protect_btn.click(protect_ui, inputs=[face_in, defence_dd, reproducible_cb, *widgets],
                              outputs=[original, wire, figures, protect_md],
                              api_visibility="private")

        reproducible_cb = gr.Checkbox(False, label="reproducible key, not secret",
                                      info="keyed defences: derive the key from a public seed "
                                           "(repeatable audits) instead of OS entropy")
        protect_btn = gr.Button("Protect", variant="primary")
        protect_md = gr.Markdown()
        figures = gr.JSON(label="utility")

        gr.Markdown("## Attack")
        with gr.Row():
            attack_dd = gr.Dropdown(attack_names, value="identity", label="Attack")
            attack_btn = gr.Button("Launch attack", variant="primary")
        with gr.Row():
            status = gr.Markdown()
            recon = gr.Image(label="reconstruction (attacks that rebuild the face)",
                             interactive=False, height=200)
        verdict_md = gr.Markdown()
        attack_json = gr.JSON(label="attack result")
        attack_btn.click(attack_ui, inputs=[attack_dd],
                         outputs=[status, recon, verdict_md, attack_json],
                              api_visibility="private")

        gr.Markdown("## Privacy/utility curve")
        with gr.Row():
            param_tb = gr.Textbox(value="block", label="parameter to sweep")
            values_tb = gr.Textbox(value="4, 8, 16", label="values")
            curve_attack = gr.Dropdown(attack_names, value="identity", label="attack")
        curve_btn = gr.Button("Draw curve")
        plot = gr.Plot()
        curve_btn.click(curve_ui, inputs=[param_tb, values_tb, curve_attack], outputs=plot,

                              api_visibility="private")

        gr.Markdown("## Report")
        with gr.Row():
            title_tb = gr.Textbox(value="FacePriv audit", label="title")
            author_tb = gr.Textbox(value="", label="author")
        notes_tb = gr.Textbox(value="", label="notes", lines=2)
        report_btn = gr.Button("Build report")
        report_file = gr.File(label="report (HTML, no face images)")
        report_btn.click(report_ui, inputs=[title_tb, author_tb, notes_tb], outputs=report_file,

                              api_visibility="private")

        gr.api(_endpoint(gradio_api.protect_json), api_name="protect")
        gr.api(_endpoint(gradio_api.attack_json), api_name="attack")
        gr.api(_endpoint(gradio_api.audit_json), api_name="audit")
        gr.api(_endpoint(gradio_api.verify_json), api_name="verify")
        demo.unload(forget)
    return demo


def _endpoint(fn: Any) -> Any:
    """An API function whose FacePriv errors reach the caller as words."""
    import functools

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return gpu(duration=120)(fn)(*args, **kwargs)
        except FacePrivError as exc:
            raise user_error(exc) from None

    return call


def main() -> None:
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    build().queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, theme=THEME, show_error=False,
        max_file_size="20mb", ssr_mode=False)


if __name__ == "__main__":
    main()
