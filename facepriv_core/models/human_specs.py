"""What each npm face model is and how it reads a face: data only, no torch.

The registry (catalog) imports this at start-up to list the models without importing torch
modules or the face pipeline; `human_models` builds the networks from it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Side of the common dlib chip, as `faces.types.DLIB_CHIP_SIZE` (a test keeps them equal;
#: importing faces here would import the registry back).
CHIP_SIZE = 150
PACKAGE = "human-models"

#: Crop boxes (left, top, right, bottom) in 150-chip pixels.
CHIP_BOX = (0, 0, CHIP_SIZE, CHIP_SIZE)
#: The ArcFace-style 112 template seen from the chip (see faces.align.dlib_chip_to_template):
#: it reaches 32 px above the chip, so the forehead comes out black there.
TEMPLATE_BOX = (-11, -32, 158, 137)


@dataclass(frozen=True)
class InputSpec:
    """How a graph wants its face: crop of the 150 chip, size, value range, colour."""

    size: int
    box: tuple[int, int, int, int] = CHIP_BOX
    scale: float = 1.0  # network value = chip value in [0, 1] * scale + offset
    offset: float = 0.0
    grey: bool = False
    bgr: bool = False  # feed channels as B, G, R (graphs trained on OpenCV-decoded images)


@dataclass(frozen=True)
class HumanModelSpec:
    """One registry entry's view of a graph of the package."""

    file: str  # graph name in the package (models/FILE.json)
    task: str
    input: InputSpec
    output: str  # signature output (or node) read by the entry
    labels: tuple[str, ...] = ()
    #: recognisers: cosine threshold fitted on Olivetti (`facepriv verify`), see the card
    threshold: float | None = None



#: Wide face box: the chip plus 20 px on every side (faceres was trained on loose crops).
WIDE_BOX = (-20, -20, 170, 170)
#: SSR-Net's crop: the chip plus 35 px on every side (SSR-Net's demo pads the detected face by
#: 40 % of its size; measured on SFHQ's age grid, see the ssrnet card).
SSRNET_BOX = (-35, -35, 185, 185)
#: UTKFace's race classes, the order of gear's race head.
GEAR_RACES = ("white", "black", "asian", "indian", "other")
#: SFHQ's ethnicity prompts (weak labels) as UTKFace classes: UTKFace's "other" covers
#: Hispanic, Latino and Middle Eastern faces, so persian and south-american map there.
RACE_LABEL_OF_SFHQ = {"asian": "asian", "african": "black", "indian": "indian",
                      "irish": "white", "persian": "other", "south-american": "other"}
#: gear's age buckets (<20, 21-25, 26-30, 31-40, 41-50, 51-60, >60) as centres in years.
GEAR_AGE_CENTRES = ("15", "23", "28", "35.5", "45.5", "55.5", "65")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Registry name -> how it reads its graph. Crops and value ranges: see the model cards.
SPECS: dict[str, HumanModelSpec] = {
    "faceres": HumanModelSpec("faceres", "recognition", InputSpec(224, WIDE_BOX, 255.0),
                              "global_pooling/Mean", threshold=0.609),
    "faceres-deep": HumanModelSpec("faceres-deep", "recognition",
                                   InputSpec(224, (-35, -45, 185, 175), 255.0),
                                   "global_pooling/Mean:0", threshold=0.702),
    "mobileface": HumanModelSpec("mobileface", "recognition", InputSpec(112, TEMPLATE_BOX, 255.0),
                                 "batchnorm0/add_1:0", threshold=0.611),
    "mobilefacenet": HumanModelSpec("mobilefacenet", "recognition", InputSpec(112),
                                    "embeddings", threshold=0.99995),
    "gear-race": HumanModelSpec("gear", "race", InputSpec(198), "race_output", GEAR_RACES),
    "gear-gender": HumanModelSpec("gear", "gender", InputSpec(198), "gender_output",
                                  ("male", "female")),
    "gear-age": HumanModelSpec("gear", "age", InputSpec(198), "age_output", GEAR_AGE_CENTRES),
    "faceres-gender": HumanModelSpec("faceres", "gender", InputSpec(224, WIDE_BOX, 255.0),
                                     "gender_pred/Sigmoid:0", ("female", "male")),
    "faceres-age": HumanModelSpec("faceres", "age", InputSpec(224, WIDE_BOX, 255.0),
                                  "age_pred/Softmax:0", tuple(str(k + 0.5) for k in range(100))),
    "ssrnet-age": HumanModelSpec("age", "age", InputSpec(64, SSRNET_BOX, 255.0, bgr=True),
                                 "Identity:0", tuple(str(c) for c in range(5, 100, 10))),
    "ssrnet-gender": HumanModelSpec("gender-ssrnet-imdb", "gender",
                                    InputSpec(64, WIDE_BOX, 255.0, bgr=True),
                                    "Identity:0", ("female", "male")),
    # Grey in [-1, 1], outputs (female, male): face_classification's and Human's scaling.
    "oarriaga-gender": HumanModelSpec("gender", "gender", InputSpec(64, CHIP_BOX, 2.0, -1.0, True),
                                      "Identity:0", ("female", "male")),
    "oarriaga-emotion": HumanModelSpec("emotion", "emotion",
                                       InputSpec(64, CHIP_BOX, 2.0, -1.0, True), "Identity:0",
                                       EMOTIONS),
}
