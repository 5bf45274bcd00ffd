"""A TF.js graph compiled once into a short plan of fused torch ops (the fast path).

Evaluated op by op, the npm graphs cost ~25x what their FLOPs imply: every batch-norm is a
separate Mul and Add over the whole activation, every ReLU6 three passes (Relu, Minimum,
Maximum), and each convolution converts NHWC to NCHW and back. `compile_plan` rewrites the
graph once, for the outputs asked for:

- convolutions take their weights in torch's layout, prepared once, with every following
  per-channel Mul / Add / Sub / BiasAdd / FusedBatchNorm folded into weight and bias, and the
  activation that follows (ReLU, ReLU6, Minimum/Maximum clips, ...) applied in the same step;
- 4-D activations stay NCHW in channels-last memory from the first convolution to the first
  op whose axis arguments need TF's layout (Reshape, MatMul, ...), where they are viewed back
  as NHWC; reductions, pads, concatenations and pools map their axes instead;
- a per-channel Mul followed by an Add becomes one `addcmul`.

Requested intermediate nodes are never folded away, so `forward(outputs=[...])` still returns
any node. Weights are buffers of the module, never trained, so folding them is exact up to
float rounding (tests compare with the float64 NumPy reference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facepriv_core.models.formats.tfjs_graph import (
    _FUSABLE_UNARY,
    OPS,
    Node,
    TfjsGraph,
    UnsupportedTfjsOpError,
    _check_nhwc,
    _spatial,
    same_padding,
)

# NHWC axis -> NCHW axis of the same data.
_TO_NCHW_AXIS = (0, 2, 3, 1)
_CONVS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
_ELEMENTWISE = {"Add": torch.add, "AddV2": torch.add, "BiasAdd": torch.add,
                "Sub": torch.sub, "Mul": torch.mul, "RealDiv": torch.div,
                "Maximum": torch.maximum, "Minimum": torch.minimum}
_LAYOUT_FREE_UNARY = ("Abs", "Square", "Sqrt", "Rsqrt", "Neg", "Exp", "Relu", "Relu6", "Elu",
                      "Sigmoid", "Tanh", "Identity", "LeakyRelu")


@dataclass
class Step:
    """One evaluation: `env[out] = fn(*(env[i] for i in inputs))`."""

    out: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...]


@dataclass
class Plan:
    steps: list[Step]
    consts: dict[str, Any]  # values the steps read from the environment
    inputs: list[str]
    outputs: dict[str, str]  # requested name -> env key
    nchw: frozenset[str]  # env keys holding NCHW views of NHWC values


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _broadcast_nchw(v: torch.Tensor) -> torch.Tensor:
    """A value that broadcasts against an NHWC 4-D tensor, made to broadcast against NCHW."""
    if v.dim() == 0:
        return v
    return v.reshape((1,) * (4 - v.dim()) + tuple(v.shape)).permute(0, 3, 1, 2)


def _channel_vector(value: np.ndarray, channels: int) -> np.ndarray | None:
    """`value` as a (C,) vector when it broadcasts per channel over NHWC, else None."""
    if value.dtype != np.float32 or value.ndim > 4 or any(s != 1 for s in value.shape[:-1]):
        return None
    flat = value.reshape(-1)
    if flat.size == 1:
        return np.full(channels, flat[0], np.float32)
    return flat if flat.size == channels else None


def _scalar(value: Any) -> float | None:
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.size == 1:
        return float(value.reshape(()))
    return None


class _Activation:
    """A clip-style activation chain applied to a conv output: clamps, or one other op."""

    def __init__(self) -> None:
        self.clamps: list[tuple[float | None, float | None]] = []
        self.other: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def empty(self) -> bool:
        return not self.clamps and self.other is None

    def absorb(self, node: Node, consts: dict[str, np.ndarray], x_name: str) -> bool:
        """Take `node` (consuming the current value) into the chain if it is an activation."""
        if self.other is not None:
            return False
        op = node.op
        if op == "Relu":
            self.clamps.append((0.0, None))
            return True
        if op == "Relu6":
            self.clamps.append((0.0, 6.0))
            return True
        if op in ("Minimum", "Maximum") and len(node.inputs) == 2:
            other = node.inputs[1] if node.inputs[0] == x_name else node.inputs[0]
            bound = _scalar(consts.get(other))
            if bound is None:
                return False
            self.clamps.append((None, bound) if op == "Minimum" else (bound, None))
            return True
        if not self.clamps and op in ("Elu", "Sigmoid", "Tanh", "LeakyRelu"):
            if op == "LeakyRelu":
                slope = float(node.attrs.get("leakyrelu_alpha", node.attrs.get("alpha", 0.2)))
                self.other = lambda y: F.leaky_relu(y, slope)
            else:
                table: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
                    "Elu": F.elu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh}
                self.other = table[op]
            return True
        return False

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        inplace = not (torch.is_grad_enabled() and y.requires_grad)
        for lo, hi in self.clamps:
            y = y.clamp_(lo, hi) if inplace else y.clamp(lo, hi)
        return self.other(y) if self.other is not None else y


class _Conv:
    """A convolution in NCHW with folded weight, bias and activation."""

    def __init__(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        _check_nhwc(node)
        w = consts.get(node.inputs[1])
        if w is None:
            raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: non-constant filter")
        w = w.astype(np.float64)
        self.stride = _spatial(node, "strides")
        self.dilation = _spatial(node, "dilations")
        self.padding = node.attrs.get("padding", "VALID")
        self.explicit = node.attrs.get("explicit_paddings") or []
        kh, kw = w.shape[0], w.shape[1]
        self.kernel = (kh, kw)
        if "Depthwise" in node.op:
            cin, mult = w.shape[2], w.shape[3]
            self.groups = cin
            self.weight = w.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        else:
            self.groups = 1
            self.weight = w.transpose(3, 2, 0, 1)
        self.out_channels = self.weight.shape[0]
        self.bias = np.zeros(self.out_channels, np.float64)
        self.act = _Activation()
        self._own_fused_ops(node, consts)

    def _own_fused_ops(self, node: Node, consts: dict[str, np.ndarray]) -> None:
        if node.op not in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            return
        ops = list(node.attrs.get("fused_ops") or [])
        args = list(node.inputs[2:])

        def const(name: str) -> np.ndarray:
            if name not in consts:
                raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: non-constant argument")
            return consts[name].astype(np.float64).reshape(-1)

        if ops and ops[0] == "BiasAdd":
            self.bias = self.bias + const(args.pop(0))
            ops = ops[1:]
        elif ops and ops[0] == "FusedBatchNorm":
            scale, offset, mean, var = (const(a) for a in args[:4])
            args = args[4:]
            k = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-3)))
            self.scale_by(k)
            self.bias = self.bias + offset - mean * k
            ops = ops[1:]
        if ops:
            name = ops.pop(0)
            if name == "Prelu":
                alpha = torch.from_numpy(const(args[0]).astype(np.float32))
                self.act.other = _prelu(alpha)
            elif name in _FUSABLE_UNARY or name == "LeakyRelu":
                if not self.act.absorb(Node(node.name, name, (), node.attrs), consts, ""):
                    raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: fused {name}")
            else:
                raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: fused {name}")
        if ops:
            raise UnsupportedTfjsOpError(f"{node.op} {node.name!r}: fused ops "
                                         f"{node.attrs.get('fused_ops')}")

    def scale_by(self, k: np.ndarray) -> None:
        self.weight = self.weight * k.reshape(-1, 1, 1, 1)
        self.bias = self.bias * k

    def absorb_input_affine(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Fold x -> scale * x + shift (per input channel) applied before this VALID conv."""
        w = self.weight  # (out, in / groups, kh, kw)
        if self.groups == 1:
            cin = w.shape[1]
            s = np.broadcast_to(scale, (cin,))
            b = np.broadcast_to(shift, (cin,))
            self.bias = self.bias + np.einsum("oikl,i->o", w, b)
            self.weight = w * s.reshape(1, -1, 1, 1)
        else:  # depthwise: output channel o reads input channel o // multiplier
            mult = w.shape[0] // self.groups
            s = np.repeat(np.broadcast_to(scale, (self.groups,)), mult)
            b = np.repeat(np.broadcast_to(shift, (self.groups,)), mult)
            self.bias = self.bias + w.sum(axis=(1, 2, 3)) * b
            self.weight = w * s.reshape(-1, 1, 1, 1)

    def absorb_affine(self, node: Node, consts: dict[str, np.ndarray], x_name: str) -> bool:
        """Fold a per-channel Mul / Add / Sub / BiasAdd by a constant that follows."""
        if not self.act.empty or len(node.inputs) != 2 or node.op not in (
                "Mul", "Add", "AddV2", "BiasAdd", "Sub"):
            return False
        first = node.inputs[0] == x_name
        other = node.inputs[1] if first else node.inputs[0]
        if other == x_name or other not in consts:
            return False
        v = _channel_vector(consts[other], self.out_channels)
        if v is None:
            return False
        v = v.astype(np.float64)
        if node.op == "Mul":
            self.scale_by(v)
        elif node.op == "Sub":
            if not first:
                return False
            self.bias = self.bias - v
        else:
            self.bias = self.bias + v
        return True

    def build(self, device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor],
                                                                          torch.Tensor]:
        weight = torch.from_numpy(self.weight).to(device=device, dtype=dtype)
        weight = weight.contiguous(memory_format=torch.channels_last)
        bias = torch.from_numpy(self.bias).to(device=device, dtype=dtype)
        stride, dilation, groups, act = self.stride, self.dilation, self.groups, self.act
        kernel, padding, explicit = self.kernel, self.padding, self.explicit

        variants: dict[Any, tuple[torch.Tensor, tuple[int, int], tuple[int, ...] | None]] = {}

        def variant(pads: Any) -> tuple[torch.Tensor, tuple[int, int], tuple[int, ...] | None]:
            """(weight, symmetric conv padding, explicit pad or None) for these TF pads.

            TF's SAME puts an odd pixel after; a copy of the input to pad it costs more than
            the depthwise conv it feeds. Instead, pad symmetrically by the larger side and
            give the kernel leading zero taps for the difference: the same sums, no copy.
            """
            if pads is None:
                return weight, (0, 0), None
            (pt, pb), (pl, pr) = pads
            if pt == pb and pl == pr:
                return weight, (pt, pl), None
            dt, dl = pb - pt, pr - pl
            if min(dt, dl) < 0 or dilation != (1, 1):
                return weight, (0, 0), (pl, pr, pt, pb)
            grown = F.pad(weight, (dl, 0, dt, 0)).contiguous(memory_format=torch.channels_last)
            return grown, (pb, pr), None

        def run(x: torch.Tensor) -> torch.Tensor:
            size = int(x.shape[2]), int(x.shape[3])  # plain ints, also when traced for ONNX
            pads = _pads(padding, explicit, *size, kernel, stride, dilation)
            if pads not in variants:
                variants[pads] = variant(pads)
            w, conv_pad, pre = variants[pads]
            if pre is not None:
                x = F.pad(x, pre)
            return act.apply(F.conv2d(x, w, bias, stride, conv_pad, dilation, groups))

        return run


def _prelu(alpha: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """PReLU over channel dim 1 (one pass; equals where(y >= 0, y, y * alpha))."""
    cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def run(y: torch.Tensor) -> torch.Tensor:
        key = (y.device, y.dtype)
        if key not in cache:
            cache[key] = alpha.reshape(-1).to(device=y.device, dtype=y.dtype)
        return F.prelu(y, cache[key])

    return run


def _pads(padding: str, explicit: list[int], h: int, w: int, kernel: tuple[int, int],
          stride: tuple[int, int], dilation: tuple[int, int]
          ) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((top, bottom), (left, right)) as TF pads, None for VALID."""
    if padding == "VALID":
        return None
    if padding == "EXPLICIT":
        if len(explicit) != 8:
            raise UnsupportedTfjsOpError(f"explicit_paddings={explicit}")
        return (explicit[2], explicit[3]), (explicit[4], explicit[5])
    if padding != "SAME":
        raise UnsupportedTfjsOpError(f"padding {padding!r}")
    return (same_padding(h, kernel[0], stride[0], dilation[0]),
            same_padding(w, kernel[1], stride[1], dilation[1]))


def _pool_nchw(node: Node) -> Callable[[torch.Tensor], torch.Tensor]:
    _check_nhwc(node)
    k, s = _spatial(node, "ksize"), _spatial(node, "strides")
    padding = node.attrs.get("padding", "VALID")
    is_max = node.op == "MaxPool"

    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])  # plain ints, also when traced for ONNX
        pads = _pads(padding, node.attrs.get("explicit_paddings") or [], h, w, k, s, (1, 1))
        if pads is None:
            return F.max_pool2d(x, k, s) if is_max else F.avg_pool2d(x, k, s)
        (pt, pb), (pl, pr) = pads
        fits = pt <= k[0] // 2 and pl <= k[1] // 2
        if pt == pb and pl == pr and fits:
            if is_max:
                return F.max_pool2d(x, k, s, (pt, pl))
            return F.avg_pool2d(x, k, s, (pt, pl), count_include_pad=False)
        if is_max and pb - pt in (0, 1) and pr - pl in (0, 1) and fits:
            # the odd pixel after: ceil mode lets the last window hang over the end
            y = F.max_pool2d(x, k, s, (pt, pl), ceil_mode=True)
            if tuple(y.shape[2:]) == (-(-h // s[0]), -(-w // s[1])):
                return y
        flat = (pl, pr, pt, pb)
        if is_max:
            return F.max_pool2d(F.pad(x, flat, value=-math.inf), k, s)
        ones = torch.ones_like(x[:, :1])
        return F.avg_pool2d(F.pad(x, flat), k, s) / F.avg_pool2d(F.pad(ones, flat), k, s)

    return run


def _reduce_nchw(node: Node, axes: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The reduction on the NCHW view, or None when its result would not be NHWC-ordered."""
    nhwc_axes = sorted(int(a) % 4 for a in np.atleast_1d(axes))
    keep = bool(node.attrs.get("keep_dims", False))
    dims = [_TO_NCHW_AXIS[a] for a in nhwc_axes]
    if not keep:
        rest = [_TO_NCHW_AXIS[a] for a in range(4) if a not in nhwc_axes]
        if rest != sorted(rest):
            return None
    op = node.op

    def run(x: torch.Tensor) -> torch.Tensor:
        if op == "Sum":
            return x.sum(dim=dims, keepdim=keep)
        if op == "Mean":
            return x.mean(dim=dims, keepdim=keep)
        return x.amax(dim=dims, keepdim=keep)

    return run


class _Compiler:
    """Walks the graph once, deciding layouts and fusions; `plan()` binds it to a device."""

    def __init__(self, graph: TfjsGraph, wanted: dict[str, str]) -> None:
        self.graph = graph
        self.consts = graph.consts
        self.wanted = wanted
        by_name = {n.name: n for n in graph.nodes}
        needed: set[str] = set()
        stack = list(wanted.values())
        while stack:
            name = stack.pop()
            if name in needed or name not in by_name:
                continue
            needed.add(name)
            stack.extend(by_name[name].inputs)
        self.order = [n for n in graph.nodes if n.name in needed
                      and n.op not in ("Const", "Placeholder")]
        self.consumers: dict[str, list[Node]] = {}
        for n in self.order:
            for i in n.inputs:
                self.consumers.setdefault(i, []).append(n)
        self.keep = set(wanted.values())
        self.rank: dict[str, int | None] = {
            i: len(graph.input_shapes.get(i, ())) or None for i in graph.inputs}
        for name, value in self.consts.items():
            self.rank[name] = value.ndim

    def _single_consumer(self, name: str) -> Node | None:
        users = self.consumers.get(name, [])
        if name in self.keep or len(users) != 1:
            return None
        return users[0]

    def _users(self, name: str, ops: tuple[str, ...]) -> list[Node] | None:
        users = self.consumers.get(name, [])
        if name in self.keep or sorted(u.op for u in users) != sorted(ops):
            return None
        return users

    def _const_vector(self, node: Node, x: str) -> np.ndarray | None:
        other = [i for i in node.inputs if i != x]
        if len(other) != 1 or other[0] not in self.consts:
            return None
        v = self.consts[other[0]]
        if v.dtype != np.float32 or v.ndim > 4 or any(d != 1 for d in v.shape[:-1]):
            return None
        return v.reshape(-1)

    def match_prelu(self, name: str) -> tuple[np.ndarray, str, list[str]] | None:
        """A PReLU spelled in primitive ops on `name`: (slope, last node, nodes it spans).

        Two spellings occur in the npm graphs: max(x, 0) + g * min(x, 0) (MXNet export), and
        relu(x) + m * (x - |x|) (TF-slim), i.e. slope 2m.
        """
        users = self._users(name, ("Maximum", "Minimum"))
        if users is not None:
            mx, mn = sorted(users, key=lambda u: u.op)
            if all(_scalar(self.consts.get(i)) == 0.0 for u in (mx, mn)
                   for i in u.inputs if i != name):
                mul = self._users(mn.name, ("Mul",))
                if mul is not None and (g := self._const_vector(mul[0], mn.name)) is not None:
                    add = self._users(mul[0].name, ("AddV2",)) or \
                        self._users(mul[0].name, ("Add",))
                    if add is not None and set(add[0].inputs) == {mx.name, mul[0].name} and \
                            self._users(mx.name, (add[0].op,)) is not None:
                        return g, add[0].name, [mx.name, mn.name, mul[0].name, add[0].name]
        for third in ("Relu", "Add", "AddV2"):
            users = self._users(name, ("Abs", third, "Sub"))
            if users is None:
                continue
            ab = next(u for u in users if u.op == "Abs")
            sub = next(u for u in users if u.op == "Sub")
            pos = next(u for u in users if u.op == third)
            if list(sub.inputs) != [name, ab.name] or not self._users(ab.name, ("Sub",)):
                continue
            mul = self._users(sub.name, ("Mul",))
            if mul is None or (m := self._const_vector(mul[0], sub.name)) is None:
                continue
            if third == "Relu":  # relu(x) + m (x - |x|)
                add = self._users(mul[0].name, ("Add",)) or self._users(mul[0].name, ("AddV2",))
                if add is not None and set(add[0].inputs) == {pos.name, mul[0].name} \
                        and self._users(pos.name, (add[0].op,)) is not None:
                    return 2.0 * m, add[0].name, [ab.name, pos.name, sub.name, mul[0].name,
                                                   add[0].name]
            elif set(pos.inputs) == {name, mul[0].name} and \
                    self._users(mul[0].name, (third,)) is not None:  # x + m (x - |x|)
                return 1.0 + 2.0 * m, pos.name, [ab.name, sub.name, mul[0].name, pos.name]
        return None

    def foldable_pad(self, node: Node) -> list[int] | None:
        """Spatial zero pads of a Pad whose only user is a VALID conv: the conv pads instead."""
        user = self._single_consumer(node.name)
        if user is None or user.op not in _CONVS or user.inputs[0] != node.name or \
                user.attrs.get("padding", "VALID") != "VALID" or node.inputs[1] not in self.consts:
            return None
        p = np.asarray(self.consts[node.inputs[1]]).reshape(-1, 2)
        if p.shape[0] != 4 or p[0].any() or p[3].any() or (p < 0).any():
            return None
        return [0, 0, int(p[1][0]), int(p[1][1]), int(p[2][0]), int(p[2][1]), 0, 0]

    def compile(self) -> tuple[list[tuple[str, Any, tuple[str, ...], str]], set[str]]:
        """[(out, kind-specific recipe, inputs, kind)], and the env keys in NCHW."""
        recipes: list[tuple[str, Any, tuple[str, ...], str]] = []
        nchw: set[str] = set()
        done: set[str] = set()
        alias: dict[str, str] = {}
        folded_pads: dict[str, list[int]] = {}
        input_affine: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def ref(name: str) -> str:
            return alias.get(name, name)

        for node in self.order:
            if node.name in done:
                continue
            ins = tuple(ref(i) for i in node.inputs)
            if node.op == "Pad" and (pads := self.foldable_pad(node)) is not None:
                alias[node.name] = ins[0]
                folded_pads[self._single_consumer(node.name).name] = pads  # type: ignore
                continue
            if node.op in _CONVS:
                conv = _Conv(node, self.consts)
                if node.name in folded_pads:
                    conv.padding, conv.explicit = "EXPLICIT", folded_pads[node.name]
                if node.name in input_affine:
                    conv.absorb_input_affine(*input_affine[node.name])
                cur, chain = node.name, [node.name]
                while (nxt := self._single_consumer(cur)) is not None and (
                        conv.absorb_affine(nxt, self.consts, cur)
                        or conv.act.absorb(nxt, self.consts, cur)):
                    done.add(nxt.name)
                    cur = nxt.name
                    chain.append(cur)
                if conv.act.other is None and (prelu := self.match_prelu(cur)) is not None:
                    slope, last, spanned = prelu
                    conv.act.other = _prelu(torch.from_numpy(slope.astype(np.float32)))
                    done.update(spanned)
                    cur = last
                    chain.append(cur)
                for member in chain[:-1]:  # every absorbed node resolves to the last value
                    alias[member] = cur
                x = ins[0]
                recipes.append((cur, conv, (x,), "conv" if x in nchw else "conv_nhwc"))
                nchw.add(cur)
                self.rank[cur] = 4
                continue
            kind, recipe, out_nchw = self._layout_op(node, ins, nchw)
            if kind == "affine" and (into := self.affine_into_conv(recipe)) is not None:
                conv_name, scale, shift = into
                input_affine[conv_name] = (scale, shift)
                done.add(recipe[1].name)
                alias[node.name] = alias[recipe[1].name] = ins[0]
                continue
            if kind == "affine":
                add_node = recipe[1]
                done.add(add_node.name)
                alias[node.name] = add_node.name
                recipes.append((add_node.name, recipe, recipe[2], kind))
                name = add_node.name
            else:
                recipes.append((node.name, recipe, ins, kind))
                name = node.name
            if out_nchw:
                nchw.add(name)
                self.rank[name] = 4
                if (prelu := self.match_prelu(name)) is not None:
                    slope, last, spanned = prelu
                    fn = _prelu(torch.from_numpy(slope.astype(np.float32)))
                    recipes.append((last, fn, (name,), "unary"))
                    done.update(spanned)
                    nchw.add(last)
                    self.rank[last] = 4
        self.alias = alias
        return recipes, nchw

    def _layout_op(self, node: Node, ins: tuple[str, ...], nchw: set[str]
                   ) -> tuple[str, Any, bool]:
        """(kind, recipe, output is NCHW) for a node that is not a convolution."""
        op = node.op
        x_nchw = bool(ins) and ins[0] in nchw
        if op in ("MaxPool", "AvgPool") and x_nchw:
            return "unary", _pool_nchw(node), True
        if op in _LAYOUT_FREE_UNARY and x_nchw and len(ins) == 1:
            return "unary", _tf_op(node), True
        if op in _ELEMENTWISE and len(ins) == 2 and any(i in nchw for i in ins):
            fused = self._affine(node, ins, nchw)
            if fused is not None:
                return "affine", fused, True
            ranks = [4 if i in nchw else self.rank.get(i) for i in ins]
            if all(r is not None and r <= 4 for r in ranks):
                return "binary", _ELEMENTWISE[op], True
        if op in ("Sum", "Mean", "Max") and x_nchw and ins[1] in self.consts:
            reduce_fn = _reduce_nchw(node, self.consts[ins[1]])
            if reduce_fn is not None:
                return "unary", reduce_fn, bool(node.attrs.get("keep_dims", False))
        if op == "ConcatV2" and ins[-1] in self.consts and all(i in nchw for i in ins[:-1]):
            axis = _TO_NCHW_AXIS[int(np.asarray(self.consts[ins[-1]]).ravel()[0]) % 4]
            return "concat", axis, True
        if op == "Pad" and x_nchw and ins[1] in self.consts:
            p = np.asarray(self.consts[ins[1]]).reshape(-1, 2)
            if p.shape[0] == 4:
                flat = [int(v) for row in (p[2], p[1], p[3], p[0]) for v in row]
                return "unary", lambda x: F.pad(x, flat), True
        if op in ("FusedBatchNorm", "FusedBatchNormV3") and x_nchw:
            return "batchnorm", node, True
        return "plain", node, False

    def affine_into_conv(self, recipe: Any) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(conv, scale, shift) when a per-channel affine feeds, directly or through a max
        pool, a VALID convolution: it folds into that conv's weights and bias. Through a
        max pool only with positive scales (max commutes with x -> a x + b for a > 0)."""
        add_node = recipe[1]
        _, scale_name, shift_name = recipe[2]
        scale = self.consts[scale_name].astype(np.float64)
        shift = self.consts[shift_name].astype(np.float64)
        if any(s != 1 for v in (scale, shift) for s in v.shape[:-1]):
            return None
        user = self._single_consumer(add_node.name)
        if user is not None and user.op == "MaxPool" and (scale > 0).all():
            user = self._single_consumer(user.name)
        if user is None or user.op not in _CONVS or user.attrs.get("padding") != "VALID" \
                or user.inputs[0] not in (add_node.name, *self.consumers_of(add_node.name)):
            return None
        return user.name, scale.reshape(-1), shift.reshape(-1)

    def consumers_of(self, name: str) -> list[str]:
        return [u.name for u in self.consumers.get(name, [])]

    def _affine(self, node: Node, ins: tuple[str, ...], nchw: set[str]) -> Any:
        """Mul(x, per-channel c) whose only user is Add(., per-channel d): one addcmul."""
        if node.op != "Mul" or ins[0] not in nchw:
            return None
        scale = ins[1]
        if scale not in self.consts or self.consts[scale].dtype != np.float32:
            return None
        nxt = self._single_consumer(node.name)
        if nxt is None or nxt.op not in ("Add", "AddV2", "BiasAdd") or len(nxt.inputs) != 2:
            return None
        shift = nxt.inputs[1] if nxt.inputs[0] == node.name else nxt.inputs[0]
        if shift == node.name or shift not in self.consts or \
                self.consts[shift].dtype != np.float32 or \
                max(self.consts[scale].ndim, self.consts[shift].ndim) > 4:
            return None
        return ("affine", nxt, (ins[0], scale, shift))


def compile_plan(graph: TfjsGraph, wanted: dict[str, str], values: dict[str, Any],
                 device: torch.device, dtype: torch.dtype) -> Plan:
    """Compile the graph for the `wanted` outputs (name -> node). `values` holds the
    module's constants (float ones as tensors on `device`, int ones as arrays)."""
    comp = _Compiler(graph, wanted)
    recipes, nchw = comp.compile()
    steps: list[Step] = []
    env_consts: dict[str, Any] = {}
    used_consts: set[str] = set()
    for out, recipe, ins, kind in recipes:
        if kind == "conv":
            steps.append(Step(out, recipe.build(device, dtype), ins))
        elif kind == "conv_nhwc":
            fn = recipe.build(device, dtype)
            steps.append(Step(out, _after_nchw(fn), ins))
        elif kind == "unary":
            steps.append(Step(out, recipe, ins[:1]))
        elif kind == "affine":
            x, scale, shift = recipe[2]
            s = _broadcast_nchw(values[scale])
            b = _broadcast_nchw(values[shift])
            steps.append(Step(out, _addcmul(s, b), (x,)))
        elif kind == "binary":
            fn = recipe
            wrapped = []
            for i in ins:
                if i in nchw:
                    wrapped.append(i)
                    continue
                key = f"{i}::nchw"
                if i in values:
                    env_consts[key] = _broadcast_nchw(_as_tensor(values[i], device, dtype))
                    wrapped.append(key)
                else:
                    steps.append(Step(key, _broadcast_nchw, (i,)))
                    wrapped.append(key)
            steps.append(Step(out, fn, tuple(wrapped)))
        elif kind == "concat":
            axis = recipe
            steps.append(Step(out, _cat(axis), ins[:-1]))
        elif kind == "batchnorm":
            node = recipe
            eps = float(node.attrs.get("epsilon", 1e-3))
            scale, offset, mean, var = (values[i].view(1, -1, 1, 1) for i in ins[1:5])
            k = scale * torch.rsqrt(var + eps)
            shift = offset - mean * k
            steps.append(Step(out, _addcmul(k, shift), ins[:1]))
        else:  # plain: TF semantics on NHWC values
            node = recipe
            wrapped = []
            for i in ins:
                if i in nchw:
                    key = f"{i}::nhwc"
                    if not any(s.out == key for s in steps):
                        steps.append(Step(key, _to_nhwc, (i,)))
                    wrapped.append(key)
                else:
                    wrapped.append(i)
            steps.append(Step(out, _tf_op(node), tuple(wrapped)))
        for i in ins:
            if i in values:
                used_consts.add(i)
    for name in used_consts:
        env_consts.setdefault(name, values[name])
    outputs = {k: comp.alias.get(v, v) for k, v in comp.wanted.items()}
    return Plan(steps, env_consts, list(graph.inputs), outputs, frozenset(nchw))


def _after_nchw(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor],
                                                                       torch.Tensor]:
    """`fn` of an NCHW value, applied to an NHWC one (a view, no copy)."""
    return lambda x: fn(x.permute(0, 3, 1, 2))


def _addcmul(scale: torch.Tensor, shift: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda v: torch.addcmul(shift, v, scale)


def _cat(axis: int) -> Callable[..., torch.Tensor]:
    return lambda *xs: torch.cat(xs, dim=axis)


def _tf_op(node: Node) -> Callable[..., Any]:
    """The op table's implementation of `node`, called on its argument values."""
    fn = OPS[node.op]
    return lambda *args: fn(node, list(args))


def _as_tensor(v: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    return torch.as_tensor(np.asarray(v), device=device, dtype=dtype)


def run_plan(plan: Plan, inputs: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Evaluate a compiled plan; outputs come back as NHWC values, like the graph's."""
    env: dict[str, Any] = dict(plan.consts)
    for name, x in zip(plan.inputs, inputs, strict=True):
        env[name] = x
    for step in plan.steps:
        env[step.out] = step.fn(*(env[i] for i in step.inputs))
    return {k: _to_nhwc(env[v]) if v in plan.nchw else env[v] for k, v in plan.outputs.items()}
