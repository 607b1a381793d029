"""Golden model of the core's selection policy: which tokens and heads a layer keeps.

Ref: SpAtten (HPCA 2021), Sections III-A (cascade token pruning) and III-B (cascade head
pruning); ``../shared/docs/reference.md`` section 1 for the generation caveat (sink tokens, a
recent window, age normalisation). The specification is ``docs/core.md`` (Selection).

- The kept tokens (or heads) are chosen among the candidates by the token/head top-k engine
  (``cfg.select_topk``) on their scores: the ``keep`` largest, ties to the earlier candidate,
  in order.
- Generation policies: the first ``sinks`` positions and the last ``recent`` positions are
  *protected* (kept whatever their score): they get the score ``cfg.protected_score``
  (above every importance), so one top-k pass keeps them and the best of the rest. With
  ``age_norm`` the others compete on ``(imp * R[age] + 2**(B-1)) >> B`` (``R`` from
  :func:`generators.tables.age_recip_table`, age = steps since arrival, 1 for the new token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.config import SpAttenConfig
from generators.status import Status
from generators.tables import age_recip_table

from .topk import topk_engine

__all__ = ["DescriptorError", "Policy", "select", "protected", "age_normalise"]


class DescriptorError(ValueError):
    """A descriptor the core refuses; ``status`` is the code the hardware reports."""

    def __init__(self, status: Status, message: str):
        super().__init__(f"{status.name}: {message}")
        self.status = status


@dataclass(frozen=True)
class Policy:
    """Generation policy: ``sinks`` first positions and ``recent`` last positions always
    kept; ``age_norm`` ranks the others by importance per step since arrival."""

    sinks: int = 0
    recent: int = 0
    age_norm: bool = False

    def __post_init__(self):
        for name in ("sinks", "recent"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")


def age_normalise(imp, age, cfg: SpAttenConfig) -> np.ndarray:
    """``(imp * R[age] + 2**(B-1)) >> B``: importance per step since arrival, HALF_UP."""
    b = cfg.core.age_frac_bits
    r = np.asarray(age_recip_table(cfg), dtype=np.int64)[np.asarray(age, dtype=np.int64)]
    return (np.asarray(imp, dtype=np.int64) * r + (1 << (b - 1))) >> b


def protected(cand, newest: int, policy: Policy) -> np.ndarray:
    """Sinks (positions below ``sinks``) and the recent window (the last ``recent``
    positions, the newest included)."""
    return (cand < policy.sinks) | (cand > newest - policy.recent)


def select(cfg: SpAttenConfig, cand, scores, keep: int, *, protected=None) -> np.ndarray:
    """The ``keep`` candidates (ids ``cand``, ascending) with the largest ``scores``, ties to
    the earlier candidate, plus every ``protected`` one; in order. Raises
    :class:`DescriptorError` when ``keep`` is 0 or more than the candidates, or smaller than
    the protected count."""
    cand = np.asarray(cand, dtype=np.int64)
    keep = int(keep)
    if not 1 <= keep <= cand.size:
        raise DescriptorError(Status.KEEP_RANGE,
                              f"keep must be in 1..{cand.size} (the candidates), not {keep}")
    prot = np.zeros(cand.size, dtype=bool) if protected is None else np.asarray(protected)
    if int(prot.sum()) > keep:
        raise DescriptorError(Status.POLICY, f"{int(prot.sum())} protected tokens (sinks and "
                              f"recent window) do not fit token_keep = {keep}")
    if keep == cand.size:
        return cand
    s = np.where(prot, cfg.protected_score, np.asarray(scores, dtype=np.int64))
    r = topk_engine(cfg.select_topk.score.check(s, "selection score"), keep, cfg.select_topk)
    return cand[r.indices]
