"""What an audit is asked to do (AuditSpec) and what it returns (AuditResult); JSON round-trips."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from facepriv_core.defences.keys import KeyInfo
from facepriv_core.estimates import Estimate
from facepriv_core.verdicts import OverallVerdict, Verdict

#: Defence params that make a secret key (a reproducible key's seed): never printed, reported
#: or put in a summary.
SECRET_PARAMS = frozenset({"shuffle_seed", "shuffle1_seed", "key_seed", "key", "seed_key"})


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """Defence params fit to show: those that are or make a key are left out."""
    return {k: v for k, v in params.items() if k not in SECRET_PARAMS}


class AttackSpec(BaseModel):
    """One attack of an audit. `label` keys its results (default: the name), so the same
    attack can run twice with different params, e.g. `identity:scenario=parrot`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name


class AuditSpec(BaseModel):
    """What to audit: a defence with params, attacks with params, faces, models, seed, device."""

    model_config = ConfigDict(extra="forbid")

    defence: str
    defence_params: dict[str, Any] = Field(default_factory=dict)
    attacks: list[AttackSpec] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list, description="photo paths (detected)")
    dataset: str | None = Field(None, description="olivetti:PATH, folder:PATH, sfhq:PATH, ...")
    limit: int | None = Field(None, ge=1, le=10_000_000)
    recogniser: str = "dlib-resnet"
    detector: Literal["hog", "mmod", "auto"] = Field(
        "hog", description="face detector for photos: hog, mmod or auto")
    face_index: int = Field(0, ge=0, description="which detected face of each photo to use "
                                                 "(0: the largest confident one)")
    seed: int = Field(0, ge=0, le=2**63 - 1,
                      description="seed of every keyless random draw (noise, Shuffle2, "
                                  "attacks, bootstrap); a key comes from it only with "
                                  "reproducible_key")
    reproducible_key: bool = Field(
        False, description="derive keyed defences' client key from `seed` (reproducible, "
                           "NOT secret); by default every run draws a fresh key from OS "
                           "entropy")
    device: str = "cpu"
    batch_size: int = Field(32, ge=1, le=4096)
    bootstrap: int = Field(1000, ge=0, le=100_000)

    @model_validator(mode="after")
    def _one_source(self) -> AuditSpec:
        if bool(self.images) == bool(self.dataset):
            raise ValueError("give either images or a dataset (exactly one of them)")
        keys = [a.key for a in self.attacks]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"attack {', '.join(twice)} given twice: give each run a "
                             "different label or different inline params")
        return self

    def spec_hash(self) -> str:
        """Hash of everything that determines the numbers (the device does not)."""
        payload = self.model_dump(exclude={"device"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class AuditResult(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    spec: AuditSpec
    spec_hash: str
    defence: str
    wire_kind: str
    wire_shape: list[int]
    utility: dict[str, Estimate]
    attacks: dict[str, dict[str, Estimate]]
    threat_models: dict[str, str]
    rows: list[dict[str, Any]]
    failures: dict[str, str]
    detections: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per photo: faces_found and face_used (box)")
    timings: dict[str, float]
    environment: dict[str, str]
    key: KeyInfo | None = None
    verdicts: dict[str, Verdict] = Field(
        default_factory=dict, description="per attack label: leaks or not, on which metric")
    overall_verdict: OverallVerdict = Field(
        default_factory=lambda: OverallVerdict(leaks=False, reason="no attack was judged"))
    notes: dict[str, str] = Field(
        default_factory=dict, description="why a measurement was skipped, by its key")
    _images: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    @property
    def images(self) -> dict[str, np.ndarray]:
        """uint8 NHWC images by name ('original', 'protected', attack reconstructions) of the
        first `audit.runner.PREVIEW_FACES` faces only (a bounded preview: a dataset-size
        audit does not keep every face; rows and statistics cover them all); kept in memory
        only, written to disk only when the user asks (CLI --out)."""
        return self._images

    def summary(self) -> dict[str, Any]:
        """The compact JSON the CLI prints: spec hash, defence, utility and attack means, the
        verdicts (per attack and overall), notes on skipped measurements, timings."""
        return {
            "spec_hash": self.spec_hash,
            "defence": self.defence,
            "key": self.key.model_dump() if self.key is not None else None,
            "defence_params": public_params(self.spec.defence_params),
            "utility": {k: v.mean for k, v in self.utility.items()},
            "attacks": {a: {k: v.mean for k, v in m.items()} for a, m in self.attacks.items()},
            **self._detection_summary(),
            "verdicts": {a: v.model_dump(exclude={"rules"}) for a, v in self.verdicts.items()},
            "overall_verdict": self.overall_verdict.model_dump(),
            "notes": self.notes,
            "timings": self.timings,
        }

    def _detection_summary(self) -> dict[str, Any]:
        """Photos only: `faces_found` / `face_used` (one photo) or per photo under `faces`."""
        if not self.detections:
            return {}
        if len(self.detections) == 1:
            return dict(next(iter(self.detections.values())))
        return {"faces": self.detections}

    def numbers(self) -> dict[str, Any]:
        """Everything that must repeat under the same spec (timings/environment excluded; a
        secret key, fresh every run, is reproducible only with spec.reproducible_key)."""
        return self.model_dump(exclude={"timings", "environment"})
