"""Reader for dlib's binary serialization of the ResNet face recogniser (no dlib needed).

dlib writes a network outermost layer first, and each wrapper writes its subnetwork before its
own details, so the file holds a header of wrapper versions (outermost first) followed by the
layer details innermost first. We parse it in that order against the architecture we expect
(`anet_type` of dlib's dnn_face_recognition_ex.cpp), so any file that is not exactly that
network fails with a `DlibDatError` naming the offset and what differed, instead of loading
weights into the wrong places.

Encodings (dlib/serialize.h, dlib/dnn/tensor.h): an integer is a control byte (low nibble =
byte count, 0x80 = negative) then little-endian magnitude bytes; a string is an integer length
then bytes; a bool is the character '0' or '1'; a float is an integer mantissa and an integer
exponent (value = mantissa * 2**exponent); a tensor is version 2, num_samples, k, nr, nc, then
raw little-endian float32 values; an alias_tensor is version 1 and its four dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepriv_core.models.formats.subnormal import flush_subnormal

_ADD_LAYER_VERSION = 2  # add_layer<LAYER, SUBNET>
_INPUT_ADD_LAYER_VERSION = 3  # add_layer<LAYER, INPUT_LAYER>: the layer right above the input
_TAG_VERSION = 1  # add_tag_layer and add_skip_layer
_LOSS_VERSION = 1  # add_loss_layer
_CONV_MODE = 0  # dlib::layer_mode::CONV for affine_
_FC_NO_BIAS = 1  # dlib::fc_bias_mode::FC_NO_BIAS


class DlibDatError(ValueError):
    """The file is not (or no longer) the dlib ResNet model we can read; says where and why."""


@dataclass(frozen=True)
class Layer:
    """One parsed layer: its dlib kind, its configuration and its weights (if any)."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    config: dict[str, int] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibResNetFile:
    """The parsed model: input means (0..255 scale, RGB), layers innermost first, loss values."""

    mean_rgb: tuple[float, float, float]
    input_size: int
    layers: list[Layer]
    distance_threshold: float
    margin: float


class _Reader:
    """A cursor over the file's bytes; every read fails cleanly at the end of the data."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> DlibDatError:
        return DlibDatError(f"{what} (at byte offset {self.pos} of {len(self.data)})")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of file while reading {what}; file truncated?")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int_(self, what: str) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte {control:#04x} for {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def string(self, what: str) -> str:
        n = self.int_(f"length of {what}")
        if not 0 <= n <= 256:
            raise self.fail(f"implausible string length {n} for {what}")
        return self.take(n, what).decode("latin-1")

    def bool_(self, what: str) -> bool:
        ch = self.take(1, what)
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool {ch!r} for {what}")
        return ch == b"1"

    def float_(self, what: str) -> float:
        mantissa = self.int_(f"mantissa of {what}")
        exponent = self.int_(f"exponent of {what}")
        if abs(exponent) > 2000:  # dlib's codes for inf and nan; never valid in this model
            raise self.fail(f"non-finite or invalid float for {what}")
        return math.ldexp(mantissa, exponent)

    def dims(self, what: str, version: int) -> tuple[int, int, int, int]:
        got = self.int_(f"version of {what}")
        if got != version:
            raise self.fail(f"{what} has version {got}, expected {version}")
        n, k, nr, nc = (self.int_(f"dimension of {what}") for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.fail(f"negative dimension {(n, k, nr, nc)} in {what}")
        return n, k, nr, nc

    def tensor(self, what: str) -> np.ndarray:
        dims = self.dims(what, 2)
        count = math.prod(dims)
        raw = self.take(4 * count, f"{count} floats of {what}")
        return flush_subnormal(np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims))

    def alias(self, what: str) -> tuple[int, int, int, int]:
        return self.dims(what, 1)

    def expect(self, got: object, want: object, what: str) -> None:
        if got != want:
            raise self.fail(f"{what} is {got!r}, expected {want!r}")


# --- the expected architecture, outermost wrapper first -------------------------------------
# Each token is ("layer", kind, config) or ("tag", id) / ("skip", id); tags and skips write only
# a version number, so they are checked through the header alone.

Token = tuple[str, str, dict[str, int]] | tuple[str, int]


def _con(n: int, size: int, stride: int) -> Token:
    pad = 0 if stride != 1 else size // 2  # dlib's default padding
    return ("layer", "con", {"num_filters": n, "nr": size, "nc": size, "stride_y": stride,
                             "stride_x": stride, "padding_y": pad, "padding_x": pad})


def _pool(kind: str, size: int, stride: int) -> Token:
    pad = 0 if stride != 1 else size // 2
    return ("layer", kind, {"nr": size, "nc": size, "stride_y": stride, "stride_x": stride,
                            "padding_y": pad, "padding_x": pad})


_AFFINE: Token = ("layer", "affine", {})
_RELU: Token = ("layer", "relu", {})
_ADD_PREV: Token = ("layer", "add_prev", {})


def _block(n: int, stride: int) -> list[Token]:
    return [_AFFINE, _con(n, 3, 1), _RELU, _AFFINE, _con(n, 3, stride)]


def _ares(n: int) -> list[Token]:
    return [_RELU, _ADD_PREV, *_block(n, 1), ("tag", 1)]


def _ares_down(n: int) -> list[Token]:
    return [_RELU, _ADD_PREV, _pool("avg_pool", 2, 2), ("skip", 1), ("tag", 2),
            *_block(n, 2), ("tag", 1)]


def expected_architecture() -> list[Token]:
    """dnn_face_recognition_ex.cpp's anet_type below the loss, outermost first."""
    return [
        ("layer", "fc", {"num_outputs": 128}), _pool("avg_pool", 0, 1),
        *_ares_down(256),
        *_ares(256), *_ares(256), *_ares_down(256),
        *_ares(128), *_ares(128), *_ares_down(128),
        *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),
        *_ares(32), *_ares(32), *_ares(32),
        _pool("max_pool", 3, 2), _RELU, _AFFINE, _con(32, 7, 2),
    ]


# --- parsing ---------------------------------------------------------------------------------

_NAMES = {"con_4": "con", "affine_": "affine", "relu_": "relu", "max_pool_2": "max_pool",
          "avg_pool_2": "avg_pool", "add_prev_": "add_prev", "fc_2": "fc"}


def _con_layer(r: _Reader, in_channels: int) -> Layer:
    params = r.tensor("con params")
    names = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    cfg = {n: r.int_(f"con {n}") for n in names}
    n, kr, kc = cfg["num_filters"], cfg["nr"], cfg["nc"]
    r.expect(r.alias("con filters"), (n, in_channels, kr, kc), "con filter shape")
    r.expect(r.alias("con biases"), (1, n, 1, 1), "con bias shape")
    for what in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.float_(f"con {what} multiplier")
    flat = params.reshape(-1)
    r.expect(flat.size, n * in_channels * kr * kc + n, "con params size")
    split = n * in_channels * kr * kc
    weights = {"weight": flat[:split].reshape(n, in_channels, kr, kc), "bias": flat[split:]}
    return Layer("con", cfg, weights)


def _affine_layer(r: _Reader, channels: int) -> Layer:
    params = r.tensor("affine params").reshape(-1)
    r.expect(r.alias("affine gamma"), (1, channels, 1, 1), "affine gamma shape")
    r.expect(r.alias("affine beta"), (1, channels, 1, 1), "affine beta shape")
    r.expect(r.int_("affine mode"), _CONV_MODE, "affine mode")
    r.expect(params.size, 2 * channels, "affine params size")
    return Layer("affine", {}, {"gamma": params[:channels], "beta": params[channels:]})


def _pool_layer(r: _Reader, kind: str) -> Layer:
    names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return Layer(kind, {n: r.int_(f"{kind} {n}") for n in names})


def _fc_layer(r: _Reader, in_features: int) -> Layer:
    cfg = {"num_outputs": r.int_("fc num_outputs"), "num_inputs": r.int_("fc num_inputs")}
    r.expect(cfg["num_inputs"], in_features, "fc num_inputs")
    params = r.tensor("fc params")
    n_in, n_out = cfg["num_inputs"], cfg["num_outputs"]
    r.expect(r.alias("fc weights"), (n_in, n_out, 1, 1), "fc weight shape")
    r.alias("fc biases")
    r.expect(r.int_("fc bias mode"), _FC_NO_BIAS, "fc bias mode (fc_no_bias)")
    for what in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.float_(f"fc {what} multiplier")
    r.expect(params.size, n_in * n_out, "fc params size")
    return Layer("fc", cfg, {"weight": params.reshape(n_in, n_out)})  # (inputs, outputs)


def _add_layer_state(r: _Reader, version: int) -> None:
    """The training state add_layer writes after its layer: 3 flags and 3 scratch tensors."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale",
                 "get_output_and_gradient_input_disabled"):
        r.bool_(what)
    for what in ("x_grad", "cached_output", "params_grad"):
        r.tensor(what)
    if version == _INPUT_ADD_LAYER_VERSION:
        r.int_("sample expansion factor")


def parse(data: bytes) -> DlibResNetFile:
    """Parse dlib_face_recognition_resnet_model_v1.dat's bytes, checking every shape."""
    r = _Reader(data)
    r.expect(r.int_("loss layer version"), _LOSS_VERSION, "loss layer version")
    r.expect(r.string("loss layer name"), "loss_metric_2",
             "loss layer name (not a dlib metric-learning network?)")
    margin = r.float_("loss margin")
    threshold = r.float_("loss distance threshold")

    arch = expected_architecture()
    want = [_TAG_VERSION if t[0] != "layer" else _ADD_LAYER_VERSION for t in arch]
    want[-1] = _INPUT_ADD_LAYER_VERSION
    for i, w in enumerate(want):
        r.expect(r.int_("wrapper version"), w, f"wrapper version #{i} (architecture mismatch?)")

    r.expect(r.string("input layer name"), "input_rgb_image_sized", "input layer name")
    mean = (r.float_("red mean"), r.float_("green mean"), r.float_("blue mean"))
    size = r.int_("input rows")
    r.expect(r.int_("input columns"), size, "input columns")

    layers: list[Layer] = []
    channels = 3
    for token in reversed([t for t in arch if t[0] == "layer"]):
        if len(token) != 3:  # layer tokens are ("layer", kind, config)
            raise DlibDatError(f"malformed layer token {token!r}")
        _, kind, want_cfg = token
        name = r.string("layer name")
        r.expect(_NAMES.get(name), kind, f"layer kind of {name!r}")
        if kind == "con":
            layer = _con_layer(r, channels)
            channels = layer.config["num_filters"]
        elif kind == "affine":
            layer = _affine_layer(r, channels)
        elif kind in ("max_pool", "avg_pool"):
            layer = _pool_layer(r, kind)
        elif kind == "fc":
            layer = _fc_layer(r, channels)
        else:
            layer = Layer(kind)
        for key, value in want_cfg.items():
            r.expect(layer.config[key], value, f"{kind} {key}")
        _add_layer_state(r, _INPUT_ADD_LAYER_VERSION if not layers else _ADD_LAYER_VERSION)
        layers.append(layer)

    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return DlibResNetFile(mean, size, layers, threshold, margin)


def load(path: str | Path) -> DlibResNetFile:
    """Parse the .dat file at `path`; errors name the file."""
    try:
        return parse(Path(path).read_bytes())
    except DlibDatError as exc:
        raise DlibDatError(
            f"{path} is not a readable dlib_face_recognition_resnet_model_v1.dat: {exc}"
        ) from None
