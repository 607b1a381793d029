"""Constant tables of the numeric specification, generated once for hardware and golden model.

The hardware reads them as memory initialisation (``hdl.attn.softmax``) and the golden model
(``sim.golden.attention``) indexes the very same tuples, so a table can never differ between
the two. See ``docs/numerics.md``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import AttentionConfig, SpAttenConfig
from .numerics import QFormat

__all__ = ["exp2_table", "exp2_format", "age_recip_table"]


@lru_cache(maxsize=None)
def _exp2_table(frac: int, exp_bits: int) -> tuple[int, ...]:
    f = np.arange(1 << frac, dtype=np.float64)
    real = np.exp2(exp_bits - f / (1 << frac))  # 2**E * 2**(-f / 2**F), in (2**(E-1), 2**E]
    return tuple(int(v) for v in np.rint(real).astype(np.int64))  # ties to even


def exp2_table(cfg: AttentionConfig) -> tuple[int, ...]:
    """``T[f] = round_half_even(2**E * 2**(-f / 2**F))`` for ``f = 0 .. 2**F - 1``.

    ``F = cfg.score.frac`` (the score's fraction bits), ``E = cfg.exp_bits``. ``T[0] = 2**E``
    exactly; every entry fits ``cfg.exp_width`` unsigned bits. float64 evaluates the
    exponential to far better than half an integer step at ``E <= 24``.
    """
    if not isinstance(cfg, AttentionConfig):
        raise TypeError(f"cfg must be an AttentionConfig, not {cfg!r}")
    t = _exp2_table(cfg.score.frac, cfg.exp_bits)
    assert t[0] == 1 << cfg.exp_bits and max(t) < 1 << cfg.exp_width
    return t


def exp2_format(cfg: AttentionConfig) -> QFormat:
    """The format of the table entries and of every exponential ``e``: ``u(E+1)fE``."""
    return QFormat(cfg.exp_width, cfg.exp_bits, signed=False)


@lru_cache(maxsize=None)
def _age_recip_table(frac: int, ages: int) -> tuple[int, ...]:
    # floor(2**B / a + 1/2) in integers: HALF_UP.
    return (0,) + tuple(((1 << (frac + 1)) + a) // (2 * a) for a in range(1, ages + 1))


def age_recip_table(cfg: SpAttenConfig) -> tuple[int, ...]:
    """``R[a] = floor(2**B / a + 1/2)`` for ages ``a = 1 .. topk.capacity`` (``R[0] = 0`` is
    never read), ``B = core.age_frac_bits``: the reciprocals by which age-normalised
    generation multiplies a token's importance (``docs/core.md``). ``R[1] = 2**B``; every
    entry fits ``B + 1`` unsigned bits."""
    if not isinstance(cfg, SpAttenConfig):
        raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
    t = _age_recip_table(cfg.core.age_frac_bits, cfg.topk.capacity)
    assert t[1] == 1 << cfg.core.age_frac_bits
    return t
