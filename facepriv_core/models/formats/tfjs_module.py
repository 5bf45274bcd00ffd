"""A TF.js graph as a torch module, run by the fastest path that gives the same numbers.

Three ways to evaluate one graph, all from `tfjs_graph.read_graph`'s parse: op by op through
`tfjs_graph.OPS` (the reference, `fused=False`), the compiled plan of fused torch ops
(`tfjs_fused`, the default, with gradients on any device), and, for forwards that need no
gradient on the CPU, that plan exported to onnxruntime (`ort_inference`, ~2x faster there).
The onnxruntime session is checked against the torch plan on its first batch and dropped if
they disagree, so callers never see a difference beyond float rounding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facepriv_core.models.formats import ort_inference, tfjs_fused
from facepriv_core.models.formats.tfjs_graph import OPS, Node, TfjsGraph, _ref, read_graph


class TfjsGraphModule(nn.Module):
    """A TF.js graph as a torch module: NHWC float input(s), a dict of named outputs.

    `forward(x, outputs=...)` may ask for any node by name (intermediate activations are what
    shallow-model defences and split-learning attacks need); by default it returns the
    signature outputs. Float constants are buffers, so `.to(device)` moves the whole graph.
    """

    def __init__(self, graph: TfjsGraph, fused: bool = True, onnxruntime: bool = True
                 ) -> None:
        super().__init__()
        self.graph = graph
        #: evaluate through a compiled plan of fused ops (tfjs_fused); False: op by op
        self.fused = fused
        #: gradient-free CPU forwards of the plan through onnxruntime (when installed)
        self.onnxruntime = onnxruntime
        self._plans: dict[tuple[Any, ...], Any] = {}
        self._ort = ort_inference.SessionCache()
        self._digest: str | None = None
        #: how log messages name the graph (the zoo sets the model's name)
        self.label = "a TF.js graph"
        self.input_names = list(graph.inputs)
        self.output_names = dict(graph.outputs)
        self._const_keys: dict[str, str] = {}
        self._int_consts: dict[str, np.ndarray] = {}
        for i, (name, value) in enumerate(graph.consts.items()):
            if value.dtype == np.float32:
                key = f"c{i}"
                self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(value)))
                self._const_keys[name] = key
            else:
                self._int_consts[name] = value
        self._order = [n for n in graph.nodes if n.op not in ("Const", "Placeholder")]
        self._index = {n.name: i for i, n in enumerate(self._order)}

    def node_names(self) -> list[str]:
        """Names of the computed nodes in evaluation order."""
        return [n.name for n in self._order]

    def _value(self, env: dict[str, Any], name: str) -> Any:
        if name in env:
            return env[name]
        if name in self._const_keys:
            return getattr(self, self._const_keys[name])
        if name in self._int_consts:
            return self._int_consts[name]
        raise KeyError(f"value of {name!r} is not available")

    def forward(self, *inputs: torch.Tensor, outputs: Iterable[str] | None = None
                ) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} input(s) "
                             f"{self.input_names}, got {len(inputs)}")
        wanted = dict(self.output_names) if outputs is None else {
            o: self.output_names.get(o, _ref(o)) for o in outputs}
        unknown = [n for n in wanted.values() if n not in self._index
                   and n not in self.input_names]
        if unknown:
            raise KeyError(f"no such node(s): {unknown}")
        if self.fused:
            return self._run_fused(inputs, wanted)
        last = max((self._index.get(n, -1) for n in wanted.values()), default=-1)
        env: dict[str, Any] = dict(zip(self.input_names, inputs, strict=True))
        for node in self._order[:last + 1]:
            env[node.name] = self._run(node, [self._value(env, i) for i in node.inputs])
        return {k: env[v] for k, v in wanted.items()}

    def _run_fused(self, inputs: Sequence[torch.Tensor], wanted: dict[str, str]
                   ) -> dict[str, torch.Tensor]:
        from facepriv_core.models.formats import tfjs_fused

        ref = next(iter(self.buffers()), inputs[0])
        key = (tuple(sorted(wanted.items())), str(ref.device), ref.dtype)
        plan = self._plans.get(key)
        if plan is None:  # compiled once per output set, device and dtype
            values: dict[str, Any] = dict(self._int_consts)
            values.update({n: getattr(self, k) for n, k in self._const_keys.items()})
            plan = tfjs_fused.compile_plan(self.graph, wanted, values, ref.device, ref.dtype)
            self._plans[key] = plan
        if self.onnxruntime and ort_inference.applies(inputs) and ort_inference.enabled():
            return self._run_onnxruntime(plan, inputs, wanted)
        return tfjs_fused.run_plan(plan, inputs)

    def _run_onnxruntime(self, plan: Any, inputs: Sequence[torch.Tensor],
                         wanted: dict[str, str]) -> dict[str, torch.Tensor]:
        """The plan's outputs from its onnxruntime session, built on first use per output set
        and input shape (the first batch is also run by torch, as the agreement check)."""
        key = (tuple(sorted(wanted.items())), tuple(tuple(x.shape[1:]) for x in inputs))
        return ort_inference.run_cached(self._ort, key, lambda: [self._graph_digest()],
                                        lambda *xs: tfjs_fused.run_plan(plan, xs), inputs,
                                        sorted(wanted), self.label)

    def _graph_digest(self) -> str:
        """Digest of the graph: its structure and every constant."""
        if self._digest is None:
            h = hashlib.sha256()
            for node in self.graph.nodes:
                h.update(json.dumps([node.name, node.op, node.inputs, node.attrs],
                                    sort_keys=True, default=str).encode())
            for name in sorted(self.graph.consts):
                value = np.ascontiguousarray(self.graph.consts[name])
                h.update(name.encode() + str(value.dtype).encode() + value.tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def _run(self, node: Node, args: list[Any]) -> Any:
        return OPS[node.op](node, args)



def load_graph_module(model_json: str | Path, device: str | torch.device = "cpu"
                      ) -> TfjsGraphModule:
    """Read a TF.js graph model into an eval-mode torch module on `device`."""
    return TfjsGraphModule(read_graph(model_json)).to(device).eval()
