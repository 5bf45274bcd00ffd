"""The untrained fallback of PPFR-FD's service: a seeded channel-set adapter in front of
dlib-resnet's frozen server part.

It is what PPFR-FD's utility runs on until the real service (facepriv_core.defences.
ppfr_fd_service: slot assignment, inverse DCT, fine-tuned dlib-resnet) is trained; every output
then says "UNTRAINED". Trained by distillation, this learnt order-invariant map reached cosine
0.88 to the clean embedding with held-out rank-1 at chance, which is why the service rebuilds
the image instead (see that module's docstring).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: The adapter replaces dlib-resnet's stem and level4 blocks and outputs level4.2's features.
DEFAULT_STAGE = "level4.2"
INIT_SEED = 0


def stage_shape(stage: str) -> tuple[int, int, int]:
    """(C, H, W) of dlib-resnet's output at `stage` for a 150 chip."""
    from facepriv_core import models

    model = models.get("dlib-resnet", "cpu")
    with torch.no_grad():
        return tuple(model.features(torch.zeros(1, 3, 150, 150), upto=stage)[stage].shape[1:])


class FrequencyAdapter(nn.Module):
    """(N, C, 14, 14) masked wire, channels in any order -> dlib features (N, *out_shape).

    Order invariance: a shared per-channel encoder, then (a) mean and max over channels and
    (b) `slots` soft assignments (softmax over channels of a score computed from each
    channel's own encoded statistics), so a slot can learn to pick "the channel that looks
    like frequency band k" wherever Shuffle2 has put it.
    """

    def __init__(self, in_channels: int, out_shape: tuple[int, int, int], width: int = 64,
                 enc: int = 8, slots: int = 16) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "out_shape": list(out_shape),
                       "width": width, "enc": enc, "slots": slots}
        self.out_shape = tuple(out_shape)
        self.encoder = nn.Sequential(nn.Conv2d(1, enc, 3, padding=1), nn.GELU(),
                                     nn.Conv2d(enc, enc, 3, padding=1), nn.GELU())
        self.scorer = nn.Linear(2 * enc, slots)
        self.trunk = nn.Sequential(nn.Conv2d((slots + 2) * enc, width, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.GELU())
        self.head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(width, out_shape[0], 1))

    def forward(self, wire: torch.Tensor) -> torch.Tensor:
        n, c, h, w = wire.shape
        e = self.encoder(wire.reshape(n * c, 1, h, w)).reshape(n, c, -1, h, w)
        stats = torch.cat([e.mean(dim=(3, 4)), e.std(dim=(3, 4))], dim=2)  # (n, c, 2 enc)
        weights = self.scorer(stats).softmax(dim=1)  # over channels: (n, c, slots)
        slotted = torch.einsum("ncs,ncfhw->nsfhw", weights, e).flatten(1, 2)
        pooled = torch.cat([e.mean(dim=1), e.amax(dim=1)], dim=1)
        y = self.trunk(torch.cat([slotted, pooled], dim=1))
        y = F.interpolate(y, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return self.head(y)


def new_adapter(in_channels: int, stage: str = DEFAULT_STAGE, seed: int = INIT_SEED
                ) -> FrequencyAdapter:
    """A freshly initialised adapter; the seed makes the untrained baseline reproducible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FrequencyAdapter(in_channels, stage_shape(stage))


def untrained_adapter(in_channels: int, device: torch.device | str
                      ) -> tuple[FrequencyAdapter, dict[str, Any]]:
    """The fallback utility model when no checkpoint is given: seeded init, no training."""
    adapter = new_adapter(in_channels).to(device).eval().requires_grad_(False)
    return adapter, {"trained": False, "stage": DEFAULT_STAGE, "train_images": 0, "epochs": 0}
