"""A small ONNX -> torch converter for the plain CNN graphs shipped with attribute models.

onnxruntime gives reference outputs but no gradients; attacks and defences need gradients, so
the graph is rebuilt as torch modules from its initialisers. Only the ops listed in `OPS` are
supported, and a graph using anything else is refused up front, by op name, rather than
converted approximately.

The file is decoded once with the `onnx` package into a `Graph` (nodes with plain-Python
attributes, initialisers as arrays), which is cached under `<cache root>/onnx/graph-*.npz`
keyed by the file's digest: importing `onnx` costs ~0.55 s a process (its ml_dtypes
extension), a tenth of a 100-face CLI audit, and later processes skip it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facepriv_core.cache import cache_root, write_atomic
from facepriv_core.models.formats.subnormal import flush_subnormal

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("facepriv")
#: Bump when `Graph`'s cached form changes.
GRAPH_FORMAT = 1


class UnsupportedOnnxError(ValueError):
    """The graph uses an op or attribute this converter does not implement."""


@dataclass(frozen=True)
class Node:
    """One graph node; `attrs` hold ints, floats, strings and lists of them."""

    op_type: str
    name: str
    domain: str
    input: list[str]
    output: list[str]
    attrs: dict[str, Any]


@dataclass
class Graph:
    """What the converter needs of an ONNX model, free of the `onnx` package."""

    nodes: list[Node]
    consts: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]


def _attr_value(attr: onnx.AttributeProto) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    raise UnsupportedOnnxError(f"attribute {attr.name!r} of type "
                               f"{onnx.AttributeProto.AttributeType.Name(attr.type)} "
                               "is not supported")


def decode(model: onnx.ModelProto) -> Graph:
    """The model's main graph as a `Graph` (needs the `onnx` package)."""
    from onnx import numpy_helper

    g = model.graph
    nodes = [Node(n.op_type, n.name, n.domain, list(n.input), list(n.output),
                  {a.name: _attr_value(a) for a in n.attribute}) for n in g.node]
    return Graph(nodes=nodes,
                 consts={i.name: numpy_helper.to_array(i) for i in g.initializer},
                 inputs=[i.name for i in g.input], outputs=[o.name for o in g.output])


def _graph_bytes(graph: Graph) -> bytes:
    names = list(graph.consts)
    meta = {"nodes": [vars(n) for n in graph.nodes], "consts": names,
            "inputs": graph.inputs, "outputs": graph.outputs}
    arrays: dict[str, Any] = {f"c{i}": graph.consts[n] for i, n in enumerate(names)}
    arrays["__graph__"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _graph_from_bytes(data: bytes) -> Graph:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(str(z["__graph__"]))
        consts = {n: z[f"c{i}"] for i, n in enumerate(meta["consts"])}
    return Graph(nodes=[Node(**n) for n in meta["nodes"]], consts=consts,
                 inputs=meta["inputs"], outputs=meta["outputs"])


def read_graph(path: str | Path) -> Graph:
    """The decoded graph of an ONNX file, from the cache when it holds this file's digest."""
    data = Path(path).read_bytes()
    key = hashlib.sha256(f"v{GRAPH_FORMAT}".encode() + b"\0" + data).hexdigest()[:24]
    cached = cache_root() / "onnx" / f"graph-{key}.npz"
    if cached.is_file():
        try:
            return _graph_from_bytes(cached.read_bytes())
        except Exception as exc:  # a damaged cache file: decode the ONNX file again
            log.info("cached ONNX graph %s unusable (%s); decoding again", cached.name,
                     type(exc).__name__)
    import onnx

    graph = decode(onnx.load_from_string(data))
    if not write_atomic(cached, _graph_bytes(graph)):
        log.info("could not cache the decoded ONNX graph at %s", cached)
    return graph


def _same_or_refuse(node: Node, attrs: dict[str, object], allowed: dict[str, object]
                    ) -> None:
    """Refuse attributes whose value changes semantics we do not implement."""
    for name, value in attrs.items():
        if name in allowed and allowed[name] is not None and value != allowed[name]:
            raise UnsupportedOnnxError(
                f"{node.op_type} node {node.name or node.output[0]!r}: attribute "
                f"{name}={value!r} is not supported (expected {allowed[name]!r})")
        if name not in allowed:
            raise UnsupportedOnnxError(
                f"{node.op_type} node {node.name or node.output[0]!r}: attribute {name!r} "
                "is not supported")


def _spatial_pads(pads: list[int]) -> tuple[int, ...]:
    """ONNX [h_begin, w_begin, h_end, w_end] -> F.pad order (w_begin, w_end, h_begin, h_end)."""
    half = len(pads) // 2
    out: list[int] = []
    for axis in reversed(range(half)):
        out += [pads[axis], pads[axis + half]]
    return tuple(out)


class _Conv(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        a = node.attrs
        _same_or_refuse(node, a, {"kernel_shape": None, "pads": None, "strides": None,
                                  "dilations": None, "group": None, "auto_pad": "NOTSET"})
        w = torch.from_numpy(consts[node.input[1]].copy())
        group = int(a.get("group", 1))
        kh, kw = w.shape[2:]
        self.conv = nn.Conv2d(w.shape[1] * group, w.shape[0], (kh, kw),
                              stride=tuple(a.get("strides", (1, 1))),
                              dilation=tuple(a.get("dilations", (1, 1))), groups=group,
                              bias=len(node.input) > 2)
        self.conv.weight.data.copy_(w)
        if self.conv.bias is not None:
            self.conv.bias.data.copy_(torch.from_numpy(consts[node.input[2]].copy()))
        pads = list(a.get("pads", (0, 0, 0, 0)))
        symmetric = pads[:2] == pads[2:]
        self.conv.padding = tuple(pads[:2]) if symmetric else (0, 0)
        self.pre_pad = None if symmetric else _spatial_pads(pads)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return self.conv(x)


class _Gemm(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        a = node.attrs
        _same_or_refuse(node, a, {"alpha": None, "beta": None, "transA": 0, "transB": None})
        w = consts[node.input[1]]
        w = w if a.get("transB", 0) else w.T  # nn.Linear stores (out, in)
        self.linear = nn.Linear(w.shape[1], w.shape[0], bias=len(node.input) > 2)
        self.linear.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(w)) * a.get("alpha", 1))
        if self.linear.bias is not None:
            b = torch.from_numpy(consts[node.input[2]].copy()).reshape(-1)
            self.linear.bias.data.copy_(b * a.get("beta", 1))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class _Pool(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        a = node.attrs
        allowed: dict[str, object] = {"kernel_shape": None, "strides": None,
                                      "pads": [0, 0, 0, 0], "ceil_mode": 0,
                                      "auto_pad": "NOTSET"}
        if node.op_type == "AveragePool":
            allowed["count_include_pad"] = None  # irrelevant without padding
        else:
            allowed["dilations"] = [1, 1]
            allowed["storage_order"] = 0
        _same_or_refuse(node, a, allowed)
        self.max = node.op_type == "MaxPool"
        self.kernel = tuple(a["kernel_shape"])
        self.stride = tuple(a.get("strides", self.kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool2d if self.max else F.avg_pool2d
        return pool(x, self.kernel, self.stride)


class _Binary(nn.Module):
    """Add / Mul where either side may be a constant initialiser (kept as a buffer)."""

    const: torch.Tensor

    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {})
        self.fn = torch.add if node.op_type == "Add" else torch.mul
        self.const_index = next((i for i, n in enumerate(node.input) if n in consts), None)
        if self.const_index is not None:
            self.register_buffer("const", torch.from_numpy(
                consts[node.input[self.const_index]].astype(np.float32)))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.const_index is None:
            return self.fn(xs[0], xs[1])
        if self.const_index == 0:
            return self.fn(self.const, xs[0])
        return self.fn(xs[0], self.const)


class _Pad(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {"mode": "constant"})
        if any(n not in consts for n in node.input[1:] if n):
            raise UnsupportedOnnxError(f"Pad node {node.output[0]!r}: dynamic pads")
        if len(node.input) > 3 and node.input[3]:
            raise UnsupportedOnnxError(f"Pad node {node.output[0]!r}: axes input")
        pads = [int(p) for p in consts[node.input[1]]]
        if min(pads) < 0:
            raise UnsupportedOnnxError(f"Pad node {node.output[0]!r}: negative pads (crop)")
        self.pads = _spatial_pads(pads)
        value = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else 0.0
        self.value = float(np.asarray(value).reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, value=self.value)


class _Flatten(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {"axis": None})
        self.axis = int(node.attrs.get("axis", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(self.axis) if self.axis else x.reshape(1, -1)


class _Softmax(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {"axis": None})
        self.axis = int(node.attrs.get("axis", -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, self.axis)


class _Relu(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class _GlobalAveragePool(nn.Module):
    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        super().__init__()
        _same_or_refuse(node, node.attrs, {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


OPS: dict[str, Callable[[Node, dict[str, np.ndarray]], nn.Module]] = {
    "Conv": _Conv, "Gemm": _Gemm, "AveragePool": _Pool, "MaxPool": _Pool, "Add": _Binary,
    "Mul": _Binary, "Pad": _Pad, "Flatten": _Flatten, "Softmax": _Softmax, "Relu": _Relu,
    "GlobalAveragePool": _GlobalAveragePool,
}


class OnnxGraphModule(nn.Module):
    """A single-input, single-output ONNX graph run node by node with torch modules."""

    def __init__(self, model: Graph | onnx.ModelProto) -> None:
        super().__init__()
        graph = model if isinstance(model, Graph) else decode(model)
        unknown = sorted({n.op_type for n in graph.nodes if n.op_type not in OPS or n.domain})
        if unknown:
            raise UnsupportedOnnxError(
                f"unsupported ONNX ops {unknown}; this converter implements {sorted(OPS)}")
        consts = {k: flush_subnormal(v) for k, v in graph.consts.items()}
        inputs = [i for i in graph.inputs if i not in consts]
        if len(inputs) != 1 or len(graph.outputs) != 1:
            raise UnsupportedOnnxError(
                f"expected one input and one output, got {inputs} and {graph.outputs}")
        self.input_name, self.output_name = inputs[0], graph.outputs[0]
        self.layers = nn.ModuleList(OPS[n.op_type](n, consts) for n in graph.nodes)
        self.wiring = [([i for i in n.input if i and i not in consts], list(n.output))
                       for n in graph.nodes]
        for node, (_, outs) in zip(graph.nodes, self.wiring, strict=True):
            if len(outs) != 1:
                raise UnsupportedOnnxError(f"{node.op_type} node with {len(outs)} outputs")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for layer, (ins, outs) in zip(self.layers, self.wiring, strict=True):
            values[outs[0]] = layer(*(values[i] for i in ins))
        return values[self.output_name]


def load_onnx_as_torch(path: str | Path) -> OnnxGraphModule:
    """Load an ONNX file and convert it (eval mode, weights frozen)."""
    return OnnxGraphModule(read_graph(path)).eval()
