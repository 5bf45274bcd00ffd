"""What every metric key the audits and attacks emit means, and which way is worse.

The app shows these as help texts next to each number and the report prints them beside
tables. `doc(key)` understands the key shapes results use: plain ("ssim"), per model or head
("rank1@faceres", "attr_cossim@age"), an attack's naive baseline ("naive_cosine") and the
audit's "attack.metric" columns ("identity.rank1@faceres").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher_leaks", "lower_leaks", "higher_better", "info"]

DIRECTION_TEXT = {
    "higher_leaks": "higher = more leakage",
    "lower_leaks": "lower = more leakage",
    "higher_better": "higher = more utility",
    "info": "a diagnostic, no direction",
}


@dataclass(frozen=True)
class MetricDoc:
    key: str
    title: str
    help: str
    direction: Direction

    @property
    def direction_text(self) -> str:
        return DIRECTION_TEXT[self.direction]

    @property
    def text(self) -> str:
        """One line for a tooltip: what it is, then which way is worse."""
        return f"{self.help} ({self.direction_text})"


def _d(title: str, help: str, direction: Direction) -> tuple[str, str, Direction]:
    return title, help, direction


#: Privacy metrics of attack results (higher/lower = more leakage) by base key.
ATTACK_METRICS: dict[str, tuple[str, str, Direction]] = {
    "cosine": _d("cosine to the original",
                 "cosine of the recogniser's embedding of what the attacker has (protected "
                 "face or reconstruction) to the original face's; dlib-resnet says 'same "
                 "person' from 0.921", "higher_leaks"),
    "match": _d("match rate",
                "share of faces whose cosine to the original clears the recogniser's "
                "same-person threshold: the recogniser still says it is the person",
                "higher_leaks"),
    "match_rate": _d("match rate (authorised recogniser)",
                     "share of faces dlib-resnet still accepts as the person (cosine >= its "
                     "threshold)", "higher_leaks"),
    "rank1": _d("rank-1 identification",
                "share of faces whose nearest enrolled photo is the same person; chance is "
                "about 1/identities", "higher_leaks"),
    "strongest_rank1": _d("strongest unauthorised rank-1",
                          "the highest rank-1 among recognisers other than the authorised "
                          "one", "higher_leaks"),
    "ssim": _d("SSIM to the original",
               "structural similarity (0..1) of the image to the original face; compare "
               "with the SSIM a mean face gets", "higher_leaks"),
    "psnr": _d("PSNR to the original (dB)",
               "peak signal-to-noise ratio of the image against the original face",
               "higher_leaks"),
    "srra": _d("successful reconstruction rate (SRRA)",
               "share of reconstructions dlib-resnet recognises as the person (cosine >= "
               "0.921), after PMT (Pu et al. 2023); chance is its false accept rate",
               "higher_leaks"),
    "feature_distance": _d("feature distance",
                           "relative distance of the reconstruction's features to the "
                           "original's at the wire's stage; 0 means the server cannot tell "
                           "them apart", "lower_leaks"),
    "source_cosine": _d("source cosine",
                        "cosine of the unmixed features to the true features of each face "
                        "(FaceMix unmixing)", "higher_leaks"),
    "attr_cossim": _d("attribute cosine similarity",
                      "cosine of the attribute model's class probabilities on the protected "
                      "face to those on the original (PMT Eq. 11); 1 = identical reading",
                      "higher_leaks"),
    "gender_flip_rate": _d("gender flip rate",
                           "share of faces whose predicted gender differs from the "
                           "original's", "lower_leaks"),
    "gender_agreement": _d("gender agreement",
                           "share of faces whose predicted gender equals the original's; "
                           "compare with the majority-class rate", "higher_leaks"),
    "age_abs_error": _d("age error (years)",
                        "absolute difference of the predicted age from the age predicted on "
                        "the original", "lower_leaks"),
    "emotion_agreement": _d("emotion agreement",
                            "share of faces whose predicted emotion equals the original's",
                            "higher_leaks"),
    "race_agreement": _d("race agreement",
                         "share of faces whose predicted race group equals the original's",
                         "higher_leaks"),
}

#: Utility metrics and defence diagnostics of audits and Protect runs.
UTILITY_METRICS: dict[str, tuple[str, str, Direction]] = {
    "utility_cosine": _d("utility cosine",
                         "cosine of the authorised service's embedding of the protected wire "
                         "to the clean embedding: how much recognition the service keeps",
                         "higher_better"),
    "verification_accuracy": _d("service verification accuracy",
                                "face verification accuracy (same/different pairs, k-fold "
                                "threshold) of the authorised service on the protected wire, "
                                "as `facepriv verify --defence`", "higher_better"),
    "verification_accuracy_clean": _d("clean verification accuracy",
                                      "the same protocol on the unprotected faces: the "
                                      "no-defence reference", "higher_better"),
    "ssim": _d("SSIM of the protected image",
               "structural similarity of the protected image to the original: visual "
               "fidelity, and how much appearance the server sees", "higher_leaks"),
    "psnr": _d("PSNR of the protected image (dB)",
               "peak signal-to-noise ratio of the protected image against the original",
               "higher_leaks"),
    "energy_dropped": _d("energy dropped",
                         "share of the DCT energy the frequency mask removes (PPFR-FD)", "info"),
    "decryption_cosine": _d("decryption cosine",
                            "cosine of decrypted to clean embeddings (FaceMix keyholder)",
                            "higher_better"),
    "keyed_cosine": _d("keyed cosine", "service cosine with the client key (XNN)",
                       "higher_better"),
    "keyless_cosine": _d("keyless cosine",
                         "cosine the plain server part gets without the key (XNN): what an "
                         "attacker without the key recovers", "higher_leaks"),
    "authorised_cosine": _d("authorised cosine",
                            "cosine of the authorised recogniser on the adversarial face to "
                            "the clean one (AdvFace)", "higher_better"),
}

PREFIXES = {"naive_": "naive baseline: "}


def doc(key: str, section: Literal["attack", "utility"] | None = None) -> MetricDoc:
    """The documentation of a metric key. `section` says where the key appears (an attack's
    metrics or the utility block: 'ssim' means the reconstruction in one, the protected
    image in the other); by default 'attack.metric' keys are attack metrics, others utility
    first. Unknown keys get a generic entry rather than an error."""
    original = key
    if section is None:
        section = "attack" if "." in key else ("utility" if key in UTILITY_METRICS
                                               else "attack")
    key = key.split(".", 1)[1] if "." in key else key
    prefix_title = ""
    for prefix, title in PREFIXES.items():
        if key.startswith(prefix):
            key, prefix_title = key[len(prefix):], title
    base, _, subject = key.partition("@")
    table = UTILITY_METRICS if section == "utility" else ATTACK_METRICS
    entry = table.get(base) or ATTACK_METRICS.get(base) or UTILITY_METRICS.get(base)
    if entry is None:
        return MetricDoc(original, original, "a measurement this run reported", "info")
    title, help_text, direction = entry
    if subject:
        title = f"{title} ({subject})"
        help_text = f"{help_text}; measured with {subject}"
    if prefix_title:
        title, help_text = prefix_title + title, (
            "the attacker that does not adapt to the defence (the protected image itself): "
            + help_text)
    return MetricDoc(original, title, help_text, direction)


def all_docs() -> list[MetricDoc]:
    """Every documented base key, attack metrics first."""
    return ([doc(k, "attack") for k in ATTACK_METRICS]
            + [doc(k, "utility") for k in UTILITY_METRICS])
