"""Golden model of the top-k engine (the spec; NumPy only, never Amaranth).

Ref: SpAtten (Wang, Zhang, Han, HPCA 2021), Section III-C: the top-k engine returns the k
largest scores *in their original order* (order-preserving), with their token indices.

Definition of :func:`topk` for integer scores ``s[0..n-1]`` and ``k >= 0``:

- exactly ``m = min(k, n)`` elements are kept;
- they are the ``m`` largest values; among equal values the **lower index wins** (an element
  ``i`` beats ``j`` iff ``s[i] > s[j]`` or ``s[i] == s[j] and i < j``);
- they are returned in original (ascending index) order;
- ``kth`` is the smallest kept value.

Edge cases: ``n = 0`` or ``k = 0`` keep nothing: ``indices`` and ``values`` are empty and
``kth`` is ``None`` (the minimum of an empty set). ``k > n`` keeps everything.

:func:`topk_engine` is the packet-level behaviour of ``hdl.topk.TopK`` for a given config:
elements beyond the capacity are dropped (and flagged), and an empty result reports
``kth = score.max_raw`` (the empty minimum, +inf, saturated to the score format).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.config import TopKConfig

__all__ = ["TopKResult", "EngineResult", "topk", "topk_engine"]


@dataclass(frozen=True)
class TopKResult:
    """``indices`` ascending (int64), ``values = scores[indices]``, ``kth`` or ``None``."""

    indices: np.ndarray
    values: np.ndarray
    kth: int | None

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class EngineResult:
    """What the hardware emits for one packet."""

    indices: np.ndarray
    values: np.ndarray
    kth: int  # score.max_raw when nothing is kept
    truncated: bool  # the packet had more than ``capacity`` elements


def topk(scores, k: int) -> TopKResult:
    """The ``min(k, n)`` largest of ``scores`` (ties to the lower index), in original order."""
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, not of shape {s.shape}")
    if s.size and not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"scores must be integers (raw fixed point), not {s.dtype}")
    if s.size and s.dtype == np.uint64 and int(s.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"scores must fit int64, not {int(s.max())}")
    s = s.astype(np.int64)
    k = int(k)
    if k < 0:
        raise ValueError(f"k must be non-negative, not {k}")
    m = min(k, s.size)
    # A stable sort of ~s (= -s - 1, which cannot overflow) puts larger values first and,
    # among equal values, lower indices first: exactly the tie rule above.
    order = np.argsort(~s, kind="stable")[:m]
    idx = np.sort(order)
    vals = s[idx]
    return TopKResult(indices=idx, values=vals, kth=int(vals.min()) if m else None)


def topk_engine(scores, k: int, cfg: TopKConfig) -> EngineResult:
    """One packet through ``hdl.topk.TopK(cfg)``: capacity truncation and the empty ``kth``."""
    raw = np.asarray(scores)
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"scores must be integers (raw fixed point), not {raw.dtype}")
    s = cfg.score.check(raw, "score")
    truncated = s.size > cfg.capacity
    k = int(k)
    if not 0 <= k < (1 << cfg.count_bits):
        raise ValueError(f"k must fit the {cfg.count_bits}-bit k field, not {k}")
    r = topk(s[: cfg.capacity], k)
    kth = cfg.score.max_raw if r.kth is None else r.kth
    return EngineResult(indices=r.indices, values=r.values, kth=kth, truncated=truncated)
