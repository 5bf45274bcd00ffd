"""A NumPy reference executor for TF.js graphs: the second implementation that checks the torch one.

It shares only the file parsing (`read_graph`) with `tfjs_graph`; every op is written again
from TF's definitions, in float64, NHWC, with explicit window views instead of library
convolutions. It is slow and meant for tests and `facepriv models check`, not for use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from facepriv_core.models.formats.tfjs_graph import (
    Node,
    TfjsGraph,
    UnsupportedTfjsOpError,
)


def _pads(size: int, k: int, s: int, d: int, mode: str) -> tuple[int, int]:
    if mode == "VALID":
        return 0, 0
    out = math.ceil(size / s)
    need = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    before = need // 2
    return before, need - before


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
             mode: str, fill: float = 0.0) -> np.ndarray:
    """(N, OH, OW, C, KH, KW) windows of an NHWC array, padded as TF pads."""
    ph, pw = _pads(x.shape[1], kh, sh, dh, mode), _pads(x.shape[2], kw, sw, dw, mode)
    x = np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=fill)
    win = sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(1, 2))
    return win[:, ::sh, ::sw, :, ::dh, ::dw]


def _conv(node: Node, x: np.ndarray, w: np.ndarray, depthwise: bool) -> np.ndarray:
    a = node.attrs
    kh, kw = w.shape[:2]
    s = a.get("strides") or [1, 1, 1, 1]
    d = a.get("dilations") or [1, 1, 1, 1]
    win = _windows(x, kh, kw, s[1], s[2], d[1], d[2], a.get("padding", "VALID"))
    if depthwise:  # w: (KH, KW, C, M) -> output channel c * M + m
        y = np.einsum("nhwcij,ijcm->nhwcm", win, w)
        return y.reshape(*y.shape[:3], -1)
    return np.einsum("nhwcij,ijco->nhwo", win, w)


def _fused(node: Node, y: np.ndarray, extra: list[np.ndarray]) -> np.ndarray:
    ops = list(node.attrs.get("fused_ops") or [])
    if ops[:1] == ["BiasAdd"]:
        y = y + extra.pop(0)
        ops = ops[1:]
    elif ops[:1] == ["FusedBatchNorm"]:
        scale, offset, mean, var = (extra.pop(0) for _ in range(4))
        y = (y - mean) / np.sqrt(var + node.attrs.get("epsilon", 1e-3)) * scale + offset
        ops = ops[1:]
    for op in ops:
        y = _act(op, y, extra.pop(0) if op == "Prelu" else None, node)
    return y


def _act(op: str, x: np.ndarray, alpha: np.ndarray | None, node: Node) -> np.ndarray:
    if op == "Relu":
        return np.maximum(x, 0)
    if op == "Relu6":
        return np.minimum(np.maximum(x, 0), 6)
    if op == "Elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if op == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if op == "Tanh":
        return np.tanh(x)
    if op == "LeakyRelu":
        slope = node.attrs.get("leakyrelu_alpha", node.attrs.get("alpha", 0.2))
        return np.where(x > 0, x, slope * x)
    if op == "Prelu" and alpha is not None:
        return np.where(x > 0, x, alpha * x)
    raise UnsupportedTfjsOpError(f"reference: activation {op!r}")


def _pool(node: Node, x: np.ndarray, op: str) -> np.ndarray:
    a = node.attrs
    k, s, mode = a["ksize"], a["strides"], a.get("padding", "VALID")
    if op == "MaxPool":
        return _windows(x, k[1], k[2], s[1], s[2], 1, 1, mode, -np.inf).max(axis=(4, 5))
    total = _windows(x, k[1], k[2], s[1], s[2], 1, 1, mode).sum(axis=(4, 5))
    count = _windows(np.ones_like(x[..., :1]), k[1], k[2], s[1], s[2], 1, 1, mode
                     ).sum(axis=(4, 5))
    return total / count


def _slice(node: Node, x: np.ndarray, b: np.ndarray, e: np.ndarray, st: np.ndarray
           ) -> np.ndarray:
    a = node.attrs
    out = x
    shrink: list[int] = []
    idx = []
    for i in range(len(b)):
        if a.get("shrink_axis_mask", 0) & (1 << i):
            idx.append(slice(int(b[i]), int(b[i]) + 1 if int(b[i]) != -1 else None, 1))
            shrink.append(i)
            continue
        lo = None if a.get("begin_mask", 0) & (1 << i) else int(b[i])
        hi = None if a.get("end_mask", 0) & (1 << i) else int(e[i])
        idx.append(slice(lo, hi, int(st[i])))
    out = x[tuple(idx)]
    return out.squeeze(axis=tuple(shrink)) if shrink else out


def _step(node: Node, v: list[Any]) -> np.ndarray:  # one branch per op
    op, a = node.op, node.attrs
    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
        y = _conv(node, v[0], v[1], depthwise="Depthwise" in op)
        return _fused(node, y, list(v[2:])) if "Fused" in op else y
    if op in ("MatMul", "_FusedMatMul"):
        x = v[0].T if a.get("transpose_a") else v[0]
        w = v[1].T if a.get("transpose_b") else v[1]
        y = np.einsum("ij,jk->ik", x, w)
        return _fused(node, y, list(v[2:])) if op == "_FusedMatMul" else y
    if op in ("MaxPool", "AvgPool"):
        return _pool(node, v[0], op)
    binary = {"Add": np.add, "AddV2": np.add, "BiasAdd": np.add, "Sub": np.subtract,
              "Mul": np.multiply, "RealDiv": np.divide, "Maximum": np.maximum,
              "Minimum": np.minimum}
    if op in binary:
        return binary[op](v[0], v[1])
    unary: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "Abs": np.abs, "Square": np.square, "Sqrt": np.sqrt, "Neg": np.negative, "Exp": np.exp,
        "Identity": lambda t: t, "Rsqrt": lambda t: 1 / np.sqrt(t)}
    if op in unary:
        return unary[op](v[0])
    if op in ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh", "LeakyRelu"):
        return _act(op, v[0], None, node)
    if op == "Prelu":
        return _act(op, v[0], v[1], node)
    if op == "Softmax":
        z = np.exp(v[0] - v[0].max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)
    if op in ("Sum", "Mean", "Max"):
        axes = tuple(int(i) % v[0].ndim for i in np.atleast_1d(v[1]))
        reducers: dict[str, Callable[..., Any]] = {"Sum": np.sum, "Mean": np.mean, "Max": np.max}
        fn = reducers[op]
        return fn(v[0], axis=axes, keepdims=bool(a.get("keep_dims", False)))
    if op == "Pad":
        return np.pad(v[0], np.asarray(v[1]).reshape(-1, 2))
    if op == "Reshape":
        return v[0].reshape(np.asarray(v[1]).ravel())
    if op == "Squeeze":
        dims = a.get("squeeze_dims") or [i for i, s in enumerate(v[0].shape) if s == 1]
        return v[0].squeeze(axis=tuple(int(d) % v[0].ndim for d in dims))
    if op == "ExpandDims":
        return np.expand_dims(v[0], int(np.asarray(v[1]).ravel()[0]))
    if op == "StridedSlice":
        return _slice(node, v[0], *(np.asarray(t).ravel() for t in v[1:4]))
    if op == "ConcatV2":
        return np.concatenate(v[:-1], axis=int(np.asarray(v[-1]).ravel()[0]))
    if op in ("FusedBatchNorm", "FusedBatchNormV3"):
        x, scale, offset, mean, var = v[:5]
        return (x - mean) / np.sqrt(var + a.get("epsilon", 1e-3)) * scale + offset
    raise UnsupportedTfjsOpError(f"reference: op {op!r} ({node.name!r})")


def run_reference(graph: TfjsGraph, *inputs: np.ndarray, outputs: Iterable[str] | None = None
                  ) -> dict[str, np.ndarray]:
    """Evaluate the graph in float64 NumPy; returns the signature outputs (or `outputs`)."""
    env: dict[str, Any] = {}
    for name, value in graph.consts.items():
        env[name] = value.astype(np.float64) if value.dtype == np.float32 else value
    for name, x in zip(graph.inputs, inputs, strict=True):
        env[name] = np.asarray(x, np.float64)
    wanted = dict(graph.outputs) if outputs is None else {o: o for o in outputs}
    for node in graph.nodes:
        if node.op in ("Const", "Placeholder"):
            continue
        env[node.name] = _step(node, [env[i] for i in node.inputs])
    return {k: env[n] for k, n in wanted.items()}
