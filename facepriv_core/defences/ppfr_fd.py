"""PPFR-FD: privacy-preserving face recognition in the frequency domain (Wang et al., AAAI 2022).

The client turns the face into block-DCT component channels, keeps a fixed subset of them
without the DC channel (most of the image energy, hence of what a viewer sees, goes), and
masks the rest with the paper's "fast masking": Shuffle1 (a secret channel permutation),
self-normalisation, channel mixing (E_j + E_{j+1}) / 2, Shuffle2 (random per image) and
self-normalisation again. The server receives the 34 x 14 x 14 masked tensor.

Choices where the paper leaves room, and why:

* Geometry: the paper feeds 112 x 112 ArcFace-template faces. The defence's input is the
  dlib 150 chip (padding 0.25, a looser crop), which is resized as a whole to 112 x 112 with
  antialiasing, so the wire covers exactly what dlib-resnet sees and the frozen dlib server
  part can serve as the recogniser behind the adapter.
* Greyscale: ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) on the [0, 1] pixel scale.
* Self-normalisation: the paper normalises each element with a mean and standard deviation
  taken over the channels of the same image. Read literally (element-wise statistics), each
  spatial position (i, j) is standardised across the channel axis: for every (i, j),
  E'_c(i, j) = (E_c(i, j) - mean_c E_c(i, j)) / std_c E_c(i, j) (population std). These
  statistics do not depend on the channel order, so normalisation commutes with both
  shuffles, and it removes the per-block contrast that would otherwise survive as an image.
* Channel index u * 8 + v (u: vertical, v: horizontal frequency, row-major); the default
  subset is the 36 lowest channels in JPEG zig-zag order (exactly u + v <= 7).

Modules: the transform is in ppfr_fd_masking.py (re-exported here), the service in
ppfr_fd_service.py, this one is the plugin.

Utility: the paper's server widens ArcFace's input layer and trains it on masked tensors. Here
the service (facepriv_core.defences.ppfr_fd_service, its docstring says why) puts each image's
channels back in order with per-slot templates, rebuilds the masked high-pass face with a
fixed inverse-DCT layer and embeds it with a fine-tuned dlib-resnet. It is trained once per wire
configuration (facepriv_core.train.ppfr_fd_service: `facepriv train ppfr_fd`, or on first use
by `verify --defence` through facepriv_core.train.services) and cached;
until then a seeded, untrained adapter stands in and every output says UNTRAINED
(`utility_model`, metrics["adapter_trained"]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from facepriv_core.defences import register
from facepriv_core.defences.base import (
    Cancel,
    Defence,
    Paper,
    Progress,
    Protected,
    SecretKey,
    tile_channels,
)
from facepriv_core.defences.keys import KeySource
from facepriv_core.defences.ppfr_fd_masking import (
    BLOCK,
    FACE_SIZE,
    LUMA_601,
    NORM_EPS,
    PPFRParams,
    Selection,
    block_dct,
    block_idct,
    dct_matrix,
    energy_dropped,
    mask_coefficients,
    mix_channels,
    permute_channels,
    selected_channels,
    self_normalise,
    shuffle1_permutation,
    shuffle2_permutations,
    to_grey112,
    wire_channels,
    zigzag_order,
)
from facepriv_core.defences.ppfr_fd_service import (
    describe_service,
    service_checkpoint,
    service_trained,
    utility_service,
)

PPFR_FD = Paper(
    title="Privacy-Preserving Face Recognition in the Frequency Domain",
    authors="Wang, Liu, Luo, Yang, Wang",
    venue="AAAI 2022",
)


@dataclass(repr=False)
class FrequencyProtected(Protected):
    """A Protected that also names the recogniser behind `utility` (text for reports)."""

    utility_model: str = ""


@register("ppfr_fd")
class PPFRFD(Defence[PPFRParams]):
    title = "PPFR-FD: block-DCT channels with fast masking"
    paper = PPFR_FD
    wire_kind = "frequency"
    Params = PPFRParams
    keyed = True
    capabilities = frozenset({"simulate", "frequency_masking"})

    def key_for(self, params: PPFRParams, source: KeySource) -> SecretKey:
        """The client's key: the Shuffle1 permutation its key source fixes (never the seed)."""
        perm = shuffle1_permutation(source, len(selected_channels(params)))
        return SecretKey(shuffle1=perm, reproducible=source.reproducible)

    def service_ready(self, params: PPFRParams) -> bool:
        return service_trained(params)

    def service_seen(self, params: PPFRParams) -> dict[str, list[int]]:
        if not service_trained(params):
            return {}
        _, info = utility_service(params, self.device)
        return dict(info.get("trained_people", {}))

    def protect(self, x: torch.Tensor, params: PPFRParams, rng: torch.Generator,
                progress: Progress | None = None,
                cancel: Cancel | None = None, key: KeySource | None = None
                ) -> FrequencyProtected:
        """Shuffle1 comes from `key` (a fresh secret source when None); Shuffle2, drawn per
        image and discarded, from `rng`."""
        x = x.to(self.device)
        secret = self.key_for(params, key if key is not None else KeySource.secret())
        coef = block_dct(to_grey112(x))
        shuffle2 = shuffle2_permutations(x.shape[0], wire_channels(params), rng)
        wire = mask_coefficients(coef, params, secret["shuffle1"], shuffle2).detach()
        nondc = [c for c in selected_channels(params) if c != 0]
        embed, info = utility_service(params, self.device)

        def utility(recognizer: Any) -> torch.Tensor:
            if not hasattr(recognizer, "split"):
                raise TypeError("PPFR-FD's service is built on dlib-resnet; got "
                                f"{type(recognizer).__name__}")
            return embed(wire, secret["shuffle1"], recognizer)

        metrics = {
            "energy_dropped": float(energy_dropped(coef, nondc).mean()),
            "adapter_trained": float(info["trained"]),
            "adapter_train_images": float(info["train_images"]),
        }
        if progress:
            progress(1, 1)
        return FrequencyProtected(wire=wire, wire_kind="frequency", preview=tile_channels(wire),
                                  utility=utility, key=secret, metrics=metrics,
                                  utility_model=describe_service(info))


__all__ = ["BLOCK", "FACE_SIZE", "LUMA_601", "NORM_EPS", "PPFRFD", "PPFR_FD", "FrequencyProtected",
           "PPFRParams", "Selection", "block_dct", "block_idct", "dct_matrix", "energy_dropped",
           "mask_coefficients", "mix_channels", "permute_channels", "selected_channels",
           "self_normalise", "service_checkpoint", "service_trained", "shuffle1_permutation",
           "shuffle2_permutations", "to_grey112", "wire_channels", "zigzag_order"]
