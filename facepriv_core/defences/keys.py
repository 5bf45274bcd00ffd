"""Where a keyed defence's client secret comes from.

Keyed defences (FaceMix, XNN, PPFR-FD) draw their secret (mixing matrices, permutations) from a
`KeySource`, never from a Params field: Params are shown as widgets and written into JSON,
reports and specs, and a seed there would let anyone rebuild the key. By default a source holds
256 bits from the OS (`secrets`), so two runs, two users, two sessions never share a key. A
reproducible source, derived from a run's public seed, is an explicit choice for repeatable
audits and is labelled "reproducible, not secret" wherever the key is described.

The seed material is held in a slot that no repr, str, pickle or JSON form shows.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel

#: The label every output uses for each kind of key.
SECRET_LABEL = "secret (drawn from OS entropy)"
REPRODUCIBLE_LABEL = "reproducible, not secret (derived from the run's public seed)"


class KeySource:
    """A source of client-side key material: OS entropy (default) or a reproducible seed.

    `generator(purpose)` gives the same generator state every call (a fixed client key such as
    XNN's matrix or PPFR-FD's Shuffle1); `stream(purpose)` continues across calls (fresh secrets
    per use, such as FaceMix's per-group matrices over the batches of one audit). `derive(label)`
    makes an independent source of the same kind (one per face and setting in the app).
    """

    __slots__ = ("_material", "_streams", "reproducible")
    _material: bytes
    _streams: dict[str, torch.Generator]
    reproducible: bool

    def __init__(self, material: bytes, reproducible: bool) -> None:
        object.__setattr__(self, "_material", material)
        object.__setattr__(self, "_streams", {})
        object.__setattr__(self, "reproducible", reproducible)

    @classmethod
    def secret(cls) -> KeySource:
        """A fresh secret source: 256 bits from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(32), reproducible=False)

    @classmethod
    def from_seed(cls, seed: int) -> KeySource:
        """A reproducible (NOT secret) source: anyone who knows `seed` rebuilds the key."""
        digest = hashlib.sha256(b"facepriv reproducible key\0" + str(int(seed)).encode())
        return cls(digest.digest(), reproducible=True)

    @property
    def label(self) -> str:
        return REPRODUCIBLE_LABEL if self.reproducible else SECRET_LABEL

    def _seed_for(self, purpose: str) -> int:
        h = hashlib.sha256(self._material + b"\0" + purpose.encode()).digest()
        return int.from_bytes(h[:8], "little") & (2**63 - 1)

    def derive(self, label: str) -> KeySource:
        """An independent source of the same kind, fixed by this one and `label`."""
        h = hashlib.sha256(self._material + b"\0derive\0" + label.encode()).digest()
        return KeySource(h, self.reproducible)

    def generator(self, purpose: str) -> torch.Generator:
        """A CPU generator in the same state every call for this source and purpose."""
        return torch.Generator().manual_seed(self._seed_for(purpose))

    def stream(self, purpose: str) -> torch.Generator:
        """A CPU generator that continues where the previous call for `purpose` left off."""
        streams: dict[str, torch.Generator] = self._streams
        if purpose not in streams:
            streams[purpose] = self.generator("stream " + purpose)
        return streams[purpose]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a KeySource is immutable")

    def __repr__(self) -> str:
        return f"<KeySource {'reproducible, not secret' if self.reproducible else 'secret'}>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a KeySource is not picklable: its material would leave the process")


def key_source(reproducible: bool, seed: int) -> KeySource:
    """The source a run uses: secret by default, from `seed` only when asked for."""
    return KeySource.from_seed(seed) if reproducible else KeySource.secret()


class KeyInfo(BaseModel):
    """What a result says about the client key: fingerprint and kind, never the key or a seed."""

    fingerprint: str
    reproducible: bool
    secret: bool
    label: str


def key_info(keys: Sequence[Any]) -> KeyInfo | None:
    """The fingerprint of a run's keys together (one per protected batch; FaceMix draws fresh
    matrices per group), and whether they are secret; None for a keyless defence."""
    present = [k for k in keys if k is not None]
    if not present:
        return None
    prints = [k.fingerprint() for k in present]
    fingerprint = prints[0] if len(set(prints)) == 1 else \
        hashlib.sha256(" ".join(prints).encode()).hexdigest()[:12]
    reproducible = all(k.reproducible for k in present)
    return KeyInfo(fingerprint=fingerprint, reproducible=reproducible, secret=not reproducible,
                   label=present[0].label)
