"""sim.golden.spion against a slow, literal implementation written separately (per-cell
loops, Python Fractions), on hand-made grids for every tie rule of the walk, and on the
pattern's properties (the diagonal is kept, marks lie above θ, counts within q's bounds)."""

import math
from fractions import Fraction

import numpy as np
import pytest

from sim.golden import spion as S


# ---- the slow, literal reference -----------------------------------------------------------
def _slow_pattern(a, block, variant, q=None, filt=31, density=None):
    """Per-cell loops in exact arithmetic (Fractions); float input averages, as SPION does."""
    L = len(a)
    is_float = isinstance(a[0][0], float)
    val = [[Fraction(x) for x in row] for row in a]          # exact even for floats
    h = filt // 2
    if variant == "f":
        conv = val
    else:
        conv = [[sum((val[u + t][v + t] for t in range(-h, h + 1)
                      if 0 <= u + t < L and 0 <= v + t < L), Fraction(0))
                 for v in range(L)] for u in range(L)]
    nb = L // block
    pooled = [[sum((conv[bu * block + i][bv * block + j] for i in range(block)
                    for j in range(block)), Fraction(0)) for bv in range(nb)]
              for bu in range(nb)]
    if is_float:
        pooled = [[p / (block * block) for p in row] for row in pooled]
    if variant == "c":
        d = Fraction(str(density))
        count = max(0, math.floor(nb * nb * d - nb))
        cells = sorted(((pooled[x][y], -(x * nb + y)) for x in range(nb) for y in range(nb)),
                       reverse=True)[:count]
        marks = {(-i // nb, -i % nb) for _, i in cells}
        theta = None
    else:
        xs = sorted(p for row in pooled for p in row)
        pos = Fraction(str(q)) * (len(xs) - 1)
        i = math.floor(pos)
        theta = xs[i] if i + 1 >= len(xs) else xs[i] + (pos - i) * (xs[i + 1] - xs[i])
        marks = set()
        cell = lambda x, y: pooled[x][y] if x < nb and y < nb else 0   # noqa: E731
        for sx, sy in [(0, k) for k in range(nb)] + [(k, 0) for k in range(nb)]:
            x, y = sx, sy
            while x < nb and y < nb:
                d_, r_, g_ = cell(x + 1, y), cell(x, y + 1), cell(x + 1, y + 1)
                if d_ > r_:
                    x, y = (x + 1, y) if d_ > g_ else (x + 1, y + 1)
                elif r_ > g_:
                    x, y = x, y + 1
                else:
                    x, y = x + 1, y + 1
                if x < nb and y < nb and pooled[x][y] > theta:
                    marks.add((x, y))
    mask = [[(x, y) in marks or x == y for y in range(nb)] for x in range(nb)]
    return np.array(mask, dtype=bool), theta


CASES = [  # (L, B, F, q or density, variant)
    (32, 8, 31, 0.96, "cf"), (32, 4, 5, 0.9, "cf"), (24, 8, 3, 0.5, "f"),
    (32, 8, 1, 0.75, "f"), (48, 16, 31, 0.3, "c"), (40, 8, 7, 0.25, "c"),
    (64, 8, 31, 0.99, "cf"), (16, 16, 3, 0.5, "cf"),
]


@pytest.mark.parametrize("L,B,F,p,variant", CASES)
@pytest.mark.parametrize("kind", ["int", "banded", "float"])
def test_matches_slow_reference(L, B, F, p, variant, kind):
    rng = np.random.default_rng(L * 31 + B + F + len(kind))
    if kind == "int":
        a = rng.integers(0, 6, (L, L))               # few values: many ties
    elif kind == "banded":
        u, v = np.indices((L, L))
        a = np.where(abs(u - v) < L // 6, rng.integers(0, 1000, (L, L)), rng.integers(0, 3, (L, L)))
    else:
        a = rng.random((L, L))
    kw = {"density": p} if variant == "c" else {"quantile": p}
    got = S.spion_pattern(a, B, variant=variant, filt=F, **kw)
    want_mask, want_theta = _slow_pattern(a.tolist(), B, variant, q=p, filt=F, density=p)
    assert np.array_equal(got.mask, want_mask)
    if variant == "c":
        assert got.theta is None
    elif kind == "float":
        assert got.theta == pytest.approx(float(want_theta), rel=1e-12)
    else:
        assert got.theta == want_theta and isinstance(got.theta, Fraction)


def test_q_is_the_decimal_it_is_written_as():
    pooled = np.arange(101, dtype=np.int64).reshape(1, 101)
    assert S.quantile_threshold(pooled, 0.96) == 96
    assert S.quantile_threshold(pooled, "0.965") == Fraction(193, 2)
    assert S.exact_fraction(0.96, "q") == Fraction(24, 25)


# ---- the walk's tie rules, on hand-made grids ----------------------------------------------
@pytest.mark.parametrize("d,r,g,want", [
    (5, 3, 4, (1, 0)),   # D > R, D > G: down
    (5, 3, 5, (1, 1)),   # D > R, D == G: diagonal
    (5, 3, 7, (1, 1)),   # D > R, G > D: diagonal
    (3, 5, 4, (0, 1)),   # R > D, R > G: right
    (3, 5, 5, (1, 1)),   # R > D, R == G: diagonal
    (5, 5, 4, (0, 1)),   # D == R > G: right
    (5, 5, 5, (1, 1)),   # all equal: diagonal
    (0, 0, 0, (1, 1)),   # all zero: diagonal
])
def test_step_tie_rules(d, r, g, want):
    padded = [[9, r], [d, g]]
    assert S.next_cell(padded, 0, 0) == want


def test_walk_runs_through_low_cells_and_marks_only_what_it_enters():
    # From (0, 0) the walk goes right along the low row 0 (R > D, R > G at each step), then
    # has to step down the last column into the padding: it crosses low cells and marks
    # only the high ones it enters; seeds are never marked for being seeds.
    t = np.array([[9, 1, 1, 8],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0]], dtype=np.int64)
    above = t > 5
    marks = S.walk(t, above)
    assert marks[0, 3] and not marks[0, 0]
    assert marks.sum() == 1


def test_walk_stops_only_at_the_padding():
    t = np.zeros((5, 5), dtype=np.int64)
    t[4, 4] = 10                      # reached only by diagonal steps through zeros
    marks = S.walk(t, t > 0)
    assert marks[4, 4] and marks.sum() == 1


# ---- properties ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_properties(seed):
    rng = np.random.default_rng(seed)
    B = int(rng.choice([4, 8]))
    nb = int(rng.integers(2, 9))
    L = nb * B
    a = rng.integers(0, 50, (L, L)) * (rng.random((L, L)) < 0.3)
    q = [0.5, 0.9, 0.96, 0.99][seed % 4]
    variant = ["cf", "f"][seed % 2]
    p = S.spion_pattern(a, B, variant=variant, quantile=q, filt=int(rng.choice([1, 3, 31])))
    n = nb * nb
    assert p.mask.diagonal().all()
    off = p.mask & ~np.eye(nb, dtype=bool)
    assert not (off & ~S._above(p.pooled, p.theta)).any()
    i = math.floor(Fraction(str(q)) * (n - 1))
    assert nb <= p.mask.sum() <= nb + (n - 1 - i)
    c = S.spion_pattern(a, B, variant="c", density=0.5, filt=3)
    k = max(0, math.floor(n * Fraction(1, 2) - nb))
    assert max(nb, k) <= c.mask.sum() <= k + nb


def test_integer_result_is_scale_invariant():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 20, (32, 32))
    one = S.spion_pattern(a, 8, quantile=0.9, filt=5)
    many = S.spion_pattern(a * 1000, 8, quantile=0.9, filt=5)
    assert np.array_equal(one.mask, many.mask) and many.theta == 1000 * one.theta


def test_huge_integers_stay_exact():
    a = np.full((8, 8), 1 << 50, dtype=np.int64)
    a[0, 7] = (1 << 50) + 1
    p = S.spion_pattern(a, 4, variant="f", quantile=0.5)
    assert p.pooled.dtype == object and p.pooled[0, 1] == 16 * (1 << 50) + 1


@pytest.mark.parametrize("args,kw,msg", [
    ((np.zeros((4, 5)), 1), {"quantile": 0.5}, "square"),
    ((np.zeros((6, 6)), 4), {"quantile": 0.5}, "multiple of the block"),
    ((-np.ones((4, 4)), 2), {"quantile": 0.5}, "non-negative"),
    ((np.ones((4, 4)), 2), {"quantile": 1.0}, r"in \(0, 1\)"),
    ((np.ones((4, 4)), 2), {"quantile": 0}, r"in \(0, 1\)"),
    ((np.ones((4, 4)), 2), {"quantile": 0.5, "filt": 4}, "positive odd"),
    ((np.ones((4, 4)), 2), {"variant": "x", "quantile": 0.5}, "variant must be"),
    ((np.ones((4, 4)), 2), {"variant": "c"}, "needs a density"),
    ((np.ones((4, 4)), 2), {}, "needs a quantile"),
    ((np.ones((4, 4)), 2), {"variant": "c", "density": 1.5}, r"in \(0, 1\]"),
    ((np.full((4, 4), np.nan), 2), {"quantile": 0.5}, "NaN"),
    ((np.array([["a"]]), 1), {"quantile": 0.5}, "integers or floats"),
])
def test_bad_input_is_named(args, kw, msg):
    with pytest.raises(ValueError, match=msg):
        S.spion_pattern(*args, **kw)
