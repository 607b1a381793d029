"""Golden model of the per-head attention datapath (the spec; NumPy only, never Amaranth).

Ref: SpAtten (Wang, Zhang, Han, HPCA 2021), Sections III-B to III-E: Q·K, softmax, the
progressive-quantization decision, local value pruning and prob·V for one query of one head.
The numeric specification is written out in ``docs/numerics.md``; every function here is
integer arithmetic on int64 and is what ``hdl.attn`` must equal bit for bit.

One *pass* is one query against one row of keys. A pass is either MSB-only (``msb_only = 1``:
K and V values are rebuilt from their MSB plane, the LSB plane replaced by its midpoint) or
full precision. An MSB-only pass whose largest probability is below ``threshold`` asks for a
refetch: its probabilities and output are discarded and the host sends the same query again
as a full-precision pass.

Steps of a pass, with ``cfg = SpAttenConfig.attn``:

1. ``k = join_planes(kmsb, klsb, msb_only)``; ``acc[j] = sum_d q[d] * k[j][d]`` (exact:
   ``acc_bits`` wide).
2. ``score[j] = fit(shift_round(acc[j] * scale, shift, HALF_UP), score, SATURATE)``: base-2
   logits with ``score.frac`` fraction bits; ``scale * 2**-shift`` folds in the Q and K
   quantization scales, ``1/sqrt(D)`` and ``log2(e)`` (see :func:`scale_for`).
3. Softmax (:func:`softmax`): ``m = max(score)``; ``d = m - score``; ``e = T[d mod 2**F]``
   shifted right by ``d >> F`` with HALF_UP rounding; ``S = sum(e)``; ``z = floor(log2 S)``;
   ``r = floor(2**(z + Rb) / S)``; ``p = fit(shift_round(e * r, z + Rb - P, HALF_UP), prob,
   SATURATE)``; ``pmax`` is the ``p`` of ``e = 2**E``; ``refetch = msb_only & (pmax <
   threshold)``.
4. Local value pruning: ``topk_engine(p, keep, topk)``: the ``keep`` largest probabilities in
   original order (ties to the lower index).
5. ``acc_o[d] = sum over kept j of p[j] * v[j][d]``;
   ``out[d] = fit(shift_round(acc_o[d], P - out.frac, HALF_EVEN), out, SATURATE)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from generators.config import AttentionConfig, SpAttenConfig
from generators.numerics import Overflow, QFormat, Rounding, fit, shift_round
from generators.tables import exp2_table

from .topk import topk_engine

__all__ = ["PassParams", "SoftmaxResult", "PassResult", "split_planes", "join_planes",
           "qk_scores", "softmax", "prob_v", "head_pass", "scale_for", "value_format"]


def value_format(cfg: AttentionConfig) -> QFormat:
    """A full K or V value: signed ``msb_bits + lsb_bits`` bits."""
    return QFormat(cfg.value_bits, 0)


@dataclass(frozen=True)
class PassParams:
    """Runtime parameters of one pass (the query beat's side fields).

    scale : unsigned ``scale_bits``-bit multiplier of the Q·K sum.
    shift : right shift after the multiply (0..63), rounding HALF_UP.
    keep : probabilities kept by local value pruning (``0..topk.capacity``).
    threshold : raw ``prob``; an MSB-only pass with ``pmax < threshold`` asks for a refetch.
    msb_only : 1 for an MSB-only pass, 0 for a full-precision pass.
    """

    scale: int
    shift: int
    keep: int
    threshold: int
    msb_only: int

    def check(self, cfg: SpAttenConfig) -> "PassParams":
        a = cfg.attn
        for name, hi in (("scale", (1 << a.scale_bits) - 1), ("shift", (1 << a.shift_bits) - 1),
                         ("keep", (1 << cfg.topk.count_bits) - 1),
                         ("threshold", a.prob.max_raw), ("msb_only", 1)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
                raise ValueError(f"{name} must be an integer in 0..{hi}, not {v!r}")
        return self


def split_planes(values, cfg: AttentionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Full values → (signed MSB plane, unsigned LSB plane): ``v = msb * 2**lsb_bits + lsb``."""
    v = value_format(cfg).check(values, "K/V value")
    return v >> cfg.lsb_bits, v & ((1 << cfg.lsb_bits) - 1)


def join_planes(msb, lsb, msb_only: int, cfg: AttentionConfig) -> np.ndarray:
    """The value a pass computes with: ``msb * 2**L + lsb``, or ``msb * 2**L + 2**(L-1)``
    (the midpoint of the unknown LSBs) in an MSB-only pass."""
    msb = QFormat(cfg.msb_bits, 0).check(msb, "MSB plane")
    lsb = QFormat(cfg.lsb_bits, 0, signed=False).check(lsb, "LSB plane")
    low = np.full_like(lsb, 1 << (cfg.lsb_bits - 1)) if msb_only else lsb
    return (msb << cfg.lsb_bits) + low


def qk_scores(q, kmsb, klsb, params: PassParams, cfg: AttentionConfig):
    """Steps 1–2: ``(acc, score)`` for an ``(n, D)`` key block; both int64 of length ``n``."""
    q = QFormat(cfg.q_bits, 0).check(q, "q")
    if q.shape != (cfg.head_dim,):
        raise ValueError(f"q must have shape ({cfg.head_dim},), not {q.shape}")
    k = join_planes(kmsb, klsb, params.msb_only, cfg).reshape(-1, cfg.head_dim)
    acc = k @ q
    assert QFormat(cfg.acc_bits, 0).contains(acc).all()
    score = fit(shift_round(acc * int(params.scale), int(params.shift), Rounding.HALF_UP),
                cfg.score, Overflow.SATURATE)
    return acc, score


@dataclass(frozen=True)
class SoftmaxResult:
    """Everything the softmax unit computes for one score row (``n`` may be 0)."""

    max: int  # m (score.min_raw for an empty row)
    e: np.ndarray  # exponentials, u(E+1)fE
    total: int  # S
    z: int  # floor(log2 S) (0 for an empty row)
    recip: int  # r = floor(2**(z + Rb) / S) (0 for an empty row)
    probs: np.ndarray  # raw prob
    pmax: int  # the probability of an element with e = 2**E (0 for an empty row)
    refetch: bool


def softmax(score, *, msb_only: int, threshold: int, cfg: AttentionConfig) -> SoftmaxResult:
    """Step 3 on one row of raw scores (see the module docstring and docs/numerics.md)."""
    s = cfg.score.check(score, "score")
    table = np.asarray(exp2_table(cfg), dtype=np.int64)
    E, F, Rb, P = cfg.exp_bits, cfg.score.frac, cfg.recip_bits, cfg.prob.frac
    if s.size == 0:
        return SoftmaxResult(max=cfg.score.min_raw, e=s.copy(), total=0, z=0, recip=0,
                             probs=s.copy(), pmax=0, refetch=False)
    m = int(s.max())
    d = m - s
    # A shift of E + 2 or more rounds every table entry (< 2**(E+1)) to 0: clamp there.
    n_int = np.minimum(d >> F, E + 2)
    t = table[d & ((1 << F) - 1)]
    e = (t + ((1 << n_int) >> 1)) >> n_int  # shift_round HALF_UP with a per-element shift
    total = int(e.sum())
    z = total.bit_length() - 1
    r = (1 << (z + Rb)) // total
    sh = z + Rb - P
    probs = fit(shift_round(e * r, sh, Rounding.HALF_UP), cfg.prob, Overflow.SATURATE)
    pmax = int(fit(shift_round(np.int64((1 << E) * r), sh, Rounding.HALF_UP), cfg.prob,
                   Overflow.SATURATE))
    return SoftmaxResult(max=m, e=e, total=total, z=z, recip=r, probs=probs, pmax=pmax,
                         refetch=bool(msb_only) and pmax < threshold)


def prob_v(kept_prob, vmsb, vlsb, msb_only: int, cfg: AttentionConfig) -> np.ndarray:
    """Step 5: ``out`` (length D) from the kept probabilities and their V rows ``(m, D)``."""
    p = cfg.prob.check(kept_prob, "probability")
    v = join_planes(vmsb, vlsb, msb_only, cfg).reshape(-1, cfg.head_dim)
    if v.shape[0] != p.size:
        raise ValueError(f"need one V row per kept probability ({p.size}), not {v.shape[0]}")
    acc = p @ v if p.size else np.zeros(cfg.head_dim, dtype=np.int64)
    return fit(shift_round(acc, cfg.prob.frac - cfg.out.frac, Rounding.HALF_EVEN), cfg.out,
               Overflow.SATURATE)


@dataclass(frozen=True)
class PassResult:
    """One pass through the head pipeline."""

    acc: np.ndarray
    score: np.ndarray
    softmax: SoftmaxResult
    refetch: bool
    truncated: bool  # the row had more than topk.capacity keys (the rest were dropped)
    kept_index: np.ndarray | None  # None when refetch (the pass is discarded)
    kept_prob: np.ndarray | None
    out: np.ndarray | None

    @property
    def probs(self) -> np.ndarray:
        return self.softmax.probs


def head_pass(cfg: SpAttenConfig, q, kmsb, klsb, vmsb, vlsb, params: PassParams) -> PassResult:
    """Steps 1–5 for one query against ``n`` keys; ``vmsb``/``vlsb`` hold all ``n`` V rows
    (the hardware fetches only the kept ones)."""
    params.check(cfg.check_head())
    a = cfg.attn
    kmsb = np.asarray(kmsb).reshape(-1, a.head_dim)
    n = kmsb.shape[0]
    acc, score = qk_scores(q, kmsb, np.asarray(klsb).reshape(-1, a.head_dim), params, a)
    truncated = n > cfg.topk.capacity
    sm = softmax(score[:cfg.topk.capacity], msb_only=params.msb_only,
                 threshold=params.threshold, cfg=a)
    if sm.refetch:
        return PassResult(acc, score, sm, True, truncated, None, None, None)
    sel = topk_engine(sm.probs, params.keep, cfg.topk)
    vmsb = np.asarray(vmsb).reshape(-1, a.head_dim)
    vlsb = np.asarray(vlsb).reshape(-1, a.head_dim)
    out = prob_v(sel.values, vmsb[sel.indices], vlsb[sel.indices], params.msb_only, a)
    return PassResult(acc, score, sm, False, truncated, sel.indices, sel.values, out)


def scale_for(factor: float, cfg: AttentionConfig) -> tuple[int, int]:
    """``(scale, shift)`` with ``scale * 2**-shift`` closest to ``factor`` at full precision.

    ``factor`` is what one unit of the Q·K sum is worth in raw score units:
    ``s_q * s_k * log2(e) / sqrt(D) * 2**score.frac`` for quantization scales ``s_q`` and
    ``s_k`` (real = raw * s). Raises ``ValueError`` when no representable pair is within
    the format (factor too large for ``scale_bits``, or too small for a 63-bit shift).
    """
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor must be a positive finite number, not {factor!r}")
    top = (1 << cfg.scale_bits) - 1
    if factor >= top + 0.5:
        raise ValueError(f"factor {factor:g} needs more than scale_bits = {cfg.scale_bits} "
                         f"bits at shift 0")
    for shift in range((1 << cfg.shift_bits) - 1, -1, -1):
        scale = round(factor * 2.0 ** shift)
        if scale <= top:
            if scale == 0:
                break
            return scale, shift
    raise ValueError(f"factor {factor:g} is too small for a {cfg.scale_bits}-bit scale and "
                     f"a shift of at most {(1 << cfg.shift_bits) - 1}")
