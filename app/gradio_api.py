"""What the Gradio front end computes: the engine's own calls and JSON, nothing of its own.

Each public function here is also a named API endpoint (`/protect`, `/attack`, `/audit`,
`/verify`) with typed arguments and the JSON the CLI prints, so a researcher can script an
audit against a hosted instance with `gradio_client`. Images travel as base64 strings and are
decoded in memory: an API call never writes a face to disk. An empty image means the built-in
sample (NASA's public-domain astronaut portrait that ships with scikit-image).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from facepriv_core import audit, faces
from facepriv_core.errors import UsageError

SAMPLE_KEY = "built-in sample (NASA astronaut, public domain)"
UPLOAD_KEY = "uploaded face (kept in memory only)"
MAX_B64_CHARS = 28_000_000  # ~20 MiB of image bytes, the app's upload cap

Progress = Callable[[str, int, int], None]


def sample_image() -> np.ndarray:
    """The built-in sample face: skimage.data.astronaut() (NASA, public domain)."""
    from skimage import data

    return data.astronaut()


def decode_b64(image_b64: str) -> bytes:
    """The bytes of a base64 image (a data URI prefix is accepted); typed error otherwise."""
    text = image_b64.strip()
    if len(text) > MAX_B64_CHARS:
        raise UsageError("the image is larger than the 20 MiB upload limit")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("image_b64 is not valid base64: send the image file's bytes "
                         "base64-encoded, or an empty string for the built-in sample") from None


def png_b64(image: np.ndarray) -> str:
    """A uint8 image as a base64 PNG (what the API returns for previews)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def face_from(image: np.ndarray | bytes | None) -> tuple[faces.FaceImage, str]:
    """(the aligned face, its label) from an uploaded array or bytes; None: the sample."""
    if image is None:
        return faces.detect_and_align(sample_image()), SAMPLE_KEY
    if isinstance(image, bytes):
        return faces.load_face(image), UPLOAD_KEY
    return faces.detect_and_align(faces.load_image(_array_png(image))), UPLOAD_KEY


def _array_png(image: np.ndarray) -> bytes:
    """An uploaded array re-encoded in memory, so it goes through the same safe decoder."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def parse_params(params: dict[str, Any] | str | None) -> dict[str, Any]:
    """Parameters as a dict, or a JSON object string; typed error for anything else."""
    if params is None or params == "":
        return {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as exc:
            raise UsageError(f"params must be a JSON object, e.g. {{\"block\": 16}}: {exc.msg}"
                             ) from None
    if not isinstance(params, dict):
        raise UsageError("params must be a JSON object of parameter names to values")
    return params


def attack_specs(attacks: list[str] | str | None,
                 attack_params: dict[str, Any] | str | None = None) -> list[dict[str, Any]]:
    """Attack names (a list or comma-separated text) as AuditSpec attack entries, with each
    attack's parameters from `attack_params` ({"identity": {"other_recognisers": false}})."""
    if attacks is None:
        return []
    names = attacks.split(",") if isinstance(attacks, str) else list(attacks)
    per_attack = parse_params(attack_params)
    out = []
    for name in (n.strip() for n in names):
        if name:
            params = per_attack.get(name, {})
            if not isinstance(params, dict):
                raise UsageError(f"attack_params[{name!r}] must be an object of parameters")
            out.append({"name": name, "params": params})
    return out


def audit_face(face: faces.FaceImage, label: str, defence: str, params: dict[str, Any],
               attacks: list[dict[str, Any]], seed: int = 0, device: str = "cpu",
               progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> audit.AuditResult:
    """The engine's audit of one face held in memory (the spec only labels it)."""
    spec = audit.AuditSpec(defence=defence, defence_params=params, attacks=attacks,
                           images=[label], seed=seed, device=device)
    data = audit.Faces(face.chip150[None], np.arange(1), [label], {})
    return audit.run(spec, progress=progress, cancel=cancel, faces=data)


def audit_json(defence: str = "pixelate", params: str = "{}", attacks: str = "identity",
               image_b64: str = "", dataset: str = "", limit: int = 40, seed: int = 0,
               device: str = "cpu", attack_params: str = "{}") -> dict[str, Any]:
    """`/audit`: the JSON `facepriv audit --json` prints, for one face (image_b64; empty: the
    built-in sample) or a dataset spec (e.g. "olivetti", with limit)."""
    parsed = parse_params(params)
    specs = attack_specs(attacks, attack_params)
    if dataset:
        spec = audit.AuditSpec(defence=defence, defence_params=parsed, attacks=specs,
                               dataset=dataset, limit=limit, seed=seed, device=device)
        return audit.run(spec).summary()
    face, label = face_from(decode_b64(image_b64) if image_b64 else None)
    return audit_face(face, label, defence, parsed, specs, seed, device).summary()


def protect_json(defence: str = "pixelate", params: str = "{}", image_b64: str = "",
                 seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """`/protect`: utility figures of the protected face (the audit JSON with no attack), the
    wire's kind and shape, and the preview of what the server receives as a base64 PNG."""
    face, label = face_from(decode_b64(image_b64) if image_b64 else None)
    result = audit_face(face, label, defence, parse_params(params), [], seed, device)
    return {**result.summary(), "wire_kind": result.wire_kind,
            "wire_shape": result.wire_shape,
            "preview_png_b64": png_b64(result.images["protected"][0])}


def attack_json(defence: str = "pixelate", params: str = "{}", attack: str = "identity",
                image_b64: str = "", seed: int = 0, device: str = "cpu",
                attack_params: str = "{}") -> dict[str, Any]:
    """`/attack`: one attack on one face: the audit JSON (verdict included) and, for
    reconstruction attacks, the reconstruction as a base64 PNG."""
    face, label = face_from(decode_b64(image_b64) if image_b64 else None)
    result = audit_face(face, label, defence, parse_params(params),
                        attack_specs([attack], {attack: parse_params(attack_params)}),
                        seed, device)
    out = result.summary()
    if attack in result.images:
        out["reconstruction_png_b64"] = png_b64(result.images[attack][0])
    return out


def verify_json(dataset: str = "olivetti", model: str = "dlib-resnet", defence: str = "",
                params: str = "{}", limit: int = 100, pairs: int = 300,
                seed: int = 0) -> dict[str, Any]:
    """`/verify`: the verification protocol of `facepriv verify --json` on a dataset, through
    the defence's authorised service when a defence is named."""
    from facepriv_core.cli import main as cli_main

    argv = ["verify", "--dataset", dataset, "--model", model, "--limit", str(limit),
            "--pairs", str(pairs), "--seed", str(seed), "--json"]
    if defence:
        argv += ["--defence", defence]
        for key, value in parse_params(params).items():
            argv += ["--set", f"{key}={value}"]
    return _run_cli_json(cli_main, argv)


def _run_cli_json(cli_main: Callable[[list[str]], int], argv: list[str]) -> dict[str, Any]:
    """Run a CLI verb in-process and return its JSON (its one-line error as a UsageError)."""
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(argv)
    if code != 0:
        message = err.getvalue().strip().splitlines()
        raise UsageError(message[-1].removeprefix("facepriv: error: ") if message
                         else f"verify failed with exit code {code}")
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed
