"""The defence interface: params, the wire the server receives, the client-side key, utility.

A defence takes aligned dlib chips (float32 NCHW RGB in [0, 1], 150x150) and returns a
`Protected`: exactly what the untrusted server receives (`wire`), a viewable `preview` of it,
and the client-only `key`. Utility is measured the way the authorised service would really get
an embedding from the wire (`utility_embedding`).
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from facepriv_core.cancel import Cancel, Cancelled
from facepriv_core.defences.keys import KeySource
from facepriv_core.faces.types import tensor_to_chips

WireKind = Literal["image", "features", "embedding", "frequency"]
Progress = Callable[[int, int], None]


def report_progress(progress: Progress | None, step: int, total: int, phase: str = "",
                    preview: Callable[[], np.ndarray] | None = None) -> None:
    """Call a defence's `progress(step, total)`, also passing `phase` (what the steps count,
    e.g. "training shadow decoder 2/20") to callbacks taking a third argument and the latest
    `preview()` (uint8 HWC, made only when asked) to callbacks taking a fourth."""
    if progress is None:
        return
    try:
        arity = len(inspect.signature(progress).parameters)
    except (TypeError, ValueError):
        arity = 2
    if arity >= 4:
        typing.cast(Callable[[int, int, str, Any], None], progress)(
            step, total, phase, None if preview is None else preview())
    elif arity == 3:
        typing.cast(Callable[[int, int, str], None], progress)(step, total, phase)
    else:
        progress(step, total)


class ProtectionCancelled(Cancelled):
    """An optimising defence stopped because cancellation was requested."""


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str
    venue: str

    def cite(self) -> str:
        return f"{self.authors}, \"{self.title}\", {self.venue}"


class DefenceParams(BaseModel):
    """Base of every defence's Params: strict (unknown keys are an error), frozen, hashable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretKey:
    """Client-side secret material. Its repr, str and pickled/JSON forms never show it.

    Only `export()` returns the tensors, for a user who explicitly asks to export the key.
    `reproducible` is True when the key came from a public seed (KeySource.from_seed): such a
    key is labelled "not secret" wherever it is described. Parts are key material only, never
    the seed that drew them.
    """

    __slots__ = ("_parts", "reproducible")
    _parts: dict[str, Any]
    reproducible: bool

    def __init__(self, *, reproducible: bool = False,
                 **parts: torch.Tensor | np.ndarray | int) -> None:
        object.__setattr__(self, "_parts", dict(parts))
        object.__setattr__(self, "reproducible", reproducible)

    def __getitem__(self, name: str) -> Any:
        return self._parts[name]

    def __contains__(self, name: str) -> bool:
        return name in self._parts

    @property
    def nbytes(self) -> int:
        total = 0
        for v in self._parts.values():
            if isinstance(v, torch.Tensor):
                total += v.numel() * v.element_size()
            elif isinstance(v, np.ndarray):
                total += v.nbytes
            else:
                total += 8
        return total

    def export(self) -> dict[str, Any]:
        """The raw key parts: only for an explicit, user-requested export."""
        return dict(self._parts)

    def fingerprint(self) -> str:
        """A short one-way digest, to tell keys apart in reports without revealing them."""
        h = hashlib.sha256()
        for name in sorted(self._parts):
            v = self._parts[name]
            arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            h.update(name.encode() + arr.tobytes())
        return h.hexdigest()[:12]

    @property
    def label(self) -> str:
        from facepriv_core.defences.keys import REPRODUCIBLE_LABEL, SECRET_LABEL

        return REPRODUCIBLE_LABEL if self.reproducible else SECRET_LABEL

    def describe(self) -> dict[str, Any]:
        """What outputs may say about the key: its fingerprint, size and kind, nothing more."""
        return {"fingerprint": self.fingerprint(), "bytes": self.nbytes,
                "reproducible": self.reproducible, "secret": not self.reproducible,
                "label": self.label}

    def __repr__(self) -> str:
        kind = "reproducible, not secret" if self.reproducible else "secret"
        return f"<SecretKey {self.nbytes} bytes, {kind}>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a SecretKey is not picklable; use export() to save it deliberately")


class LazyMetrics(Mapping[str, float]):
    """Metrics computed on first read, once. Diagnostics that need extra network passes (a
    decryption check, keyless outputs) then cost nothing until something reports them."""

    def __init__(self, compute: Callable[[], dict[str, float]]) -> None:
        self._compute: Callable[[], dict[str, float]] | None = compute
        self._values: dict[str, float] = {}

    def _resolved(self) -> dict[str, float]:
        if self._compute is not None:
            self._values, self._compute = self._compute(), None
        return self._values

    def __getitem__(self, name: str) -> float:
        return self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())

    def __repr__(self) -> str:
        return repr(self._resolved()) if self._compute is None else "LazyMetrics(<not computed>)"


@dataclass(repr=False)
class Protected:
    """The result of protecting a batch of faces.

    wire: what the untrusted server receives (N, ...); preview: uint8 (N, H, W, 3) rendering of
    it; key: client-only secret (None for keyless defences); utility: how the authorised service
    turns the wire into embeddings given the recogniser; metrics: per-batch facts such as
    `energy_dropped` (a LazyMetrics where they cost network passes); utility_is_embedding:
    `utility(rec)` is `rec.embed(image)`, the recogniser run on the image as received, so an
    attacker probing the image with the same recogniser gets the same embeddings (the audit
    computes them once).
    """

    wire: torch.Tensor
    wire_kind: WireKind
    preview: np.ndarray
    utility: Callable[[Any], torch.Tensor]
    key: SecretKey | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    image: torch.Tensor | None = None
    utility_is_embedding: bool = False

    def utility_embedding(self, recognizer: Any) -> torch.Tensor:
        return self.utility(recognizer)

    @property
    def wire_shape(self) -> tuple[int, ...]:
        return tuple(self.wire.shape[1:])

    @property
    def wire_bytes(self) -> int:
        """Size of one face's wire in bytes (float32 tensors; uint8 for image wires)."""
        per = int(np.prod(self.wire_shape))
        return per if self.wire_kind == "image" else per * 4

    def __repr__(self) -> str:
        return (f"Protected(wire_kind={self.wire_kind!r}, wire_shape={self.wire_shape}, "
                f"n={self.wire.shape[0]}, key={self.key!r})")


#: What a defence's public algorithm lets an attacker know and reuse. Attacks declare the
#: capabilities they need; which attacks apply to which defence follows from the two.
CAPABILITIES: dict[str, str] = {
    "simulate": "the attacker can protect faces of its own with the public algorithm and "
                "params, under a fresh key it draws itself (simulate)",
    "public_transform": "the wire is a key-free, differentiable function of the face the "
                        "attacker can compute (public_transform)",
    "known_blur": "the public transform is a convolution with a known kernel (psf)",
    "known_blocks": "the public transform averages square blocks of a known size (block)",
    "known_noise": "the wire is the face plus noise of a known scale (noise_sigma)",
    "group_mixing": "wire rows are secret linear mixes of groups of shallow features, with "
                    "public group size and coefficient family",
    "frequency_masking": "the wire is a block-DCT with public channel selection and secret "
                         "channel shuffles",
}


@dataclass(frozen=True)
class PublicTransform:
    """A key-free model of the defence an attacker may reuse: `apply` maps faces (N, 3, H, W)
    in [0, 1] to what the wire would hold without the defence's randomness; the optional
    fields say what kind of degradation it is, for classic restorations (deconvolution,
    super-resolution, denoising)."""

    apply: Callable[[torch.Tensor], torch.Tensor]
    psf: np.ndarray | None = None
    block: int | None = None
    noise_sigma: float | None = None

    def implied_capabilities(self) -> frozenset[str]:
        caps = {"public_transform"}
        if self.psf is not None:
            caps.add("known_blur")
        if self.block is not None:
            caps.add("known_blocks")
        if self.noise_sigma is not None:
            caps.add("known_noise")
        return frozenset(caps)


P = TypeVar("P", bound=DefenceParams)


class Defence(ABC, Generic[P]):
    """A privacy defence from the literature. Subclasses register with `@register(name)` and
    name their Params: `class Blur(Defence[BlurParams])`, so `protect` is typed with them.

    `capabilities` declares what the public algorithm gives away (keys of CAPABILITIES); the
    contract tests check that it agrees with `public_transform` and `simulate`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    paper: ClassVar[Paper | None] = None
    wire_kind: ClassVar[WireKind]
    Params: type[P]  # a class attribute (ClassVar cannot hold a type variable)
    optimising: ClassVar[bool] = False
    #: Keyed defences take `key: KeySource | None` in protect (None: a fresh secret source).
    keyed: ClassVar[bool] = False
    capabilities: ClassVar[frozenset[str]] = frozenset({"simulate"})

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"<Defence {self.name}>"

    def params(self, **values: Any) -> P:
        return self.Params(**values)

    def public_transform(self, params: P) -> PublicTransform | None:
        """The key-free transform an attacker can reuse, or None when the wire is not one."""
        return None

    def simulate(self, x: torch.Tensor, params: P, rng: torch.Generator,
                 progress: Progress | None = None, cancel: Cancel | None = None) -> Protected:
        """Protect faces of the attacker's own with the public algorithm and params: the
        attacker's key (a reproducible source derived from its `rng`, never the victim's)
        and all other randomness from `rng`."""
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
        key = KeySource.from_seed(seed).derive("attacker") if self.keyed else None
        return self.protect_keyed(x, params, rng, key, progress, cancel)

    def config(self, params: P) -> dict[str, Any]:
        """This defence and its params as JSON-able data, to key attack caches by."""
        return {"defence": self.name, "defence_params": params.model_dump(mode="json")}

    @abstractmethod
    def protect(self, x: torch.Tensor, params: P, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None) -> Protected:
        """Protect chips x (N, 3, 150, 150) in [0, 1]; all randomness comes from `rng`.

        Optimising defences report `progress(step, total)` and stop with ProtectionCancelled
        soon after `cancel()` turns true; closed-form ones may ignore both. Keyed defences
        (`keyed = True`) also take `key: KeySource | None = None` and draw their secret from it
        (a fresh OS-entropy source when None), never from `rng` or a Params field."""

    def protect_keyed(self, x: torch.Tensor, params: P, rng: torch.Generator,
                      key: KeySource | None, progress: Progress | None = None,
                      cancel: Cancel | None = None) -> Protected:
        """protect(), handing `key` to keyed defences (keyless ones have no key argument)."""
        if self.keyed:
            return self.protect(x, params, rng, progress=progress, cancel=cancel,
                                key=key)  # type: ignore[call-arg]
        return self.protect(x, params, rng, progress=progress, cancel=cancel)

    def service_ready(self, params: P) -> bool:
        """Whether the authorised service behind `utility_embedding` is ready for `params`
        (a defence whose service is a trained model says False until it is trained;
        facepriv_core.train.services.prepare_service trains it)."""
        return True

    def service_seen(self, params: P) -> dict[str, list[int]]:
        """Identities (per dataset name) the authorised service was trained on: verification
        on them would not be held out, so `verify_defence` leaves them out."""
        return {}


def image_preview(x: torch.Tensor) -> np.ndarray:
    """uint8 NHWC of an image batch in [0, 1]."""
    return tensor_to_chips(x)


def tile_channels(t: torch.Tensor, columns: int | None = None) -> np.ndarray:
    """Render (N, C, H, W) features as uint8 (N, rows*H, cols*W, 3) grey tiles, each channel
    min-max scaled on its own so structure is visible whatever the range."""
    n, c, h, w = t.shape
    cols = columns or int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    t = t.detach().float().cpu()
    lo = t.amin(dim=(2, 3), keepdim=True)
    hi = t.amax(dim=(2, 3), keepdim=True)
    t = (t - lo) / (hi - lo).clamp_min(1e-8)
    canvas = torch.zeros(n, rows * (h + 1) - 1, cols * (w + 1) - 1)
    for k in range(c):
        r, q = divmod(k, cols)
        canvas[:, r * (h + 1): r * (h + 1) + h, q * (w + 1): q * (w + 1) + w] = t[:, k]
    grey = (canvas * 255).round().to(torch.uint8).numpy()
    return np.repeat(grey[..., None], 3, axis=-1)
