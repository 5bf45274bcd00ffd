"""Adaptive attacker for blur, pixelation and noise: learn to undo the public image transform.

Identity matching on the protected image (the naive attacker) overstates what blur and
pixelation hide: the transform is public, so the server can blur or pixelate auxiliary faces
of other people with the same params, train a de-blurring / de-pixelating decoder on the pairs
and run it on the images it receives. This is decoder_inversion's training (same U-Net, same
auxiliary-face handling and cache) restricted to these image wires, scored against the naive
attacker on the same faces so the gain of adapting is visible.
"""

from __future__ import annotations

from facepriv_core.attacks import register
from facepriv_core.attacks._common import score_rows
from facepriv_core.attacks.base import AttackCase, AttackResult, CancelFn, ProgressFn, ThreatModel
from facepriv_core.attacks.decoder_inversion import DecoderInversion, DecoderParams
from facepriv_core.attacks.identity import AUTHORISED, DEFAULT_THRESHOLDS

#: dlib-resnet's cosine threshold (fitted on Olivetti) for "the recogniser says same person".
MATCH_THRESHOLD = DEFAULT_THRESHOLDS[AUTHORISED]


@register("adaptive_decoder")
class AdaptiveDecoder(DecoderInversion):
    title = "Adaptive de-blurring / de-pixelating decoder (trained on auxiliary faces)"
    threat = ThreatModel(
        knows=("wire", "auxiliary_data", "defence_algorithm"),
        sentence="The server blurs, pixelates or noises faces of other people with the same "
                 "public params, learns to undo it, and restores the images it received.",
    )
    applies_to = frozenset({"image"})
    #: The image must be a public transform of the face (plus noise), which it learns to undo.
    needs = frozenset({"simulate", "public_transform"})

    def run(self, case: AttackCase, params: DecoderParams, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        """The decoder's rows (ssim, psnr, cosine, match_rate) beside the naive attacker's
        on the protected image itself (naive_*)."""
        result = super().run(case, params, progress, cancel)
        if result.reconstructions is None:  # decoder_inversion always returns them
            raise RuntimeError("decoder_inversion returned no reconstructions")
        n = case.original.shape[0]
        prot = case.protected
        naive = (prot.image if prot.image is not None else prot.wire)[:n].float()
        naive_rows = score_rows(case, naive.to(result.reconstructions.device), None)
        for row, naive_row in zip(result.per_image, naive_rows, strict=True):
            row["match_rate"] = float(row["cosine"] >= MATCH_THRESHOLD)
            row.update({f"naive_{k}": v for k, v in naive_row.items()})
            row["naive_match_rate"] = float(naive_row["cosine"] >= MATCH_THRESHOLD)
        result.details["match_threshold"] = MATCH_THRESHOLD
        return result

    @staticmethod
    def gain(result: AttackResult) -> dict[str, float]:
        """Mean adaptive minus naive cosine and match rate: what adapting adds."""
        agg = result.aggregates
        return {k: agg[k] - agg[f"naive_{k}"] for k in ("cosine", "match_rate", "ssim")}

