"""Verdicts: does an attack show that the defence leaks, on which metric, against what threshold.

Each attack declares its headline rule(s) (`Attack.verdict_rules`): a metric, its direction,
a threshold and where that threshold comes from (a recogniser's fitted same-person cosine,
chance rank-1 for the gallery, the majority-class rate of an attribute, the SSIM of a mean
face). `judge` turns the rules into one `Verdict` with a bootstrap confidence interval; an
audit combines its attacks' verdicts into one `OverallVerdict` for the defence.

The decision is conservative about evidence: a rule *leaks* when the whole 95% CI of the mean
lies beyond the threshold in the leaking direction. A mean beyond the threshold whose CI still
reaches it is *inconclusive* (not a leak, and the sentence says to audit more faces).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facepriv_core.estimates import bootstrap_ci

Status = Literal["leaks", "inconclusive", "no_leak", "utility"]


class RuleOutcome(BaseModel):
    """One declared rule evaluated on one result (the verdict keeps all of them)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    metric: str
    subject: str = ""
    value: float
    ci: list[float]
    threshold: float
    threshold_source: str
    higher_leaks: bool
    leaks: bool
    status: Status


class Verdict(BaseModel):
    """An attack's verdict: the headline rule's numbers and one sentence for people."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN/inf survive a JSON round trip

    leaks: bool
    metric: str
    value: float
    threshold: float
    ci: list[float] = Field(description="[lo, hi] 95% bootstrap CI of the value")
    reason: str
    threshold_source: str
    higher_leaks: bool
    status: Status = "no_leak"
    n: int = 0
    rules: list[RuleOutcome] = Field(default_factory=list)


class OverallVerdict(BaseModel):
    """One line for the defence over every attack of an audit."""

    leaks: bool
    reason: str
    status: Status = "no_leak"

    @model_validator(mode="before")
    @classmethod
    def _status_follows_leaks(cls, data: Any) -> Any:
        """A leaking verdict saved without a status reads as 'leaks', not the default."""
        if isinstance(data, dict) and "status" not in data and data.get("leaks"):
            return {**data, "status": "leaks"}
        return data


@dataclass(frozen=True)
class Rule:
    """A declared headline rule resolved on one result: per-image values and a threshold.

    metric: the metric key (as in the result rows, e.g. "rank1@faceres", or derived, "srra");
    label: how the sentence names it ("rank-1"); threshold_name: how it names the threshold
    ("chance"); subject: what the rule is about when an attack has several of one kind (a
    recogniser, an attribute head); utility: True when crossing the threshold is what the
    authorised service is for, not a leak (identity on the service's own embedding).
    """

    metric: str
    label: str
    values: Sequence[float]
    threshold: float
    threshold_name: str
    threshold_source: str
    higher_leaks: bool = True
    subject: str = ""
    utility: bool = False
    perfect: float | None = None

    @property
    def best(self) -> float:
        """The value of a perfect attack (default 1 for rates and similarities, 0 for
        errors): margins are compared as the share of the way from threshold to perfect."""
        if self.perfect is not None:
            return self.perfect
        return 1.0 if self.higher_leaks else 0.0


@dataclass(frozen=True)
class Phrasing:
    """How an attack's sentence reads: 'identity still matches' / 'identity no longer
    matches', counted over 'recognisers'."""

    leak: str
    safe: str
    subjects: str = ""


def fmt(x: float) -> str:
    """Numbers the way the sentences print them: 0.80, 0.025, 23.4."""
    if not np.isfinite(x):
        return "n/a"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if x == 0 or abs(x) >= 0.1:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _evaluate(rule: Rule, rng: np.random.Generator, resamples: int) -> RuleOutcome:
    est = bootstrap_ci(list(rule.values), rng, resamples)
    lo, hi = est.ci_low, est.ci_high
    beyond_mean = est.mean > rule.threshold if rule.higher_leaks else est.mean < rule.threshold
    beyond_ci = lo > rule.threshold if rule.higher_leaks else hi < rule.threshold
    status: Status
    if rule.utility:
        status = "utility"
    elif beyond_ci:
        status = "leaks"
    elif beyond_mean:
        status = "inconclusive"
    else:
        status = "no_leak"
    return RuleOutcome(metric=rule.metric, subject=rule.subject, value=est.mean, ci=[lo, hi],
                       threshold=rule.threshold, threshold_source=rule.threshold_source,
                       higher_leaks=rule.higher_leaks, leaks=status == "leaks",
                       status=status)


def _margin(o: RuleOutcome, r: Rule) -> float:
    """How far the value is beyond the threshold towards a perfect attack, as a share of the
    way there (negative: short of the threshold), so rules in different units compare."""
    span = r.best - o.threshold
    if abs(span) < 1e-12:
        span = 1.0 if r.higher_leaks else -1.0
    return (o.value - o.threshold) / span


def judge(rules: Sequence[Rule], phrasing: Phrasing, seed: int = 0,
          resamples: int = 1000) -> Verdict:
    """One verdict from an attack's resolved rules: leaks when any rule leaks; the headline is
    the leaking rule furthest beyond its threshold, else the rule closest to it."""
    if not rules:
        raise ValueError("a verdict needs at least one rule")
    rng = np.random.default_rng(seed)
    outcomes = [_evaluate(r, rng, resamples) for r in rules]
    finite = [i for i, o in enumerate(outcomes) if np.isfinite(o.value)]
    if not finite:
        raise ValueError("no rule had a finite value to judge")
    leaking = [i for i in finite if outcomes[i].leaks]
    pool = leaking or finite
    h = max(pool, key=lambda i: _margin(outcomes[i], rules[i]))
    head, rule = outcomes[h], rules[h]
    n = len([v for v in rule.values if v is not None and np.isfinite(v)])

    def numbers(i: int) -> str:
        o, r = outcomes[i], rules[i]
        return f"{r.label} {fmt(o.value)} vs {r.threshold_name} {fmt(o.threshold)}"

    counted = bool(phrasing.subjects) and len({rules[i].subject for i in finite}) > 1
    strongest = f" ({rule.subject})" if rule.subject and phrasing.subjects else ""
    if head.status == "utility":
        reason = (f"{phrasing.leak} for the authorised service only: {numbers(h)}; that is "
                  "the utility the defence keeps, not a leak to a third party")
    elif leaking:
        if counted:
            reason = (f"{phrasing.leak} for {len(leaking)} of {len(finite)} "
                      f"{phrasing.subjects}: {numbers(h)} (strongest: {rule.subject})")
        else:
            shown = sorted(leaking, key=lambda i: -_margin(outcomes[i], rules[i]))
            reason = f"{phrasing.leak}{strongest}: " + "; ".join(numbers(i) for i in shown)
    elif head.status == "inconclusive":
        side = "above" if head.higher_leaks else "below"
        reason = (f"not shown that {phrasing.leak}: {numbers(h)}{strongest} is {side} it, "
                  f"but the 95% CI [{fmt(head.ci[0])}, {fmt(head.ci[1])}] reaches it; audit "
                  "more faces to be sure")
    elif counted:
        reason = (f"{phrasing.safe} for any of {len(finite)} {phrasing.subjects}: best "
                  f"{numbers(h)} ({rule.subject})")
    else:
        reason = f"{phrasing.safe}{strongest}: " + "; ".join(numbers(i) for i in finite)
    return Verdict(leaks=bool(leaking), metric=head.metric, value=head.value,
                   threshold=head.threshold, ci=head.ci, reason=reason,
                   threshold_source=head.threshold_source, higher_leaks=head.higher_leaks,
                   status=head.status if not leaking else "leaks", n=n, rules=outcomes)


def overall(verdicts: Mapping[str, Verdict | None], defence: str = "the defence"
            ) -> OverallVerdict:
    """The defence leaks when any attack's verdict leaks; the line names which and why."""
    judged = {k: v for k, v in verdicts.items() if v is not None}
    if not judged:
        return OverallVerdict(leaks=False, reason=f"no attack was judged against {defence}: "
                                                  "nothing shows whether it leaks")
    leaking = {k: v for k, v in judged.items() if v.leaks}
    if leaking:
        parts = "; ".join(f"{k}: {v.reason}" for k, v in leaking.items())
        return OverallVerdict(
            leaks=True, status="leaks",
            reason=f"{defence} leaks to {len(leaking)} of {len(judged)} attacks "
                   f"({', '.join(leaking)}). {parts}")
    unsure = [k for k, v in judged.items() if v.status == "inconclusive"]
    tail = (f"; inconclusive for {', '.join(unsure)}: audit more faces" if unsure else "")
    return OverallVerdict(
        leaks=False, status="inconclusive" if unsure else "no_leak",
        reason=f"no leak shown for {defence} by {len(judged)} attack"
                            f"{'s' if len(judged) != 1 else ''} ({', '.join(judged)}){tail}")


# Thresholds that need no model ---------------------------------------------------------------

#: Share of different-person Olivetti pairs (1800 clean 150 chips, `datasets.make_pairs`)
#: with dlib-resnet cosine >= 0.921: the recogniser's false accept rate at its fitted
#: threshold, i.e. the share of reconstructions "recognised" by chance.
DLIB_FAR_AT_THRESHOLD = 0.018


def chance_rank1(identities: Sequence[int] | np.ndarray, exclude: np.ndarray | None = None
                 ) -> float:
    """Expected rank-1 of a guesser that picks a random allowed gallery entry: per probe, the
    share of its allowed gallery (the originals, minus `exclude`) that is the same person.
    With N distinct people and one photo each this is 1/N."""
    ids = np.asarray(identities)
    allowed = ~exclude if exclude is not None else np.ones((len(ids), len(ids)), bool)
    same = (ids[:, None] == ids[None, :]) & allowed
    return float(np.mean(same.sum(axis=1) / np.maximum(allowed.sum(axis=1), 1)))


def majority_rate(labels: Sequence[int] | np.ndarray) -> float:
    """Share of the most common label: the agreement of always guessing the majority class."""
    values = np.asarray(labels)
    if values.size == 0:
        return float("nan")
    return float(np.unique(values, return_counts=True)[1].max() / values.size)
