"""TensorFlow.js graph models (model.json + weight shards) read into torch.

Attacks and defences need gradients through every model, on any device; the npm face models
ship only as TF.js graphs. `read_graph` parses the topology and decodes the weights (float32,
int32, and the converter's float16 / uint8 / uint16 quantisation); `OPS` evaluates
each node with torch ops, keeping TF's NHWC layout so axis arguments (Mean, Squeeze, Reshape,
StridedSlice) mean what they meant in TF; `tfjs_module.TfjsGraphModule` runs a whole graph.
Convolutions see a channels-last view of the NHWC tensor, so no copies are made around them.
An op outside `SUPPORTED_OPS` is refused by name when the graph is read, not converted
approximately.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facepriv_core.models.formats.subnormal import flush_subnormal

ELEMENTWISE = ("Add", "AddV2", "BiasAdd", "Sub", "Mul", "RealDiv", "Maximum", "Minimum")
UNARY = ("Abs", "Square", "Sqrt", "Rsqrt", "Neg", "Exp", "Relu", "Relu6", "Elu", "Sigmoid",
         "Tanh", "Softmax", "Identity")
SUPPORTED_OPS = frozenset({
    "Placeholder", "Const", "Conv2D", "_FusedConv2D", "DepthwiseConv2dNative",
    "FusedDepthwiseConv2dNative", "MatMul", "_FusedMatMul", "LeakyRelu", "Prelu",
    "Sum", "Mean", "Max", "MaxPool", "AvgPool", "Pad", "Reshape", "Squeeze", "ExpandDims",
    "StridedSlice", "ConcatV2", "FusedBatchNorm", "FusedBatchNormV3",
    *ELEMENTWISE, *UNARY,
})
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


class TfjsGraphError(ValueError):
    """The files are not a TF.js graph model this reader understands."""


class UnsupportedTfjsOpError(TfjsGraphError):
    """The graph uses an op (or an op setting) that is not implemented; named in the message."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfjsGraph:
    """A parsed graph: nodes in evaluation order, constant tensors, input and output names."""

    nodes: list[Node]
    consts: dict[str, np.ndarray]
    inputs: list[str]
    outputs: dict[str, str]  # signature name -> node name
    input_shapes: dict[str, tuple[int, ...]]
    meta: dict[str, Any]


def _attr_value(value: dict[str, Any]) -> Any:
    """Decode one AttrValue of the JSON topology (strings are base64)."""
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "shape" in value:
        return tuple(int(d.get("size", -1)) for d in value["shape"].get("dim", []))
    if "list" in value:
        lst = value["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        return []
    return None


def _ref(name: str) -> str:
    """'node:0' -> 'node'. Graphs here have single-output nodes; others are refused."""
    base, _, index = name.partition(":")
    if index not in ("", "0"):
        raise UnsupportedTfjsOpError(f"input {name!r}: multi-output nodes are not supported")
    return base


def _decode_weights(manifest: list[dict[str, Any]], folder: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = tuple(int(s) for s in w["shape"])
            count = math.prod(shape)
            quant = w.get("quantization")
            if quant:
                qdtype = _QUANT.get(quant["dtype"])
                if qdtype is None:
                    raise TfjsGraphError(f"weight {w['name']!r}: quantisation "
                                         f"{quant['dtype']!r} is not supported")
                raw = np.frombuffer(buf, qdtype, count, offset)
                offset += raw.nbytes
                if quant["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:  # affine: value = q * scale + min
                    arr = raw.astype(np.float32) * np.float32(quant["scale"]) \
                        + np.float32(quant["min"])
                arr = arr.astype(_DTYPES[w["dtype"]])
            else:
                dtype = _DTYPES.get(w["dtype"])
                if dtype is None:
                    raise TfjsGraphError(f"weight {w['name']!r}: dtype {w['dtype']!r} "
                                         "is not supported")
                arr = np.frombuffer(buf, dtype, count, offset).copy()
                offset += arr.nbytes
            out[w["name"]] = flush_subnormal(arr.reshape(shape))
        if offset != len(buf):
            raise TfjsGraphError(f"weight shards {group['paths']} hold {len(buf)} bytes, "
                                 f"the manifest describes {offset}")
    return out


def _topological(nodes: dict[str, Node]) -> list[Node]:
    order: list[Node] = []
    state: dict[str, int] = {}
    for root in nodes:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(nodes[name])
                continue
            if state.get(name):
                continue
            if name not in nodes:
                raise TfjsGraphError(f"node input {name!r} is not in the graph")
            state[name] = 1
            stack.append((name, True))
            stack.extend((i, False) for i in nodes[name].inputs if not state.get(i))
    return order


def read_graph(model_json: str | Path) -> TfjsGraph:
    """Parse a TF.js graph model; refuse it, naming every unsupported op, before any work."""
    path = Path(model_json)
    try:
        doc = json.loads(path.read_text())
        topology = doc["modelTopology"]
        raw_nodes = topology["node"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TfjsGraphError(f"{path}: not a TF.js graph model ({exc})") from exc
    if doc.get("format") not in (None, "graph-model"):
        raise TfjsGraphError(f"{path}: format {doc.get('format')!r}, expected 'graph-model'")
    if topology.get("library", {}).get("function"):
        raise UnsupportedTfjsOpError(f"{path}: graphs with functions (control flow) are not "
                                     "supported")
    unsupported = sorted({n["op"] for n in raw_nodes} - SUPPORTED_OPS)
    if unsupported:
        raise UnsupportedTfjsOpError(f"{path.name}: unsupported ops {', '.join(unsupported)}")
    consts = _decode_weights(doc.get("weightsManifest", []), path.parent)
    nodes: dict[str, Node] = {}
    inputs, shapes = [], {}
    for n in raw_nodes:
        attrs = {k: _attr_value(v) for k, v in n.get("attr", {}).items()
                 if k not in ("_output_shapes", "value")}
        node = Node(n["name"], n["op"], tuple(_ref(i) for i in n.get("input", [])
                                              if not i.startswith("^")), attrs)
        nodes[node.name] = node
        if node.op == "Const" and node.name not in consts:
            raise TfjsGraphError(f"constant {node.name!r} has no weights in the manifest")
        if node.op == "Placeholder":
            inputs.append(node.name)
            shapes[node.name] = tuple(attrs.get("shape") or ())
    signature = doc.get("signature") or doc.get("userDefinedMetadata", {}).get("signature") or {}
    outputs = {k: _ref(v["name"]) for k, v in signature.get("outputs", {}).items()}
    if not outputs:  # no signature: the sinks are the outputs
        used = {i for n in nodes.values() for i in n.inputs}
        outputs = {n: n for n, node in nodes.items() if n not in used and node.op != "Const"}
    meta = {k: doc.get(k) for k in ("generatedBy", "convertedBy", "format")}
    return TfjsGraph(_topological(nodes), consts, inputs, outputs, shapes, meta)


# --- op semantics shared by the torch module -------------------------------------------------

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one spatial axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _check_nhwc(node: Node) -> None:
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: data_format "
                                     f"{node.attrs['data_format']!r}")


def _spatial(node: Node, key: str) -> tuple[int, int]:
    v = node.attrs.get(key) or [1, 1, 1, 1]
    if len(v) != 4 or v[0] != 1 or v[3] != 1:
        raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: {key}={v}")
    return int(v[1]), int(v[2])


def _pad_for(node: Node, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    padding = node.attrs.get("padding", "VALID")
    if padding == "VALID":
        return x
    if padding == "EXPLICIT":
        p = node.attrs.get("explicit_paddings") or []
        if len(p) != 8:
            raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: explicit_paddings={p}")
        return F.pad(x, (p[4], p[5], p[2], p[3]), value=value)
    if padding != "SAME":
        raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: padding {padding!r}")
    ph = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    pw = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    return F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=value)


def _activation(name: str, x: torch.Tensor, node: Node, arg: torch.Tensor | None) -> torch.Tensor:
    """An activation, standalone or fused: the unary ones, LeakyRelu, or Prelu with `arg`."""
    if name in _FUSABLE_UNARY:
        return _UNARY_TORCH[name](x)
    if name == "LeakyRelu":
        slope = node.attrs.get("leakyrelu_alpha", node.attrs.get("alpha", 0.2))
        return F.leaky_relu(x, float(slope))
    if name == "Prelu" and arg is not None:
        return torch.where(x >= 0, x, x * arg)
    raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: fused activation {name!r}")


def _fused_tail(node: Node, y: torch.Tensor, args: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply a fused op list (BiasAdd / FusedBatchNorm, then an optional activation)."""
    ops = list(node.attrs.get("fused_ops") or [])
    rest = list(args)
    if ops and ops[0] == "BiasAdd":
        y = y + rest.pop(0)
        ops = ops[1:]
    elif ops and ops[0] == "FusedBatchNorm":
        scale, offset, mean, var = rest[:4]
        rest = rest[4:]
        eps = float(node.attrs.get("epsilon", 1e-3))
        y = (y - mean) * (scale * torch.rsqrt(var + eps)) + offset
        ops = ops[1:]
    if ops:
        y = _activation(ops[0], y, node, rest[0] if rest else None)
        ops = ops[1:]
    if ops:
        raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: fused ops "
                                     f"{node.attrs.get('fused_ops')}")
    return y


def _reduce_axes(node: Node, axes: torch.Tensor | np.ndarray, ndim: int) -> list[int]:
    a = np.atleast_1d(np.asarray(axes.cpu() if isinstance(axes, torch.Tensor) else axes))
    return sorted(int(i) % ndim for i in a)


def _strided_slice(node: Node, x: torch.Tensor, begin: np.ndarray, end: np.ndarray,
                   strides: np.ndarray) -> torch.Tensor:
    if node.attrs.get("ellipsis_mask", 0) or node.attrs.get("new_axis_mask", 0):
        raise UnsupportedTfjsOpError(f"StridedSlice {node.name!r}: ellipsis/new-axis masks")
    bm, em = node.attrs.get("begin_mask", 0), node.attrs.get("end_mask", 0)
    sm = node.attrs.get("shrink_axis_mask", 0)
    index: list[slice | int] = []
    for i, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist(),
                                      strict=True)):
        if s <= 0:
            raise UnsupportedTfjsOpError(f"StridedSlice {node.name!r}: stride {s}")
        if sm >> i & 1:
            index.append(int(b))
            continue
        index.append(slice(None if bm >> i & 1 else int(b), None if em >> i & 1 else int(e),
                           int(s)))
    return x[tuple(index)]


# --- the op table: one function per TF op, NHWC semantics ------------------------------------

def _conv(node: Node, args: list[Any]) -> torch.Tensor:
    _check_nhwc(node)
    x, w = args[0], args[1]
    stride, dil = _spatial(node, "strides"), _spatial(node, "dilations")
    k = (w.shape[0], w.shape[1])
    xc = _pad_for(node, _nchw(x), k, stride, dil)
    y = _nhwc(F.conv2d(xc, w.permute(3, 2, 0, 1), stride=stride, dilation=dil))
    return _fused_tail(node, y, args[2:]) if node.op == "_FusedConv2D" else y


def _depthwise(node: Node, args: list[Any]) -> torch.Tensor:
    _check_nhwc(node)
    x, w = args[0], args[1]
    stride, dil = _spatial(node, "strides"), _spatial(node, "dilations")
    kh, kw, cin, mult = w.shape
    xc = _pad_for(node, _nchw(x), (kh, kw), stride, dil)
    weight = w.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    y = _nhwc(F.conv2d(xc, weight, stride=stride, dilation=dil, groups=cin))
    return _fused_tail(node, y, args[2:]) if node.op.startswith("Fused") else y


def _matmul(node: Node, args: list[Any]) -> torch.Tensor:
    x, w = args[0], args[1]
    if node.attrs.get("transpose_a"):
        x = x.transpose(-1, -2)
    if node.attrs.get("transpose_b"):
        w = w.transpose(-1, -2)
    y = x @ w
    return _fused_tail(node, y, args[2:]) if node.op == "_FusedMatMul" else y


def _pool(node: Node, args: list[Any]) -> torch.Tensor:
    _check_nhwc(node)
    k, s = _spatial(node, "ksize"), _spatial(node, "strides")
    x = _nchw(args[0])
    if node.op == "MaxPool":
        xp = _pad_for(node, x, k, s, (1, 1), value=-math.inf)
        return _nhwc(F.max_pool2d(xp, k, s))
    if node.attrs.get("padding") == "SAME":  # TF averages over the valid pixels only
        ones = torch.ones_like(x[:, :1])
        num = F.avg_pool2d(_pad_for(node, x, k, s, (1, 1)), k, s)
        den = F.avg_pool2d(_pad_for(node, ones, k, s, (1, 1)), k, s)
        return _nhwc(num / den)
    return _nhwc(F.avg_pool2d(x, k, s))


def _reduce(node: Node, args: list[Any]) -> torch.Tensor:
    x = args[0]
    dims = _reduce_axes(node, args[1], x.dim())
    keep = bool(node.attrs.get("keep_dims", False))
    if node.op == "Sum":
        return x.sum(dim=dims, keepdim=keep)
    if node.op == "Mean":
        return x.mean(dim=dims, keepdim=keep)
    return x.amax(dim=dims, keepdim=keep)


def _pad(node: Node, args: list[Any]) -> torch.Tensor:
    p = np.asarray(args[1]).reshape(-1, 2)
    return F.pad(args[0], [int(v) for row in p[::-1] for v in row])


def _squeeze(node: Node, args: list[Any]) -> torch.Tensor:
    x = args[0]
    dims = node.attrs.get("squeeze_dims") or [i for i, s in enumerate(x.shape) if s == 1]
    for d in sorted((int(d) % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _concat(node: Node, args: list[Any]) -> torch.Tensor:
    axis = int(np.asarray(args[-1]).ravel()[0])
    return torch.cat(list(_as_tensors(args[:-1])), dim=axis)


def _batch_norm(node: Node, args: list[Any]) -> torch.Tensor:
    x, scale, offset, mean, var = args[:5]
    eps = float(node.attrs.get("epsilon", 1e-3))
    return (x - mean) * (scale * torch.rsqrt(var + eps)) + offset


def _strided(node: Node, args: list[Any]) -> torch.Tensor:
    return _strided_slice(node, args[0], *(np.asarray(v).ravel() for v in args[1:4]))


OpFn = Callable[[Node, list[Any]], Any]
#: TF op name -> its torch implementation on NHWC values (consts as tensors or int arrays).
OPS: dict[str, OpFn] = {
    "Conv2D": _conv, "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": _depthwise, "FusedDepthwiseConv2dNative": _depthwise,
    "MatMul": _matmul, "_FusedMatMul": _matmul,
    "MaxPool": _pool, "AvgPool": _pool,
    "Add": lambda n, a: a[0] + a[1], "AddV2": lambda n, a: a[0] + a[1],
    "BiasAdd": lambda n, a: a[0] + a[1], "Sub": lambda n, a: a[0] - a[1],
    "Mul": lambda n, a: a[0] * a[1], "RealDiv": lambda n, a: a[0] / a[1],
    "Maximum": lambda n, a: torch.maximum(*_as_tensors(a)),
    "Minimum": lambda n, a: torch.minimum(*_as_tensors(a)),
    "LeakyRelu": lambda n, a: _activation(n.op, a[0], n, None),
    "Prelu": lambda n, a: _activation(n.op, a[0], n, a[1] if len(a) > 1 else None),
    "Softmax": lambda n, a: torch.softmax(a[0], dim=-1),
    "Sum": _reduce, "Mean": _reduce, "Max": _reduce,
    "Pad": _pad,
    "Reshape": lambda n, a: a[0].reshape([int(s) for s in np.asarray(a[1]).ravel()]),
    "Squeeze": _squeeze,
    "ExpandDims": lambda n, a: a[0].unsqueeze(int(np.asarray(a[1]).ravel()[0])),
    "StridedSlice": _strided, "ConcatV2": _concat,
    "FusedBatchNorm": _batch_norm, "FusedBatchNormV3": _batch_norm,
}


def _as_tensors(args: Sequence[Any]) -> list[torch.Tensor]:
    ref = next(t for t in args if isinstance(t, torch.Tensor))
    return [t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=ref.dtype,
                                                                   device=ref.device)
            for t in args]


_UNARY_TORCH: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Abs": torch.abs, "Square": torch.square, "Sqrt": torch.sqrt, "Rsqrt": torch.rsqrt,
    "Neg": torch.neg, "Exp": torch.exp, "Relu": F.relu, "Relu6": lambda x: x.clamp(0, 6),
    "Elu": F.elu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Identity": lambda x: x,
}


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda node, args: fn(args[0])


OPS.update({op: _unary(fn) for op, fn in _UNARY_TORCH.items()})
#: Unary ops that TF.js also fuses into convolutions and matmuls.
_FUSABLE_UNARY = ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh")

