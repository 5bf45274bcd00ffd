"""The audit runner: align, protect, measure utility, attack, aggregate; and sweeps.

An audit aligns the faces, protects them with the defence, measures utility the way the
authorised service would get it, runs each attack and aggregates per-image rows with seeded
bootstrap confidence intervals. Same spec and seed, same numbers (a keyed defence's client
key is fresh from OS entropy each run unless spec.reproducible_key); timings and environment
are recorded beside them. No secret key or key seed ever enters the result: only the key's
fingerprint and whether it is secret.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from facepriv_core import __version__, datasets, defences, faces, metrics, models
from facepriv_core import attacks as attack_registry
from facepriv_core.attacks.base import AttackCase, check_cancel, streamed_case
from facepriv_core.audit.spec import AttackSpec, AuditResult, AuditSpec, Estimate, public_params
from facepriv_core.audit.stats import bootstrap_ci
from facepriv_core.audit.utility import verification_accuracy
from facepriv_core.defences.base import LazyMetrics, Protected
from facepriv_core.defences.keys import key_info, key_source
from facepriv_core.embedding import embed_batched
from facepriv_core.errors import UsageError
from facepriv_core.faces import chips_to_tensor, tensor_to_chips
from facepriv_core.memory import release_freed_memory
from facepriv_core.validation import validate
from facepriv_core.verdicts import OverallVerdict, Verdict, overall

Progress = Callable[[str, int, int], None]
Cancel = Callable[[], bool]


@dataclass
class Faces:
    chips: np.ndarray
    identities: np.ndarray
    keys: list[str]
    failures: dict[str, str]
    detections: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_faces(spec: AuditSpec, progress: Progress | None = None) -> Faces:
    if spec.dataset:
        ds = datasets.load(spec.dataset).limit(spec.limit, seed=spec.seed)
        aligned = datasets.align_dataset(
            ds, progress=(lambda d, t: progress("aligning", d, t)) if progress else None,
            detector=spec.detector)
        keys = ds.keys or [str(i) for i in range(len(ds))]
        return Faces(aligned.chips, ds.identities[aligned.indices],
                     [keys[i] for i in aligned.indices], {**ds.skipped, **aligned.failures})
    chips, keys, failures, detections = [], [], {}, {}
    for i, path in enumerate(spec.images[: spec.limit]):
        try:
            face = faces.load_face(path, method=spec.detector, face_index=spec.face_index)
            chips.append(face.chip150)
            keys.append(path)
            detections[path] = face.detection_summary()
        except faces.InputError as exc:
            failures[path] = str(exc)
        if progress:
            progress("aligning", i + 1, len(spec.images))
    if not chips:
        raise faces.NoFaceFoundError("none of the images holds a usable face: "
                                     + "; ".join(f"{k}: {v}" for k, v in failures.items()))
    return Faces(np.stack(chips), np.arange(len(chips)), keys, failures, detections)


def _concat_protected(parts: list[Any]) -> Any:
    """One Protected for the whole set from per-batch ones (keys stay with the client)."""
    if len(parts) == 1:
        return parts[0]
    weights = [p.wire.shape[0] for p in parts]

    def metrics() -> dict[str, float]:
        names = {k for p in parts for k in p.metrics}
        return {k: float(np.average([p.metrics.get(k, np.nan) for p in parts], weights=weights))
                for k in names}

    return Protected(
        wire=torch.cat([p.wire for p in parts]),
        wire_kind=parts[0].wire_kind,
        preview=np.concatenate([p.preview for p in parts]),
        utility=lambda rec: torch.cat([p.utility_embedding(rec) for p in parts]),
        metrics=LazyMetrics(metrics),
        image=torch.cat([p.image for p in parts]) if parts[0].image is not None else None,
        utility_is_embedding=all(p.utility_is_embedding for p in parts),
    )


def defence_label(spec: AuditSpec) -> str:
    """'pixelate (block=16)': how verdict sentences name the audited defence."""
    params = ", ".join(f"{k}={v}" for k, v in public_params(spec.defence_params).items())
    return f"{spec.defence} ({params})" if params else spec.defence


def environment(device: torch.device) -> dict[str, str]:
    return {
        "facepriv": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
    }


def estimates(spec: AuditSpec, rows: list[dict[str, Any]],
              attack_out: dict[str, list[dict[str, float]]], wire_metrics: dict[str, float]
              ) -> tuple[dict[str, Estimate], dict[str, dict[str, Estimate]]]:
    """Utility and attack estimates with seeded bootstrap CIs, drawn in a fixed order
    (utility, then attacks in `attack_out` order): any runner that assembles the same rows
    gets the same numbers."""
    boot = np.random.default_rng(spec.seed)
    utility_keys = [k for k in ("utility_cosine", "ssim", "psnr") if k in rows[0]]
    utility: dict[str, Estimate] = {
        k: bootstrap_ci([r[k] for r in rows], boot, spec.bootstrap) for k in utility_keys}
    for k, v in wire_metrics.items():
        utility[k] = Estimate(mean=float(v), ci_low=float(v), ci_high=float(v), n=len(rows))
    attack_estimates = {
        name: {k: bootstrap_ci([p.get(k, np.nan) for p in per], boot, spec.bootstrap)
               for k in sorted({k for p in per for k in p})}
        for name, per in attack_out.items()
    }
    return utility, attack_estimates


def service_verification(utility: dict[str, Estimate], authorised: torch.Tensor,
                         clean: torch.Tensor, identities: np.ndarray, seed: int, n: int
                         ) -> dict[str, str]:
    """Add the authorised service's verification accuracy on the protected wire (and on the
    clean faces, for reference) to `utility`; return how each was measured or why skipped."""
    notes: dict[str, str] = {}
    for name, emb in (("verification_accuracy", authorised),
                      ("verification_accuracy_clean", clean)):
        est, how = verification_accuracy(emb.float().cpu().numpy()[:n], identities, seed=seed)
        notes[name] = how if name == "verification_accuracy" else how.replace(
            "through the defence's authorised service", "on the clean faces (reference)")
        if est is not None:
            utility[name] = est
    return notes


#: Faces of each kind kept in AuditResult.images (originals, previews, reconstructions):
#: the app, the report and `audit --out` show the first faces; a dataset-size audit must not
#: hold every face again. Rows and statistics always cover every face.
PREVIEW_FACES = 64
#: Faces per shard by default, rounded up to whole batches (`shard_faces`): 128 float faces
#: (270 KB each, with its protected twin) in memory at a time. Measured on the 2-core CPU,
#: 2000 synthetic faces, default identity and attribute attacks: peak RSS 1667 MB at 256,
#: 1490 at 128, 1437 at 64; 25.0, 25.1 and 24.6 faces/s.
SHARD_FACES = 128


@dataclass
class _Planned:
    """One attack of the spec, resolved: its registry instance and validated params."""

    spec: AttackSpec
    attack: Any
    params: Any
    streams: bool
    parts: list[Any] = field(default_factory=list)
    result: Any = None
    seconds: float = 0.0


def shard_faces(spec: AuditSpec, planned: Sequence[_Planned], n: int,
                shard_size: int | None = None) -> int:
    """Faces per shard: all of them when an attack needs the whole set, else `shard_size`
    (default SHARD_FACES) rounded up to a multiple of every batch size the audit uses
    (spec.batch_size, attacks' batch_size), so each model sees the same batches whatever the
    shard size: a convolution's last bits can depend on the batch it ran in, and a keyed
    defence draws one key per protect batch."""
    if not all(p.streams for p in planned):
        return max(n, 1)
    grid = math.lcm(spec.batch_size, *[int(getattr(p.params, "batch_size", 1))
                                       for p in planned])
    size = shard_size or SHARD_FACES
    return min(max(n, 1), grid * math.ceil(size / grid))


def _plan(spec: AuditSpec, device: torch.device) -> list[_Planned]:
    out = []
    for a in spec.attacks:
        attack = attack_registry.get(a.name, device=str(device))
        aparams = validate(attack.Params, a.params, f"parameters for attack '{a.key}'")
        out.append(_Planned(a, attack, aparams, bool(attack.streams(aparams))))
    return out


class _WireMetrics:
    """Defence metrics per protect batch, read before the batch is dropped and averaged
    by batch size as `_concat_protected` does (a single batch's taken as they are)."""

    def __init__(self) -> None:
        self.values: list[dict[str, float]] = []
        self.weights: list[int] = []

    def add(self, part: Protected) -> None:
        self.values.append(dict(part.metrics))
        self.weights.append(int(part.wire.shape[0]))

    def result(self) -> dict[str, float]:
        if len(self.values) == 1:
            return self.values[0]
        names = {k for v in self.values for k in v}
        return {k: float(np.average([v.get(k, np.nan) for v in self.values],
                                    weights=self.weights)) for k in names}


def run(spec: AuditSpec, progress: Progress | None = None, cancel: Cancel | None = None,
        faces: Faces | None = None, shard_size: int | None = None) -> AuditResult:
    """Run the audit the spec describes. `faces`, when given, are the already-aligned faces to
    use instead of loading the spec's source: a sweep aligns once for all its points, and the
    app audits an upload held in memory (the spec then only labels it).

    Faces stay uint8 chips; they stream through in shards (`shard_faces`; `shard_size`
    faces, default SHARD_FACES): each shard is converted to float, protected, measured
    (utility cosine, SSIM/PSNR) and attacked, then dropped, so memory follows the shard, not
    the dataset. Attacks that stream (`Attack.streams`) keep small per-shard parts and
    `finish` over all of them; when an attack needs the whole set, the audit is one shard.
    The numbers do not depend on the shard size."""
    device = models.resolve_device(spec.device)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = faces if faces is not None else load_faces(spec, progress)
    timings["align_s"] = time.perf_counter() - t

    torch.manual_seed(spec.seed)
    defence = defences.get(spec.defence, device=str(device))
    dparams = validate(defence.Params, spec.defence_params,
                       f"parameters for defence '{spec.defence}'")
    rng = torch.Generator(device=device).manual_seed(spec.seed)
    keys = key_source(spec.reproducible_key, spec.seed)
    recogniser = models.get(spec.recogniser, device)
    planned = _plan(spec, device)
    n = len(data.chips)
    size = shard_faces(spec, planned, n, shard_size)

    rows: list[dict[str, Any]] = [
        {"key": k, "identity": int(i)} for k, i in zip(data.keys, data.identities, strict=True)
    ]
    wire_metrics = _WireMetrics()
    batch_keys: list[Any] = []
    clean_parts: list[torch.Tensor] = []
    authorised_parts: list[torch.Tensor] = []
    previews: list[np.ndarray] = []
    wire_kind, wire_shape = "", [0]
    last_case: AttackCase | None = None
    timings["protect_s"] = 0.0
    for first in range(0, n, size):
        chips = data.chips[first:first + size]
        x = chips_to_tensor(chips, device)
        t = time.perf_counter()
        parts = []
        for start in range(0, len(x), spec.batch_size):
            check_cancel(cancel)
            part = defence.protect_keyed(x[start:start + spec.batch_size], dparams, rng, keys)
            wire_metrics.add(part)
            batch_keys.append(part.key)
            parts.append(part)
            if progress:
                progress("protecting", min(first + start + spec.batch_size, n), n)
        protected = _concat_protected(parts)
        single = len(parts) == 1
        del parts
        timings["protect_s"] += time.perf_counter() - t
        wire_kind, wire_shape = protected.wire_kind, list(protected.wire_shape)

        clean = embed_batched(recogniser, x, spec.batch_size, device, cancel=cancel)
        with torch.no_grad():
            authorised = protected.utility_embedding(recogniser)
        if single and len(x) < n:  # row-major, as torch.cat makes it for a one-shard audit
            authorised = authorised.contiguous()  # (FaceMix's is a transpose: 8th digit)
        clean_parts.append(clean.float().cpu())
        authorised_parts.append(authorised.float().cpu())
        shard_rows = rows[first:first + len(x)]
        for row, c in zip(shard_rows, metrics.cosine(authorised, clean).cpu().numpy(),
                          strict=True):
            row["utility_cosine"] = float(c)
        if protected.image is not None:
            shown = tensor_to_chips(protected.image)
            for k, values in metrics.batch_image_metrics(chips, shown).items():
                for row, v in zip(shard_rows, values, strict=True):
                    row[k] = v if np.isfinite(v) else None
        kept = PREVIEW_FACES - sum(len(p) for p in previews)
        if kept > 0:
            previews.append(np.asarray(protected.preview[:kept]))

        case = AttackCase(original=x, protected=protected, defence=defence,
                          defence_params=dparams, identities=data.identities[first:first + size],
                          seed=spec.seed, embeddings={spec.recogniser: clean},
                          wire_embeddings={spec.recogniser: authorised}
                          if protected.utility_is_embedding else {})
        if last_case is None:
            for p in planned:
                reason = p.attack.applicable(protected, defence)
                if reason:
                    raise UsageError(f"attack '{p.spec.key}' does not apply to defence "
                                     f"'{spec.defence}': {reason}")
        _attack_shard(spec, planned, case, progress, cancel)
        last_case = streamed_case(case, data.identities)  # one face: the shard can go
        if progress and size < n:
            progress("attacking shards", min(first + size, n), n)
        del x, protected, clean, authorised, case
        if size < n:  # the shard's float tensors are gone: hand their pages back (glibc)
            release_freed_memory()
    if last_case is None:
        raise UsageError("the audit has no face to protect: give images or a dataset with faces")

    attack_out: dict[str, list[dict[str, float]]] = {}
    threat_models: dict[str, str] = {}
    verdicts: dict[str, Verdict] = {}
    reconstructions: dict[str, np.ndarray] = {}
    whole = last_case
    for p in planned:
        key = p.spec.key
        if p.streams:
            t = time.perf_counter()
            torch.manual_seed(spec.seed)
            p.result = p.attack.finish(whole, p.parts, p.params, _events(key, progress),
                                       cancel)
            p.parts = []
            p.seconds += time.perf_counter() - t
        result = p.result
        timings[f"attack_{key}_s"] = p.seconds
        attack_out[key] = result.per_image
        threat_models[key] = result.threat_model.sentence
        if result.verdict is not None:
            verdicts[key] = result.verdict
        if result.reconstructions is not None:
            reconstructions[key] = tensor_to_chips(result.reconstructions[:PREVIEW_FACES])
        for row, per in zip(rows, result.per_image, strict=True):
            row.update({f"{key}.{k}": v for k, v in per.items()})

    utility, attack_estimates = estimates(spec, rows, attack_out, wire_metrics.result())
    notes = service_verification(utility, torch.cat(authorised_parts), torch.cat(clean_parts),
                                 data.identities, spec.seed, len(rows))
    out = AuditResult(
        spec=spec, spec_hash=spec.spec_hash(), defence=spec.defence,
        wire_kind=wire_kind, wire_shape=wire_shape,
        utility=utility, attacks=attack_estimates, threat_models=threat_models, rows=rows,
        failures=data.failures, detections=data.detections, timings=timings,
        environment=environment(device), key=key_info(batch_keys),
        verdicts=verdicts, overall_verdict=overall(verdicts, defence_label(spec)),
        notes=notes,
    )
    out.images.update({"original": data.chips[:PREVIEW_FACES],
                       "protected": np.concatenate(previews), **reconstructions})
    return out


def _events(key: str, progress: Progress | None) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        if progress:
            progress(f"attack {key}", event.step, event.total)

    return on_event


def _attack_shard(spec: AuditSpec, planned: Sequence[_Planned], case: AttackCase,
                  progress: Progress | None, cancel: Cancel | None) -> None:
    """Every attack's work on one shard: a streamed attack's part, or (the audit being one
    shard) a whole-set attack's result. Each starts from the spec's seed, and the global
    torch generator is put back afterwards, so the next shard's protection draws as if no
    attack had run in between."""
    state = torch.get_rng_state()
    for p in planned:
        t = time.perf_counter()
        torch.manual_seed(spec.seed)
        if p.streams:
            p.parts.append(p.attack.run_shard(case, p.params, cancel))
        else:
            p.result = p.attack.run(case, p.params, _events(p.spec.key, progress), cancel)
        p.seconds += time.perf_counter() - t
    torch.set_rng_state(state)


class SweepPoint(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    value: Any
    utility: dict[str, float]
    attacks: dict[str, dict[str, float]]
    verdicts: dict[str, Verdict] = Field(default_factory=dict)
    overall_verdict: OverallVerdict | None = None
    notes: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, result: AuditResult) -> SweepPoint:
        summary = result.summary()
        return cls(value=value, utility=summary["utility"], attacks=summary["attacks"],
                   verdicts=result.verdicts, overall_verdict=result.overall_verdict,
                   notes=result.notes)


class SweepResult(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    defence: str
    param: str
    points: list[SweepPoint]
    reference: SweepPoint | None = Field(
        None, description="the same faces and attacks with no defence (sweep reference=True)")

    def curve(self, privacy: str, utility: str = "utility_cosine") -> list[tuple[Any, float,
                                                                                float]]:
        """(value, privacy metric 'attack.metric', utility metric) for each point."""
        attack, _, metric = privacy.rpartition(".")  # labels may hold dots, metrics do not
        return [(p.value, p.attacks[attack][metric], p.utility[utility]) for p in self.points]


def sweep(spec: AuditSpec, param: str, values: Sequence[Any], progress: Progress | None = None,
          cancel: Cancel | None = None, faces: Faces | None = None, reference: bool = False
          ) -> SweepResult:
    """Run the audit once per value of one defence parameter: privacy-vs-utility curve data.
    The faces are aligned once and shared by every point. `reference` also audits the same
    faces with no defence (the "no defence" point of the curve; attacks that do not apply to
    an unprotected image are left out of it). Plot with `audit.curves.curve_data`."""
    faces = faces if faces is not None else load_faces(spec)
    points = []
    total = len(values) + int(reference)
    for i, value in enumerate(values):
        point_spec = spec.model_copy(update={"defence_params": {**spec.defence_params,
                                                                param: value}})
        points.append(SweepPoint.of(value, run(point_spec, cancel=cancel, faces=faces)))
        if progress:
            progress(f"sweep {param}", i + 1, total)
    ref = None
    if reference:
        ref = SweepPoint.of("no defence", run(no_defence_spec(spec), cancel=cancel,
                                              faces=faces))
        if progress:
            progress(f"sweep {param}", total, total)
    return SweepResult(defence=spec.defence, param=param, points=points, reference=ref)


def no_defence_spec(spec: AuditSpec) -> AuditSpec:
    """The spec with defence 'none' and only the attacks that apply to a plain image."""
    plain = defences.get("none")
    probe = plain.protect(torch.zeros(1, 3, 150, 150), plain.Params(),
                          torch.Generator().manual_seed(0))
    kept = [a for a in spec.attacks
            if attack_registry.get(a.name).applicable(probe, plain) is None]
    return spec.model_copy(update={"defence": "none", "defence_params": {}, "attacks": kept})
