"""sim.golden.attention against independent brute-force references (pure Python ints and
fractions.Fraction: loops, ``//``, ``%`` and ``math.floor``, never NumPy shifts).

The references re-implement the written spec (the module docstring of
``sim/golden/attention.py`` and ``docs/numerics.md``), including the exponential table,
which is rebuilt here in exact integer arithmetic rather than taken from
``generators.tables``.
"""

import dataclasses
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest

from generators.config import AttentionConfig, ConfigError, SpAttenConfig, TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS
from generators.tables import exp2_table
from sim.golden.attention import (PassParams, PassResult, SoftmaxResult, head_pass,
                                  join_planes, prob_v, qk_scores, scale_for, softmax,
                                  split_planes, value_format)

PRESET_CFGS = [pytest.param(p, id=name) for name, p in PRESETS.items()]
PRESET_ATTN = [pytest.param(p.attn, id=name) for name, p in PRESETS.items()]
HALF = Fraction(1, 2)


# Pure-Python references --------------------------------------------------------------------

def ref_round_half_up(x: Fraction) -> int:
    return math.floor(x + HALF)


def ref_clamp(v: int, fmt: QFormat) -> int:
    return min(max(v, fmt.min_raw), fmt.max_raw)


@lru_cache(maxsize=None)
def ref_table(frac: int, exp_bits: int) -> tuple[int, ...]:
    """T[f] = round(2**(E - f/N)), N = 2**F, decided exactly: y**N = 2**(E*N - f) with
    integer powers. No ties occur (an odd number to the N-th power is never a power of
    two), so round-half-even and round-half-up agree."""
    n = 1 << frac
    out = []
    for f in range(n):
        target = 2 ** (exp_bits * n - f)  # y**N
        lo, hi = 1 << (exp_bits - 1), 1 << exp_bits  # y in (2**(E-1), 2**E]
        while lo < hi:  # largest c with c**N <= y**N
            mid = (lo + hi + 1) // 2
            if mid**n <= target:
                lo = mid
            else:
                hi = mid - 1
        c = lo
        # y >= c + 1/2  <=>  (2c + 1)**N <= 2**N * y**N
        out.append(c + 1 if (2 * c + 1) ** n <= target * 2**n else c)
    return tuple(out)


def ref_split(v: int, a: AttentionConfig) -> tuple[int, int]:
    return v // 2**a.lsb_bits, v % 2**a.lsb_bits


def ref_join(msb: int, lsb: int, msb_only: int, a: AttentionConfig) -> int:
    return msb * 2**a.lsb_bits + (2 ** (a.lsb_bits - 1) if msb_only else lsb)


def ref_qk(q, kmsb, klsb, scale, shift, msb_only, a):
    """Steps 1-2 with Python ints: (acc list, score list)."""
    q = [int(x) for x in q]
    kmsb = np.asarray(kmsb).reshape(-1, a.head_dim).tolist()
    klsb = np.asarray(klsb).reshape(-1, a.head_dim).tolist()
    accs, scores = [], []
    for mrow, lrow in zip(kmsb, klsb):
        acc = 0
        for d in range(a.head_dim):
            acc += q[d] * ref_join(mrow[d], lrow[d], msb_only, a)
        accs.append(acc)
        scores.append(ref_clamp(ref_round_half_up(Fraction(acc * scale, 2**shift)), a.score))
    return accs, scores


def ref_softmax(scores, a, msb_only=0, threshold=0):
    """Step 3 as written: a dict with the fields of SoftmaxResult."""
    s = [int(v) for v in scores]
    F, E, Rb, P = a.score.frac, a.exp_bits, a.recip_bits, a.prob.frac
    if not s:
        return dict(max=a.score.min_raw, e=[], total=0, z=0, recip=0, probs=[], pmax=0,
                    refetch=False)
    table = ref_table(F, E)
    m = max(s)
    e = []
    for v in s:
        d = m - v
        e.append(ref_round_half_up(Fraction(table[d % 2**F], 2 ** (d // 2**F))))
    total = sum(e)
    z = 0
    while 2 ** (z + 1) <= total:
        z += 1
    r = math.floor(Fraction(2 ** (z + Rb), total))

    def narrow(x):
        return min(ref_round_half_up(Fraction(x * r, 2 ** (z + Rb - P))), 2**P - 1)

    pmax = narrow(2**E)
    return dict(max=m, e=e, total=total, z=z, recip=r, probs=[narrow(x) for x in e],
                pmax=pmax, refetch=bool(msb_only) and pmax < threshold)


def ref_prob_v(probs, vmsb, vlsb, msb_only, a):
    vmsb = np.asarray(vmsb).reshape(-1, a.head_dim).tolist()
    vlsb = np.asarray(vlsb).reshape(-1, a.head_dim).tolist()
    out = []
    for d in range(a.head_dim):
        acc = sum(int(p) * ref_join(mr[d], lr[d], msb_only, a)
                  for p, mr, lr in zip(probs, vmsb, vlsb))
        # round() of a Fraction rounds half to even.
        out.append(ref_clamp(round(Fraction(acc, 2 ** (a.prob.frac - a.out.frac))), a.out))
    return out


def ref_topk(values, k):
    kept = sorted(sorted((-int(v), i) for i, v in enumerate(values))[:min(k, len(values))],
                  key=lambda t: t[1])
    return [i for _, i in kept]


# Stimulus ------------------------------------------------------------------------------------

def rand_values(rng, a, shape):
    f = value_format(a)
    return rng.integers(f.min_raw, f.max_raw + 1, shape).astype(np.int64)


def rand_planes(rng, a, n):
    return split_planes(rand_values(rng, a, (n, a.head_dim)), a)


def rand_q(rng, a):
    return rng.integers(-(1 << (a.q_bits - 1)), 1 << (a.q_bits - 1), a.head_dim)


def useful_scale(a, spread=3.0):
    """(scale, shift) that maps uniform random q and k to scores of about ``spread`` base-2
    units of standard deviation (so rounding, not saturation, dominates)."""
    std_acc = math.sqrt(a.head_dim) * 2 ** (a.q_bits - 1) * 2 ** (a.value_bits - 1) / 3
    return scale_for(spread * 2**a.score.frac / std_acc, a)


# (a) split / join ------------------------------------------------------------------------------

@pytest.mark.parametrize("a", PRESET_ATTN)
def test_split_join_round_trip_every_value(a):
    f = value_format(a)
    v = np.arange(f.min_raw, f.max_raw + 1, dtype=np.int64)
    msb, lsb = split_planes(v, a)
    assert msb.dtype == np.int64 and lsb.dtype == np.int64
    assert [(int(x), int(y)) for x, y in zip(msb, lsb)] == [ref_split(int(x), a) for x in v]
    assert msb.min() == -(1 << (a.msb_bits - 1)) and msb.max() == (1 << (a.msb_bits - 1)) - 1
    assert lsb.min() == 0 and lsb.max() == (1 << a.lsb_bits) - 1
    np.testing.assert_array_equal(join_planes(msb, lsb, 0, a), v)


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_msb_only_rebuilds_the_midpoint(a):
    L = a.lsb_bits
    msb = np.arange(-(1 << (a.msb_bits - 1)), 1 << (a.msb_bits - 1), dtype=np.int64)
    for lsb_value in (0, 1, (1 << L) - 1):
        lsb = np.full_like(msb, lsb_value)
        got = join_planes(msb, lsb, 1, a)
        # The LSB plane is ignored: every element becomes msb * 2**L + 2**(L-1).
        assert got.tolist() == [ref_join(int(m), 0, 1, a) for m in msb]
        assert got.tolist() == [int(m) * 2**L + 2 ** (L - 1) for m in msb]
    assert np.all(value_format(a).contains(join_planes(msb, np.zeros_like(msb), 1, a)))
    # Against every full value: the error is at most half the LSB range, and the rebuilt
    # value is the upper of the two middle values (mean offset exactly +1/2 LSB).
    f = value_format(a)
    v = np.arange(f.min_raw, f.max_raw + 1, dtype=np.int64)
    m, lo = split_planes(v, a)
    err = join_planes(m, lo, 1, a) - v
    assert err.min() == -(2 ** (L - 1) - 1) and err.max() == 2 ** (L - 1)
    assert Fraction(int(err.sum()), err.size) == HALF


def test_join_broadcasts_rows_and_keeps_shape():
    a = PRESETS["ci"].attn
    rng = np.random.default_rng(1)
    msb, lsb = rand_planes(rng, a, 5)
    for mode in (0, 1):
        got = join_planes(msb, lsb, mode, a)
        assert got.shape == (5, a.head_dim)
        want = [[ref_join(int(x), int(y), mode, a) for x, y in zip(mr, lr)]
                for mr, lr in zip(msb, lsb)]
        assert got.tolist() == want


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_plane_range_errors(a):
    f = value_format(a)
    with pytest.raises(ValueError, match="K/V value must fit"):
        split_planes([0, f.max_raw + 1], a)
    with pytest.raises(ValueError, match="K/V value must fit"):
        split_planes([f.min_raw - 1], a)
    top = 1 << (a.msb_bits - 1)
    with pytest.raises(ValueError, match="MSB plane must fit"):
        join_planes([top], [0], 0, a)
    with pytest.raises(ValueError, match="MSB plane must fit"):
        join_planes([-top - 1], [0], 1, a)
    for bad in (-1, 1 << a.lsb_bits):
        with pytest.raises(ValueError, match="LSB plane must fit"):
            join_planes([0], [bad], 0, a)


# (b) qk_scores --------------------------------------------------------------------------------

def check_qk(q, kmsb, klsb, params, a):
    acc, score = qk_scores(q, kmsb, klsb, params, a)
    racc, rscore = ref_qk(q, kmsb, klsb, params.scale, params.shift, params.msb_only, a)
    assert acc.dtype == np.int64 and score.dtype == np.int64
    assert acc.tolist() == racc
    assert score.tolist() == rscore, (params, a.tag)
    return acc, score


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_qk_scores_random(a):
    rng = np.random.default_rng(a.head_dim * 7 + a.q_bits)
    top = (1 << a.scale_bits) - 1
    scale, shift = useful_scale(a)
    cases = [(scale, shift), (scale, 0), (scale, 63), (top, 0), (0, 5), (1, 0), (top, 63)]
    cases += [(int(rng.integers(0, top + 1)), int(rng.integers(0, 64))) for _ in range(6)]
    in_range = 0
    for sc, sh in cases:
        for mode in (0, 1):
            msb, lsb = rand_planes(rng, a, int(rng.integers(1, 9)))
            _, score = check_qk(rand_q(rng, a), msb, lsb, PassParams(sc, sh, 0, 0, mode), a)
            in_range += int(np.sum((score > a.score.min_raw) & (score < a.score.max_raw)))
    assert in_range > 0  # the stimulus reaches the rounding region, not only saturation


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_qk_scores_extremes_saturate(a):
    lo_q = -(1 << (a.q_bits - 1))
    q = np.full(a.head_dim, lo_q)
    vmin = value_format(a).min_raw
    v = np.array([[vmin] * a.head_dim, [-vmin - 1] * a.head_dim, [0] * a.head_dim])
    msb, lsb = split_planes(v, a)
    top = (1 << a.scale_bits) - 1
    for mode in (0, 1):
        acc, score = check_qk(q, msb, lsb, PassParams(top, 0, 0, 0, mode), a)
        if mode == 0:
            # The largest possible |acc| (both operands at their minimum) fits acc_bits.
            assert acc[0] == a.head_dim * 2 ** (a.q_bits - 1) * 2 ** (a.value_bits - 1)
            assert acc[0] <= QFormat(a.acc_bits).max_raw
            assert acc[1] < 0
        # MSB-only rebuilds 0 as the midpoint 2**(L-1): q * 8 * top saturates low.
        third = 0 if mode == 0 else a.score.min_raw
        assert score.tolist() == [a.score.max_raw, a.score.min_raw, third]
        # Shift 63 rounds every product (|acc * scale| < 2**62) to 0.
        _, score = check_qk(q, msb, lsb, PassParams(top, 63, 0, 0, mode), a)
        assert score.tolist() == [0, 0, 0]


def test_qk_scores_half_up_ties_hand_written():
    a = PRESETS["ci"].attn
    q = np.zeros(a.head_dim, dtype=np.int64)
    q[0] = 1
    v = np.zeros((4, a.head_dim), dtype=np.int64)
    v[:, 0] = [1, -1, 3, -3]
    msb, lsb = split_planes(v, a)
    _, score = qk_scores(q, msb, lsb, PassParams(1, 1, 0, 0, 0), a)
    assert score.tolist() == [1, 0, 2, -1]  # 0.5, -0.5, 1.5, -1.5 rounded half up


def test_qk_scores_shape_and_range_errors():
    a = PRESETS["ci"].attn
    msb, lsb = rand_planes(np.random.default_rng(0), a, 2)
    p = PassParams(1, 0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"q must have shape \(16,\)"):
        qk_scores(np.zeros(a.head_dim + 1, dtype=np.int64), msb, lsb, p, a)
    with pytest.raises(ValueError, match="q must fit s8f0"):
        qk_scores(np.full(a.head_dim, 128), msb, lsb, p, a)


# (c) softmax ----------------------------------------------------------------------------------

def test_exp2_table_matches_exact_reference():
    for name, p in PRESETS.items():
        a = p.attn
        t = exp2_table(a)
        assert t == ref_table(a.score.frac, a.exp_bits), name
        assert t[0] == 2**a.exp_bits
        assert all(x > y for x, y in zip(t, t[1:]))  # strictly decreasing
    # The extremes of the allowed range (frac 1..10, exp_bits 8..24).
    for frac, eb in ((1, 8), (10, 24), (10, 8), (1, 24)):
        a = AttentionConfig(score=QFormat(24, frac), exp_bits=eb)
        assert exp2_table(a) == ref_table(frac, eb), (frac, eb)


def check_softmax(scores, a, msb_only=0, threshold=0):
    got = softmax(np.asarray(scores, dtype=np.int64), msb_only=msb_only, threshold=threshold,
                  cfg=a)
    want = ref_softmax(scores, a, msb_only, threshold)
    assert isinstance(got, SoftmaxResult)
    for name in ("max", "total", "z", "recip", "pmax", "refetch"):
        assert getattr(got, name) == want[name], (name, a.tag, len(scores))
    assert got.e.tolist() == want["e"]
    assert got.probs.tolist() == want["probs"]
    assert got.probs.dtype == np.int64
    n = len(scores)
    if n:
        # Properties of the spec.
        assert got.pmax == int(got.probs.max())
        assert got.e[int(np.argmax(scores))] == 2**a.exp_bits
        assert 2**got.z <= got.total < 2 ** (got.z + 1)
        assert 2 ** (a.recip_bits - 1) < got.recip <= 2**a.recip_bits
        assert np.all(a.prob.contains(got.probs))
        # Monotone: a larger score never gets a smaller probability (nor exponential).
        order = np.argsort(np.asarray(scores), kind="stable")
        assert np.all(np.diff(got.probs[order]) >= 0)
        assert np.all(np.diff(got.e[order]) >= 0)
    return got


def score_rows(a, rng, n):
    """Named rows of n raw scores in a.score."""
    lo, hi = a.score.min_raw, a.score.max_raw
    one = 1 << a.score.frac
    E = a.exp_bits
    yield "random", rng.integers(lo, hi + 1, n)
    yield "gauss", np.clip(np.rint(rng.normal(0, 3 * one, n)), lo, hi).astype(np.int64)
    peaked = np.clip(rng.integers(-8 * one, 0, n), lo, hi)
    peaked[rng.integers(0, n)] = min(hi, 12 * one)
    yield "peaked", peaked
    yield "flat", np.full(n, int(rng.integers(lo, hi + 1)))
    yield "near", np.clip(rng.integers(-2 * one, 1, n), lo, hi)  # every table entry used
    # Differences around the clamp of the shift (E + 1 and E + 2 integer bits).
    edge = hi - rng.integers((E + 1) * one - 2, min((E + 3) * one, hi - lo), n)
    edge[0] = hi
    yield "shift_edge", np.clip(edge, lo, hi)
    yield "extreme", rng.choice(np.array([lo, lo + 1, 0, hi - 1, hi]), n)
    yield "ties", rng.choice(np.array([0, -one, -one // 2, 3]), n)


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_softmax_matches_reference(a):
    rng = np.random.default_rng(a.exp_bits * 31 + a.head_dim)
    cap = next(p.topk.capacity for p in PRESETS.values() if p.attn == a)
    for n in (1, 2, 3, 17, cap):
        for _name, row in score_rows(a, rng, n):
            check_softmax(row, a)


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_softmax_empty_and_single(a):
    got = check_softmax([], a, msb_only=1, threshold=a.prob.max_raw)
    assert got.e.size == 0 and got.probs.size == 0 and got.refetch is False
    assert (got.max, got.total, got.pmax) == (a.score.min_raw, 0, 0)
    for s in (a.score.min_raw, 0, a.score.max_raw):
        got = check_softmax([s], a)
        # 1.0 does not fit the all-fraction prob format: it saturates to max_raw.
        assert got.probs.tolist() == [a.prob.max_raw] and got.pmax == a.prob.max_raw
        assert got.total == 2**a.exp_bits and got.recip == 2**a.recip_bits


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_softmax_extreme_rows(a):
    lo, hi = a.score.min_raw, a.score.max_raw
    got = check_softmax([lo, hi, lo, hi], a)
    assert got.e.tolist() == [0, 2**a.exp_bits, 0, 2**a.exp_bits]
    assert got.probs.tolist() == [0, 1 << (a.prob.frac - 1)] * 2
    got = check_softmax([hi] * 5 + [lo], a)
    assert got.e[-1] == 0


def test_softmax_exponential_at_the_shift_clamp():
    a = PRESETS["paper"].attn
    F, E = a.score.frac, a.exp_bits
    # d = (E+1) * 2**F: 2**E / 2**(E+1) = 1/2 rounds half up to 1; one more step rounds to 0.
    for d, want in (((E + 1) << F, 1), (((E + 1) << F) + 1, 0), ((E + 2) << F, 0),
                    (E << F, 1), (((E - 1) << F), 2)):
        got = check_softmax([0, -d], a)
        assert got.e[1] == want, d


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_softmax_refetch_decision(a):
    rng = np.random.default_rng(11)
    row = np.clip(rng.normal(0, 2 << a.score.frac, 40).astype(np.int64), a.score.min_raw,
                  a.score.max_raw)
    pmax = softmax(row, msb_only=0, threshold=0, cfg=a).pmax
    assert 0 < pmax < a.prob.max_raw
    assert check_softmax(row, a, msb_only=1, threshold=pmax).refetch is False  # not below
    assert check_softmax(row, a, msb_only=1, threshold=pmax + 1).refetch is True
    assert check_softmax(row, a, msb_only=0, threshold=a.prob.max_raw).refetch is False
    assert check_softmax(row, a, msb_only=1, threshold=0).refetch is False


def test_softmax_rejects_out_of_format_scores():
    a = PRESETS["paper"].attn
    with pytest.raises(ValueError, match="score must fit s16f8"):
        softmax([0, a.score.max_raw + 1], msb_only=0, threshold=0, cfg=a)


def test_softmax_monotone_random_rows():
    a = PRESETS["paper"].attn
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        row = rng.integers(-4000, 100, n)
        got = softmax(row, msb_only=0, threshold=0, cfg=a)
        i, j = rng.integers(0, n, 2)
        if row[i] > row[j]:
            assert got.probs[i] >= got.probs[j]
        assert got.pmax == got.probs.max()


# (d) prob_v -----------------------------------------------------------------------------------

def check_prob_v(probs, vmsb, vlsb, mode, a):
    got = prob_v(np.asarray(probs, dtype=np.int64), vmsb, vlsb, mode, a)
    assert got.dtype == np.int64 and got.shape == (a.head_dim,)
    assert got.tolist() == ref_prob_v(probs, vmsb, vlsb, mode, a)
    return got


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_prob_v_random(a):
    rng = np.random.default_rng(a.prob.width + 100 * a.out.frac)
    for m in (0, 1, 2, 7, 40):
        for mode in (0, 1):
            probs = rng.integers(0, a.prob.max_raw + 1, m)
            msb, lsb = rand_planes(rng, a, m)
            check_prob_v(probs, msb, lsb, mode, a)
            # Realistic probabilities (sum about 1) reach the rounding region.
            small = rng.multinomial(1 << a.prob.frac, np.ones(max(m, 1)) / max(m, 1))[:m]
            got = check_prob_v(np.minimum(small, a.prob.max_raw), msb, lsb, mode, a)
            assert np.all(got > a.out.min_raw) and np.all(got < a.out.max_raw)


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_prob_v_saturates(a):
    f = value_format(a)
    m = 32
    probs = np.full(m, a.prob.max_raw)
    for v, want in ((f.max_raw, a.out.max_raw), (f.min_raw, a.out.min_raw)):
        msb, lsb = split_planes(np.full((m, a.head_dim), v), a)
        assert check_prob_v(probs, msb, lsb, 0, a).tolist() == [want] * a.head_dim


def test_prob_v_half_even_ties_hand_written():
    a = PRESETS["paper"].attn  # out.frac = 0: shift by prob.frac = 11
    v = np.zeros((1, a.head_dim), dtype=np.int64)
    vals = [1, 3, -1, -3, 5, 7, 2, -5]
    v[0, :len(vals)] = vals
    msb, lsb = split_planes(v, a)
    got = check_prob_v([1 << (a.prob.frac - 1)], msb, lsb, 0, a)  # p = 1/2: ties x.5
    assert got[:len(vals)].tolist() == [0, 2, 0, -2, 2, 4, 1, -2]
    # Just above and below a tie round to nearest.
    got = check_prob_v([(1 << (a.prob.frac - 1)) + 1], msb, lsb, 0, a)
    assert got[:2].tolist() == [1, 2]
    got = check_prob_v([(1 << (a.prob.frac - 1)) - 1], msb, lsb, 0, a)
    assert got[:2].tolist() == [0, 1]


def test_prob_v_errors_and_empty():
    a = PRESETS["ci"].attn
    msb, lsb = rand_planes(np.random.default_rng(2), a, 3)
    with pytest.raises(ValueError, match="one V row per kept probability"):
        prob_v([1, 2], msb, lsb, 0, a)
    with pytest.raises(ValueError, match="probability must fit u7f7"):
        prob_v([1, 2, 128], msb, lsb, 0, a)
    empty = np.zeros((0, a.head_dim), dtype=np.int64)
    assert prob_v([], empty, empty, 0, a).tolist() == [0] * a.head_dim


# (e) head_pass --------------------------------------------------------------------------------

def ref_head_pass(cfg, q, kmsb, klsb, vmsb, vlsb, p):
    a = cfg.attn
    acc, score = ref_qk(q, kmsb, klsb, p.scale, p.shift, p.msb_only, a)
    sm = ref_softmax(score[:cfg.topk.capacity], a, p.msb_only, p.threshold)
    if sm["refetch"]:
        return acc, score, sm, None, None, None
    idx = ref_topk(sm["probs"], p.keep)
    kept = [sm["probs"][i] for i in idx]
    vm = np.asarray(vmsb).reshape(-1, a.head_dim)[idx]
    vl = np.asarray(vlsb).reshape(-1, a.head_dim)[idx]
    return acc, score, sm, idx, kept, ref_prob_v(kept, vm, vl, p.msb_only, a)


def check_head_pass(cfg, rng, n, keep, msb_only=0, threshold=0, scale_shift=None):
    a = cfg.attn
    q = rand_q(rng, a)
    kmsb, klsb = rand_planes(rng, a, n)
    vmsb, vlsb = rand_planes(rng, a, n)
    scale, shift = scale_shift or useful_scale(a)
    p = PassParams(scale, shift, keep, threshold, msb_only)
    got = head_pass(cfg, q, kmsb, klsb, vmsb, vlsb, p)
    acc, score, sm, idx, kept, out = ref_head_pass(cfg, q, kmsb, klsb, vmsb, vlsb, p)
    assert isinstance(got, PassResult)
    assert got.acc.tolist() == acc and got.score.tolist() == score
    assert got.probs.tolist() == sm["probs"] and got.softmax.pmax == sm["pmax"]
    assert got.refetch is sm["refetch"]
    assert got.truncated is (n > cfg.topk.capacity)
    if idx is None:
        assert got.kept_index is None and got.kept_prob is None and got.out is None
    else:
        assert got.kept_index.tolist() == idx
        assert got.kept_prob.tolist() == kept
        assert got.out.tolist() == out
        assert len(idx) == min(keep, n, cfg.topk.capacity)
    return got


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_head_pass_composition(cfg):
    rng = np.random.default_rng(cfg.topk.capacity + cfg.attn.head_dim)
    for n in (0, 1, 5, 33):
        for keep in (0, 1, n // 2, n, n + 7, cfg.topk.capacity):
            for mode in (0, 1):
                check_head_pass(cfg, rng, n, keep, msb_only=mode)


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_head_pass_keep_zero_outputs_zero(cfg):
    got = check_head_pass(cfg, np.random.default_rng(4), 9, 0)
    assert got.kept_index.size == 0 and got.out.tolist() == [0] * cfg.attn.head_dim


@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_head_pass_refetch_discards(cfg):
    rng = np.random.default_rng(8)
    got = check_head_pass(cfg, rng, 20, 5, msb_only=1, threshold=cfg.attn.prob.max_raw)
    assert got.refetch is True and got.out is None and got.probs.size == 20
    # The same threshold does not refetch a full-precision pass.
    got = check_head_pass(cfg, rng, 20, 5, msb_only=0, threshold=cfg.attn.prob.max_raw)
    assert got.refetch is False and got.out is not None


@pytest.mark.parametrize("name", ["ci", "paper"])
def test_head_pass_truncates_beyond_capacity(name):
    cfg = PRESETS[name]
    cap = cfg.topk.capacity
    rng = np.random.default_rng(12)
    got = check_head_pass(cfg, rng, cap + 3, cap)
    assert got.truncated is True
    assert got.score.size == cap + 3 and got.probs.size == cap
    assert got.kept_index.max() < cap
    assert check_head_pass(cfg, rng, cap, 3).truncated is False


def test_head_pass_checks_params_and_config():
    cfg = PRESETS["ci"]
    a = cfg.attn
    rng = np.random.default_rng(0)
    kmsb, klsb = rand_planes(rng, a, 2)
    q = rand_q(rng, a)
    with pytest.raises(ValueError, match="keep must be an integer in 0..127"):
        head_pass(cfg, q, kmsb, klsb, kmsb, klsb, PassParams(1, 0, 128, 0, 0))
    bad = SpAttenConfig(name="bad", topk=TopKConfig(lanes=1, capacity=64, score=QFormat(8)),
                        attn=a)
    with pytest.raises(ConfigError, match="topk.lanes"):
        head_pass(bad, q, kmsb, klsb, kmsb, klsb, PassParams(1, 0, 1, 0, 0))


# (f) scale_for --------------------------------------------------------------------------------

def best_error(factor, a):
    """Brute force over every shift and the two neighbouring scales: the smallest
    |scale * 2**-shift - factor| of any representable pair (scale in 1..2**scale_bits-1)."""
    f = Fraction(factor)
    top = 2**a.scale_bits - 1
    best = None
    for shift in range(64):
        x = f * 2**shift
        for s in {math.floor(x), math.ceil(x)}:
            s = min(max(s, 1), top)
            err = abs(Fraction(s, 2**shift) - f)
            best = err if best is None else min(best, err)
    return best


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_scale_for_is_closest(a):
    rng = np.random.default_rng(a.scale_bits)
    top = 2**a.scale_bits - 1
    factors = [float(2.0 ** x) for x in rng.uniform(-60, a.scale_bits - 0.1, 60)]
    factors += [1.0, 0.5, 3.0, float(top), top + 0.4, top - 0.6, 2.0**-63, 1.1 * 2.0**-64,
                0.999 * 2.0**-63, math.pi, 1e-5, 0.013]
    for factor in factors:
        scale, shift = scale_for(factor, a)
        assert type(scale) is int and type(shift) is int
        assert 1 <= scale <= top and 0 <= shift <= 63
        err = abs(Fraction(scale, 2**shift) - Fraction(factor))
        assert err == best_error(factor, a), factor
        # Full precision: the scale uses its top bit unless the shift is 0 (or 63).
        assert scale > top // 2 or shift in (0, 63), (factor, scale, shift)
    assert scale_for(float(top), a) == (top, 0)
    assert scale_for(2.0**-63, a)[0] * 2.0 ** -scale_for(2.0**-63, a)[1] == 2.0**-63
    assert scale_for(np.float64(0.25), a) == scale_for(0.25, a)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "1", None, [1.0]])
def test_scale_for_rejects_non_positive_or_non_numbers(bad):
    with pytest.raises(ValueError, match="factor must be a positive finite number"):
        scale_for(bad, PRESETS["paper"].attn)


@pytest.mark.parametrize("a", PRESET_ATTN)
def test_scale_for_too_large_or_too_small(a):
    top = 2**a.scale_bits - 1
    for factor in (top + 1.0, 10.0 * top, 1e12):
        with pytest.raises(ValueError, match=rf"needs more than scale_bits = {a.scale_bits} "
                                             r"bits at shift 0"):
            scale_for(factor, a)
    for factor in (2.0**-65, 1e-30, 5e-324):
        with pytest.raises(ValueError, match=rf"too small for a {a.scale_bits}-bit scale and a "
                                             r"shift of at most 63"):
            scale_for(factor, a)


def test_scale_for_huge_factor_message():
    # factor * 2**63 overflows float64 to inf for factors above ~1.9e289: checked first.
    with pytest.raises(ValueError, match="needs more than scale_bits"):
        scale_for(1e300, PRESETS["paper"].attn)


# (g) PassParams.check -------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", PRESET_CFGS)
def test_pass_params_bounds(cfg):
    a = cfg.attn
    his = dict(scale=2**a.scale_bits - 1, shift=63, keep=2**cfg.topk.count_bits - 1,
               threshold=a.prob.max_raw, msb_only=1)
    ok = PassParams(**his)
    assert ok.check(cfg) is ok
    assert PassParams(**{k: 0 for k in his}).check(cfg) is not None
    assert PassParams(**{k: np.int64(v) for k, v in his.items()}).check(cfg) is not None
    for name, hi in his.items():
        for bad in (hi + 1, -1):
            p = PassParams(**{**his, name: bad})
            with pytest.raises(ValueError) as info:
                p.check(cfg)
            assert str(info.value) == f"{name} must be an integer in 0..{hi}, not {bad!r}"
        for bad in (1.0, "1", None):
            with pytest.raises(ValueError, match=rf"^{name} must be an integer in 0\.\.{hi}"):
                PassParams(**{**his, name: bad}).check(cfg)


def test_pass_params_is_frozen():
    p = PassParams(1, 2, 3, 4, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = 5
