"""Auxiliary faces for attackers that learn: aligned chips of other people, their dlib
descriptors (cached, since alignment dominates), and the mask of those who are the attacked
people (dropped, so an attacker never trains on its victims)."""

from __future__ import annotations

import numpy as np
import torch

from facepriv_core import data_sources, datasets, models
from facepriv_core.embedding import embed_numpy
from facepriv_core.errors import UsageError
from facepriv_core.train.decoder import cache_dir, config_digest


def resolve_aux(spec: str, who: str) -> str:
    """`spec`, or this machine's default auxiliary set when it is empty (typed error if none)."""
    if spec:
        return spec
    found = data_sources.default_aux()
    if found is None:
        raise UsageError(data_sources.missing_aux_message(who))
    return found


def load_aux(spec: str, limit: int, seed: int = 0, use_cache: bool = True
             ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(uint8 chips, keys, dlib descriptors) of up to `limit` aligned auxiliary faces.

    Alignment (face detection) dominates the cost, so the result is cached by spec and limit.
    """
    spec = resolve_aux(spec, "decoder_inversion")
    path = cache_dir() / f"aux-{config_digest([spec, limit, seed])}.npz"
    if use_cache and path.is_file():
        with np.load(path) as f:
            return f["chips"], [str(k) for k in f["keys"]], f["embeddings"]
    ds = datasets.load(spec).limit(limit, seed)
    aligned = datasets.align_dataset(ds)
    keys = [ds.keys[i] if ds.keys else str(i) for i in aligned.indices]
    net = models.get("dlib-resnet")
    emb = embed_numpy(net, aligned.chips, 32, fn=lambda m, x: m(x))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, chips=aligned.chips, keys=np.asarray(keys), embeddings=emb)
    return aligned.chips, keys, emb


def same_people(aux_embeddings: np.ndarray, original: torch.Tensor) -> np.ndarray:
    """Mask of auxiliary faces the recogniser would match to any attacked face."""
    net = models.get("dlib-resnet")
    with torch.no_grad():
        emb = net(original.cpu()).numpy()
    dist = np.linalg.norm(aux_embeddings[:, None, :] - emb[None, :, :], axis=-1)
    return (dist < net.distance_threshold).any(axis=1)
