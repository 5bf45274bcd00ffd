"""Reports: what a session or a command ran, as JSON and as one self-contained HTML file.

Sections carry JSON-safe data (specs, seeds, metrics, threat models), optional uint8 images
and optional plotly figures. The HTML embeds images as data URIs and plotly.js inline, so it
opens offline. Secret keys cannot get in: serialising a SecretKey is an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepriv_core import __version__
from facepriv_core.defences.base import SecretKey


@dataclass
class Section:
    title: str
    kind: str  # "attack", "sweep", "table", "audit"
    data: dict[str, Any]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    figure: Any = None  # a plotly Figure


def _json_default(obj: Any) -> Any:
    if isinstance(obj, SecretKey):
        raise TypeError("a secret key cannot go into a report")
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def to_json(sections: list[Section], environment: dict[str, str]) -> str:
    """The report's data (no images): title, kind and data of every section."""
    doc = {
        "facepriv": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": environment,
        "sections": [{"title": s.title, "kind": s.kind, "data": s.data} for s in sections],
    }
    return json.dumps(doc, indent=2, default=_json_default, allow_nan=True)


def _png_uri(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:right}th{background:#f4f4f4}figure{display:inline-block;margin:4px;
text-align:center}figcaption{font-size:12px;color:#555}pre{background:#f7f7f7;padding:8px;
font-size:12px;overflow-x:auto}h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def to_html(sections: list[Section], environment: dict[str, str]) -> str:
    """One self-contained page: data tables, embedded images, inline plotly charts."""
    from plotly.offline import get_plotlyjs

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>FacePriv report</title>"
             f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>",
             f"<h1>FacePriv report</h1><p>facepriv {__version__}, "
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Secret keys are never included."
             "</p>", _table([environment])]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for key, value in s.data.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                parts.append(f"<h3>{html.escape(key)}</h3>{_table(value)}")
            elif isinstance(value, dict) and all(not isinstance(v, dict | list)
                                                 for v in value.values()):
                parts.append(f"<h3>{html.escape(key)}</h3>{_table([value])}")
            else:
                text = json.dumps(value, indent=1, default=_json_default)
                parts.append(f"<h3>{html.escape(key)}</h3><pre>{html.escape(text)}</pre>")
        for caption, image in s.images.items():
            parts.append(f"<figure><img src='{_png_uri(image)}' width='150'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if s.figure is not None:
            parts.append(s.figure.to_html(full_html=False, include_plotlyjs=False))
    parts.append("</body></html>")
    return "".join(parts)
