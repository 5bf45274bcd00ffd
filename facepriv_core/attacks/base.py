"""The attack interface: params, a declared threat model, the wires it applies to, a result.

An attack sees an `AttackCase`: what the server received (the defence's `Protected`), the
defence's public algorithm and params, and, for scoring only, the original faces. It streams
`ProgressEvent`s (step, total, latest preview image, metrics so far) and honours cancellation.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from facepriv_core import cancel as _cancel
from facepriv_core.defences.base import (
    CAPABILITIES,
    Defence,
    DefenceParams,
    Protected,
    WireKind,
)
from facepriv_core.embedding import embed_batched
from facepriv_core.progress import ProgressEvent as ProgressEvent  # re-exported for attacks
from facepriv_core.progress import ProgressFn as ProgressFn
from facepriv_core.verdicts import Phrasing, Rule, Verdict, judge

DP = TypeVar("DP", bound=DefenceParams)

KNOWLEDGE = {
    "wire": "what the server receives",
    "shallow_model": "the client's shallow model (white-box)",
    "recogniser": "the authorised recogniser",
    "auxiliary_data": "auxiliary faces of other people",
    "defence_algorithm": "the defence's public algorithm (not its secret key)",
    "gallery": "enrolled photos of the people",
}


class AttackCancelled(_cancel.Cancelled):
    """The attack stopped because cancellation was requested."""


@dataclass(frozen=True)
class ThreatModel:
    """What the attacker knows, as keys of KNOWLEDGE, and one sentence for people."""

    knows: tuple[str, ...]
    sentence: str

    def __post_init__(self) -> None:
        unknown = set(self.knows) - set(KNOWLEDGE)
        if unknown:
            raise ValueError(f"unknown threat-model knowledge {sorted(unknown)}")


class AttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CancelFn = _cancel.Cancel


@dataclass(repr=False)
class AttackCase:
    """One protected batch under attack. `original` is used only to score the attack."""

    original: torch.Tensor
    protected: Protected
    defence: Defence
    defence_params: DefenceParams
    identities: np.ndarray | None = None
    seed: int = 0
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    #: a recogniser's embeddings of the protected image, where the audit has them already
    #: (the authorised service's own pass, `Protected.utility_is_embedding`)
    wire_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.original.device

    def original_embedding(self, recogniser: str, batch: int = 32) -> torch.Tensor:
        """The originals' embeddings by a zoo recogniser, computed once per case and shared
        by every attack (and pre-filled by the audit, which needs them for utility)."""
        if recogniser not in self.embeddings:
            from facepriv_core import models

            model = models.get(recogniser, self.device)
            self.embeddings[recogniser] = embed_batched(model, self.original, batch, self.device)
        return self.embeddings[recogniser]

    def defence_params_as(self, cls: type[DP]) -> DP:
        """The defence's params as `cls`, for an attack that applies to that defence only."""
        if not isinstance(self.defence_params, cls):
            raise TypeError(f"expected {cls.__name__}, got "
                            f"{type(self.defence_params).__name__} params")
        return self.defence_params

    def __repr__(self) -> str:
        return (f"AttackCase(n={self.original.shape[0]}, defence={self.defence!r}, "
                f"wire={self.protected.wire_kind!r})")


@dataclass(repr=False)
class AttackResult:
    """Per-image metric rows, their means, and the attack's outputs."""

    attack: str
    threat_model: ThreatModel
    per_image: list[dict[str, float]]
    reconstructions: torch.Tensor | None = None
    details: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None  # filled by the engine after `run` (Attack.judge)

    @property
    def aggregates(self) -> dict[str, float]:
        keys = {k for row in self.per_image for k in row}
        return {k: float(np.nanmean([row.get(k, np.nan) for row in self.per_image]))
                for k in sorted(keys)}

    def __repr__(self) -> str:
        return f"AttackResult({self.attack!r}, n={len(self.per_image)}, {self.aggregates})"


P = TypeVar("P", bound=AttackParams)


class Attack(ABC, Generic[P]):
    """An attack from the literature. Subclasses register with `@register(name)` and name
    their Params: `class Identity(Attack[IdentityParams])`, so `run` is typed with them.

    Every attack declares its verdict: `verdict_rules(case, result)` returns the headline
    rule(s) (metric, direction, threshold and where it comes from) and `verdict_phrasing` how
    the sentence reads. The engine judges every result after `run` (subclasses' `run` is
    wrapped), so `AttackResult.verdict` is set wherever an attack runs: audits, the app, jobs.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    threat: ClassVar[ThreatModel]
    applies_to: ClassVar[frozenset[WireKind]]
    #: Defence capabilities (facepriv_core.defences.base.CAPABILITIES) the attack relies on:
    #: whether it applies to a defence follows from them, never from the defence's name.
    needs: ClassVar[frozenset[str]] = frozenset()
    Params: type[P]  # a class attribute (ClassVar cannot hold a type variable)
    verdict_phrasing: ClassVar[Phrasing] = Phrasing("the attack succeeds", "the attack fails")

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _judged(cls.__dict__["run"])  # type: ignore[method-assign]
        if "finish" in cls.__dict__:
            cls.finish = _judged(cls.__dict__["finish"])  # type: ignore[method-assign]
        unknown = set(cls.__dict__.get("needs", frozenset())) - set(CAPABILITIES)
        if unknown:
            raise TypeError(f"{cls.__name__} needs unknown capabilities {sorted(unknown)}")

    def needs_for(self, wire_kind: WireKind) -> frozenset[str]:
        """The capabilities needed on a wire of this kind (some attacks need more on some)."""
        return self.needs

    def verdict_rules(self, case: AttackCase, result: AttackResult) -> list[Rule]:
        """The headline rules resolved on this result. Every registered attack overrides it
        (a contract test checks): see facepriv_core.attacks._rules for the shared ones."""
        raise NotImplementedError(f"attack {self.name!r} declares no verdict rule")

    def judge(self, case: AttackCase, result: AttackResult) -> Verdict:
        """The verdict of a finished result (seeded by the case: same result, same CI)."""
        return judge(self.verdict_rules(case, result), self.verdict_phrasing, seed=case.seed)

    def applicable(self, protected: Protected, defence: Defence | None = None) -> str | None:
        """None when the attack applies to this wire and defence, else the reason it does not."""
        if protected.wire_kind not in self.applies_to:
            kinds = ", ".join(sorted(self.applies_to))
            return f"{self.title} works on {kinds} wires, not {protected.wire_kind}"
        return missing_capabilities(self.title, self.needs_for(protected.wire_kind), defence)

    @abstractmethod
    def run(self, case: AttackCase, params: P, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> AttackResult:
        """Attack the case; raise AttackCancelled promptly when cancel() turns true."""

    # Streaming: how an audit of a whole dataset feeds the attack (see audit.runner.run).

    def streams(self, params: P) -> bool:
        """Whether an audit may feed this attack its faces shard by shard: `run_shard` on
        each shard, then `finish` once. False (the default) for attacks that train on, or
        mix across, the whole batch: they get one case holding every face (the whole set
        is then in memory). Declare True only when every per-image row depends on its own
        face alone and what needs the whole set is collected by `run_shard` as small arrays
        and combined by `finish`, so the numbers do not depend on the shard size."""
        return False

    def run_shard(self, case: AttackCase, params: P, cancel: CancelFn | None = None) -> Any:
        """A streamed attack's work on one shard: small, picklable values (rows, embeddings,
        predicted classes), never the shard's images, which the audit drops next."""
        raise NotImplementedError(f"attack {self.name!r} does not stream")

    def finish(self, case: AttackCase, parts: list[Any], params: P,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None
               ) -> AttackResult:
        """A streamed attack's result from its shards' parts, in face order. `case` is
        `streamed_case(...)`: `identities` of every face, the defence, params and seed, one
        face of pixels: finish and the attack's `verdict_rules` read the set through the
        parts, the identities and the seed, never `case.original`. Judged like `run`."""
        raise NotImplementedError(f"attack {self.name!r} does not stream")


_depth = threading.local()


def _judged(run: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
    """Wrap an attack's `run` so the outermost call fills `result.verdict` (a subclass whose
    `run` calls super().run is judged once, on its own final rows)."""

    @functools.wraps(run)
    def wrapper(self: Attack, case: AttackCase, *args: Any, **kwargs: Any) -> AttackResult:
        key = id(self)
        depth = getattr(_depth, "calls", {})
        _depth.calls = depth
        depth[key] = depth.get(key, 0) + 1
        try:
            result = run(self, case, *args, **kwargs)
        finally:
            depth[key] -= 1
            outermost = depth[key] == 0
            if outermost:
                del depth[key]
        if outermost and result.verdict is None:
            try:
                result.verdict = self.judge(case, result)
            except NotImplementedError:
                result.verdict = None
        return result

    return wrapper



def streamed_case(last: AttackCase, identities: np.ndarray) -> AttackCase:
    """The case a streamed attack's `finish` sees: the last shard's defence, params and seed,
    the identities of every face of the audit, and of the pixels only the shard's first face
    (original, wire, preview, image: enough to show a preview and name the wire kind), so the
    audit can drop the shard before loading the next. No key, no utility, no embeddings."""
    p = last.protected

    def no_utility(recogniser: Any) -> torch.Tensor:
        raise RuntimeError("a streamed attack's finish reads its parts, not the wire")

    head = Protected(wire=p.wire[:1].clone(), wire_kind=p.wire_kind,
                     preview=np.array(p.preview[:1]), utility=no_utility,
                     image=p.image[:1].clone() if p.image is not None else None)
    return replace(last, original=last.original[:1].clone(), protected=head,
                   identities=np.asarray(identities), embeddings={})


def missing_capabilities(title: str, needs: frozenset[str], defence: Defence | None
                         ) -> str | None:
    """None when `defence` offers every capability in `needs`, else why the attack is out."""
    if not needs:
        return None
    offered = defence.capabilities if defence is not None else frozenset()
    missing = sorted(needs - offered)
    if not missing:
        return None
    what = "; ".join(CAPABILITIES[m] for m in missing)
    who = defence.title if defence is not None else "an unknown defence"
    return f"{title} needs what {who} does not give away: {what}"


#: check_cancel(cancel) raises AttackCancelled when the caller asked the attack to stop.
check_cancel = functools.partial(_cancel.check_cancel, error=AttackCancelled,
                                 message="attack cancelled")
