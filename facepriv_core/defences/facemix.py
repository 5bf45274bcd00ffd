"""FaceMix: the client mixes the shallow features of a group of faces with a secret matrix.

The client runs dlib-resnet up to `stage`, groups `group_size` faces and sends A f (A a fresh,
secret, well-conditioned S x S matrix per group, applied across the faces of the group). The
server runs the rest of the network on each mixed activation and the client decrypts the
returned outputs with A^-1.

Decryption is exact only when the server part is linear in its input. Three servers show where
that holds:

* `linear`: global average pool + a bias-free linear layer (a fixed, seeded random projection
  to 128 dims: a stand-in that demonstrates exact decryption, not a face descriptor);
* `dlib` (default): the pretrained non-linear dlib server part; decryption is approximate and
  `metrics["decryption_cosine"]` reports how far the decrypted embeddings are from the clean
  ones (with stage "level0.0" the dlib server is only its linear head and decryption is exact);
* `trained`: the dlib server part fine-tuned with mixing in the loop
  (facepriv_core.train.facemix_server), loaded from `server_path`.

A batch whose size is not a multiple of `group_size` has its last group padded with copies of
the batch's first faces (faces of other groups when the batch holds more than one group), so
every group mixes `group_size` activations; the wire then holds the padded rows too, after the
N real ones. A batch with a single face cannot be mixed: each wire row is a multiple of that
face's features (`metrics["min_distinct_per_group"]` says so).
"""

from __future__ import annotations

import copy
import functools
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from facepriv_core import checkpoints, models
from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    DefenceParams,
    LazyMetrics,
    Paper,
    Progress,
    Protected,
    SecretKey,
    tile_channels,
)
from facepriv_core.defences.keys import KeySource
from facepriv_core.errors import CheckpointError
from facepriv_core.models.dlib_resnet import DEFAULT_SPLIT, EMBEDDING_DIM

CHECKPOINT_KIND = "facemix-server"
#: Rejection sampling gives up after this many draws (cond_max too tight for the group size).
MAX_DRAWS = 10_000
Coefficients = Literal["uniform", "gaussian"]


class FaceMixParams(DefenceParams):
    group_size: int = Field(4, ge=2, le=16,
                            description="S_G: faces mixed together by one secret matrix")
    stage: str = Field(DEFAULT_SPLIT, description="the dlib-resnet stage after which the client "
                                                  "stops (N_pre) and mixes the features")
    coefficients: Coefficients = Field(
        "uniform", description="mixing matrix entries: 'uniform' (positive, each row a convex "
                               "mix summing to 1) or 'gaussian' (standard normal)")
    server: Literal["dlib", "linear", "trained"] = Field(
        "dlib", description="server part: pretrained dlib (approximate decryption), a linear "
                            "head (exact) or a mixing-trained dlib part loaded from server_path")
    server_path: str | None = Field(None, description="checkpoint of a trained server "
                                                      "(only with server='trained')")
    cond_max: float = Field(100.0, ge=2.0, le=1e6,
                            description="largest condition number accepted for a mixing matrix")

    @model_validator(mode="after")
    def _path_only_when_trained(self) -> FaceMixParams:
        if (self.server == "trained") != (self.server_path is not None):
            raise ValueError("server_path is needed with server='trained' and only then")
        return self


def mixing_matrices(n_groups: int, size: int, kind: Coefficients, cond_max: float,
                    rng: torch.Generator) -> torch.Tensor:
    """(n_groups, size, size) float64 CPU matrices, each with condition number <= cond_max.

    Drawn and rejected one at a time: a convex mix cannot be built from a chosen spectrum, and
    rejection keeps the entry distribution what `kind` says.
    """
    out = []
    for _ in range(n_groups):
        for _ in range(MAX_DRAWS):
            if kind == "uniform":
                a = torch.rand(size, size, generator=rng, device=rng.device, dtype=torch.float64)
                a = a / a.sum(dim=1, keepdim=True)
            else:
                a = torch.randn(size, size, generator=rng, device=rng.device, dtype=torch.float64)
            if torch.linalg.cond(a).item() <= cond_max:
                out.append(a.cpu())
                break
        else:
            raise ValueError(f"no {kind} {size}x{size} mixing matrix with condition number "
                             f"<= {cond_max} in {MAX_DRAWS} draws; raise cond_max")
    return torch.stack(out)


def group_indices(n: int, size: int) -> torch.Tensor:
    """(G, size) batch indices: faces in order, the last group padded with the first faces."""
    n_groups = -(-n // size)
    flat = torch.arange(n_groups * size)
    flat[n:] = torch.arange(n_groups * size - n) % n
    return flat.view(n_groups, size)


def mix(feats: torch.Tensor, groups: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(G * S, ...) rows A_g [f_i for i in group g], group after group."""
    gathered = feats[groups.to(feats.device)]
    mixed = torch.einsum("gij,gj...->gi...", a.to(feats), gathered)
    return mixed.flatten(0, 1)


def unmix(outputs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(G * S, D) server outputs -> A_g^-1 applied per group; differentiable in `outputs`."""
    g, s, _ = a.shape
    y = outputs.reshape(g, s, -1)
    return torch.linalg.solve(a.to(y), y).reshape(g * s, -1)


class LinearHead(nn.Module):
    """Global average pool + bias-free linear layer: linear in its input, so mixing commutes.

    No bias, because A^-1 (A W f + b) = W f + A^-1 b differs from W f unless A's rows sum to 1.
    The weights are a fixed seeded projection, the same for every run: a public server model.
    """

    def __init__(self, channels: int, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, dim, bias=False)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(dim, channels, generator=gen) / channels**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def load_trained_server(path: str, stage: str, device: torch.device) -> nn.Module:
    """The fine-tuned server part saved by facepriv_core.train.facemix_server."""
    ckpt = checkpoints.load(path, CHECKPOINT_KIND, "FaceMix server checkpoint", device)
    if ckpt["stage"] != stage:
        raise CheckpointError(f"'{path}' was trained for stage {ckpt['stage']!r}, not {stage!r}")
    _, server = models.get("dlib-resnet", device).split(stage)
    server = copy.deepcopy(server)  # the zoo's model is shared: never overwrite its weights
    server.load_state_dict(ckpt["state_dict"])
    return server.eval()


@register("facemix")
class FaceMix(Defence[FaceMixParams]):
    title = "FaceMix (secret mixing of a group's shallow features)"
    paper = Paper(
        title="FaceMix: Privacy-preserving Facial Attribute Classification on the Cloud",
        authors="Liu, Wu, Zhu, Gan, Han (MIT)",
        venue="arXiv preprint",
    )
    wire_kind = "features"
    capabilities = frozenset({"simulate", "group_mixing"})
    Params = FaceMixParams
    keyed = True

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        self._trained: dict[tuple[str, str], nn.Module] = {}

    def _server(self, params: FaceMixParams, dlib_server: nn.Module, channels: int
                ) -> nn.Module:
        if params.server == "linear":
            return LinearHead(channels).to(self.device)
        if params.server == "trained":
            assert params.server_path is not None
            key = (params.server_path, params.stage)
            if key not in self._trained:
                self._trained[key] = load_trained_server(params.server_path, params.stage,
                                                         self.device)
            return self._trained[key]
        return dlib_server

    def protect(self, x: torch.Tensor, params: FaceMixParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None, key: KeySource | None = None) -> Protected:
        """The mixing matrices come from `key`'s stream (a fresh secret source when None), so
        the batches of one audit get fresh matrices each; `rng` is not used."""
        shallow, dlib_server = models.get("dlib-resnet", self.device).split(params.stage)
        n = x.shape[0]
        with torch.no_grad():
            feats = shallow(x.to(self.device))
            server = self._server(params, dlib_server, feats.shape[1])
            groups = group_indices(n, params.group_size)
            source = key if key is not None else KeySource.secret()
            a = mixing_matrices(len(groups), params.group_size, params.coefficients,
                                params.cond_max, source.stream("facemix"))
            wire = mix(feats, groups, a)

        @functools.cache
        def decrypted() -> torch.Tensor:
            """The server's outputs on the mixed wire, unmixed by the client (run once)."""
            with torch.no_grad():
                return unmix(server(wire).double(), a).float()[:n]

        def diagnostics() -> dict[str, float]:
            # The reference is what the client wants back: the linear head's own output, else
            # the clean dlib embedding (a trained server is judged against that too).
            with torch.no_grad():
                reference = server(feats) if params.server == "linear" else dlib_server(feats)
            cos = F.cosine_similarity(decrypted(), reference, dim=1)
            return {
                "decryption_cosine": float(cos.mean()),
                "decryption_cosine_min": float(cos.min()),
                "decryption_max_abs_error": float((decrypted() - reference).abs().max()),
                "mixing_cond_max": float(torch.linalg.cond(a).max()),
                "padded_rows": float(wire.shape[0] - n),
                "min_distinct_per_group": float(min(len(set(g.tolist())) for g in groups)),
            }

        return Protected(wire=wire, wire_kind="features", preview=tile_channels(wire),
                         utility=lambda rec: decrypted(),
                         key=SecretKey(matrices=a, reproducible=source.reproducible),
                         metrics=LazyMetrics(diagnostics))
