"""Golden model of SPION's block-sparse attention pattern (one pattern per layer).

Ref: SPION (arXiv 2309.12578) and its released code, as ``../shared/docs/reference.md``
section 4 states it. From an L×L attention map ``A`` (post-softmax probabilities summed or
averaged over a calibration pass):

- **SPION-CF** (``variant="cf"``): a diagonal convolution with an F×F identity kernel and
  zero padding (``C[u, v] = Σ_{|t| ≤ F//2} A[u+t, v+t]``), B×B block pooling (``T``,
  nb×nb, nb = L/B), the q-quantile θ of all nb² pooled values by linear interpolation, the
  greedy walk (:func:`walk`) from every top-row and left-column seed marking the cells it
  moves into that are above θ, then the block diagonal OR'd in.
- **SPION-C** (``"c"``): the convolution and pooling, then the top ``⌊nb²·density − nb⌋``
  pooled cells (ties: the larger value, then the lower flat index) instead of θ and the walk.
- **SPION-F** (``"f"``): the walk on the pooled raw map, without the convolution.

Exactness: integer input gives an exact result. Pooling then *sums* instead of averaging (the
pattern is scale-invariant: θ scales with the cells and the walk only compares cells), ``q``
and ``density`` are taken as the decimals they are written as (0.96 = 96/100,
:func:`exact_fraction`), θ is a :class:`~fractions.Fraction` and ``T > θ`` is compared
exactly. Float input is computed in float64 with averages, as the released code does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["VARIANTS", "DEFAULT_FILTER", "SpionPattern", "exact_fraction", "check_map",
           "diagonal_conv", "block_pool", "quantile_threshold", "next_cell", "walk", "top_cells",
           "spion_pattern"]

VARIANTS = ("cf", "c", "f")
DEFAULT_FILTER = 31


@dataclass(frozen=True)
class SpionPattern:
    """One layer's pattern: ``mask`` (nb×nb bool, the kept blocks), the pooled map ``pooled``
    (sums for integer input, averages for float), ``theta`` (the threshold: a Fraction for
    integer input, a float otherwise; None for SPION-C) and ``density`` (kept / nb²)."""

    mask: np.ndarray
    pooled: np.ndarray
    theta: Fraction | float | None
    variant: str

    @property
    def density(self) -> float:
        return float(self.mask.mean())


def exact_fraction(value, name: str) -> Fraction:
    """``value`` as the exact decimal it is written as: ``"0.96"``, ``0.96`` and
    ``Fraction(24, 25)`` all give 24/25 (a float goes through its shortest repr)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        return Fraction(value) if isinstance(value, (int, Fraction, str)) else \
            Fraction(repr(float(value)))
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None


def check_map(attn, block: int) -> np.ndarray:
    """``attn`` as a square 2-D array of non-negative integers or floats whose side is a
    multiple of ``block``; ``ValueError`` naming the rule otherwise."""
    a = np.asarray(attn)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"the attention map must be a square 2-D array, not shape {a.shape}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, not {block!r}")
    if a.shape[0] == 0 or a.shape[0] % block:
        raise ValueError(f"the map's side L = {a.shape[0]} must be a positive multiple of the "
                         f"block B = {block}")
    if a.dtype.kind not in "iuf":
        raise ValueError(f"the attention map must hold integers or floats, not {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError("the attention map holds NaN or infinite entries")
    if (a < 0).any():
        raise ValueError(f"the attention map must be non-negative (its minimum is {a.min()})")
    if a.dtype.kind == "f":
        return a.astype(np.float64)
    return a.astype(object) if int(a.max(initial=0)) >= 1 << 40 else a.astype(np.int64)


def _check_filter(filt: int) -> int:
    if isinstance(filt, bool) or not isinstance(filt, (int, np.integer)) or filt < 1 \
            or filt % 2 == 0:
        raise ValueError(f"the filter size F must be a positive odd integer, not {filt!r}")
    return int(filt)


def diagonal_conv(a: np.ndarray, filt: int = DEFAULT_FILTER) -> np.ndarray:
    """``C[u, v] = Σ_{t=-h..h} a[u+t, v+t]`` with ``h = F // 2`` and zeros outside the map
    (the F×F identity kernel, stride 1, "same" zero padding)."""
    h = _check_filter(filt) // 2
    n = a.shape[0]
    padded = np.pad(a, h)
    out = np.zeros_like(a)
    for t in range(-h, h + 1):
        out = out + padded[h + t:h + t + n, h + t:h + t + n]
    return out


def block_pool(c: np.ndarray, block: int) -> np.ndarray:
    """Non-overlapping ``block``×``block`` pooling: sums for integers, averages for floats."""
    nb = c.shape[0] // block
    sums = c.reshape(nb, block, nb, block).sum(axis=(1, 3))
    return sums / float(block * block) if c.dtype.kind == "f" else sums


def quantile_threshold(pooled: np.ndarray, q) -> Fraction | float:
    """The ``q``-quantile of all pooled values by linear interpolation (NumPy's default):
    exact (a Fraction) for integer cells, float64 for float cells."""
    qf = exact_fraction(q, "the quantile q")
    if not 0 < qf < 1:
        raise ValueError(f"the quantile q must be in (0, 1), not {q}")
    if pooled.dtype.kind == "f":
        return float(np.quantile(pooled, float(qf)))
    x = sorted(int(v) for v in pooled.ravel())
    pos = qf * (len(x) - 1)
    i = math.floor(pos)
    if i + 1 >= len(x):
        return Fraction(x[i])
    return x[i] + (pos - i) * (x[i + 1] - x[i])


def _above(pooled: np.ndarray, theta) -> np.ndarray:
    """``pooled > theta`` elementwise, exactly for a Fraction ``theta``."""
    if isinstance(theta, Fraction):
        return np.array([[int(v) * theta.denominator > theta.numerator for v in row]
                         for row in pooled], dtype=bool)
    return pooled > theta


def next_cell(padded, x: int, y: int) -> tuple[int, int]:
    """One step of the walk from ``(x, y)`` over the zero-padded map: to the largest of
    ``D = (x+1, y)``, ``R = (x, y+1)`` and ``G = (x+1, y+1)`` by strict ``>``: if D > R then
    (D if D > G else G) else (R if R > G else G). Ties go diagonal; D == R > G goes right."""
    d, r, g = padded[x + 1][y], padded[x][y + 1], padded[x + 1][y + 1]
    if d > r:
        return (x + 1, y) if d > g else (x + 1, y + 1)
    return (x, y + 1) if r > g else (x + 1, y + 1)


def walk(pooled: np.ndarray, above: np.ndarray) -> np.ndarray:
    """SPION's "flood fill": a greedy monotone walk from every seed ``(0, k)`` and ``(k, 0)``,
    marking each cell it moves into that is ``above`` θ. It stops only at the padding row or
    column (index nb), never at a low cell; a seed is not marked for being a seed."""
    nb = pooled.shape[0]
    padded = np.zeros((nb + 1, nb + 1), dtype=pooled.dtype)
    padded[:nb, :nb] = pooled
    marks = np.zeros((nb, nb), dtype=bool)
    seeds = {(0, k) for k in range(nb)} | {(k, 0) for k in range(nb)}
    for x, y in sorted(seeds):
        while True:
            x, y = next_cell(padded, x, y)
            if x == nb or y == nb:
                break
            if above[x, y]:
                marks[x, y] = True
    return marks


def top_cells(pooled: np.ndarray, density) -> np.ndarray:
    """SPION-C: the top ``⌊nb²·density − nb⌋`` cells (none if that is negative), the larger
    value first, then the lower flat index."""
    d = exact_fraction(density, "the density")
    if not 0 < d <= 1:
        raise ValueError(f"the density must be in (0, 1], not {density}")
    nb = pooled.shape[0]
    count = max(0, math.floor(nb * nb * d - nb))
    flat = pooled.ravel()
    order = sorted(range(flat.size), key=lambda i: (-flat[i], i))
    keep = np.zeros(flat.size, dtype=bool)
    keep[order[:count]] = True
    return keep.reshape(nb, nb)


def spion_pattern(attn, block: int, *, variant: str = "cf", quantile=None,
                  filt: int = DEFAULT_FILTER, density=None) -> SpionPattern:
    """The block mask of one layer from its attention map (see the module docstring).
    ``quantile`` is required for ``cf`` and ``f``, ``density`` for ``c``; ``filt`` (F) applies
    to ``cf`` and ``c``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    a = check_map(attn, block)
    _check_filter(filt)
    if variant == "c" and density is None:
        raise ValueError("SPION-C needs a density")
    if variant != "c" and quantile is None:
        raise ValueError(f"SPION-{variant.upper()} needs a quantile q")
    conv = a if variant == "f" else diagonal_conv(a, filt)
    pooled = block_pool(conv, block)
    if variant == "c":
        theta, marked = None, top_cells(pooled, density)
    else:
        theta = quantile_threshold(pooled, quantile)
        marked = walk(pooled, _above(pooled, theta))
    mask = marked | np.eye(pooled.shape[0], dtype=bool)
    return SpionPattern(mask=mask, pooled=pooled, theta=theta, variant=variant)
