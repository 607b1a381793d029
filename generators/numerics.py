"""Fixed-point formats and the two named narrowing operations.

This module is the numeric spec shared by the hardware (``hdl``) and the golden model
(``sim.golden``). It imports NumPy only.

A :class:`QFormat` describes raw two's-complement (or unsigned) integers with an implied
binary point: ``real = raw * 2**-frac``; ``width`` counts the sign bit. Printed as ``s12f0``.

Every narrowing in the design is one of exactly two operations, each with a named mode:

- :func:`shift_round` (``x >> shift`` with :class:`Rounding` ``FLOOR``, ``HALF_UP`` or
  ``HALF_EVEN``);
- :func:`fit` (to a narrower :class:`QFormat` with :class:`Overflow` ``WRAP`` or ``SATURATE``).

The hardware builds the same operations, mode for mode, in ``hdl.common.narrow``
(checked bit for bit against these in ``tests/hdl/test_narrow.py``).
All golden arithmetic is on ``np.int64``; :class:`QFormat` refuses widths above 62 so that no
intermediate can overflow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["QFormat", "Rounding", "Overflow", "shift_round", "fit", "ceil_log2", "bits_for"]


class Rounding(enum.Enum):
    """How :func:`shift_round` drops bits."""

    FLOOR = "floor"  # arithmetic shift right: free in hardware
    HALF_UP = "half_up"  # add 2**(shift-1), then shift: one adder
    HALF_EVEN = "half_even"  # ties to even: adder plus a sticky-bit OR tree


class Overflow(enum.Enum):
    """What :func:`fit` does with a value outside the target format."""

    WRAP = "wrap"  # keep the low bits (two's complement wrap-around)
    SATURATE = "saturate"  # clamp to the nearest representable value


def ceil_log2(n: int) -> int:
    """Smallest ``b`` with ``2**b >= n`` (``n >= 1``), in exact integer arithmetic."""
    if n < 1:
        raise ValueError(f"ceil_log2 argument must be positive, not {n}")
    return (n - 1).bit_length()


def bits_for(n: int) -> int:
    """Width of an unsigned field that holds every value in ``0..n`` (at least 1)."""
    if n < 0:
        raise ValueError(f"bits_for argument must be non-negative, not {n}")
    return max(1, n.bit_length())


@dataclass(frozen=True)
class QFormat:
    """Fixed point: ``real = raw * 2**-frac``; ``width`` counts the sign bit if ``signed``."""

    width: int
    frac: int = 0
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise TypeError(f"QFormat width must be an int, not {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise TypeError(f"QFormat frac must be an int, not {self.frac!r}")
        if not 1 <= self.width <= 62:  # int64 golden arithmetic keeps headroom
            raise ValueError(f"QFormat width must be in 1..62, not {self.width}")
        if self.signed and self.width < 2:
            raise ValueError(f"a signed QFormat width must be at least 2, not {self.width}")

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - 1 if self.signed else self.width)) - 1

    def __str__(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.width}f{self.frac}"

    @classmethod
    def parse(cls, text: str) -> "QFormat":
        """Inverse of ``str()``: ``"s12f0"`` → ``QFormat(12, 0, True)``."""
        t = str(text).strip()
        try:
            if t[0] not in "su" or "f" not in t:
                raise ValueError
            width, frac = t[1:].split("f")
            return cls(int(width), int(frac), t[0] == "s")
        except (ValueError, IndexError):
            raise ValueError(f"QFormat must be written like 's12f0' or 'u8f4', not {text!r}")

    def contains(self, raw) -> np.ndarray:
        """Element-wise: is every raw value representable?"""
        raw = np.asarray(raw, dtype=np.int64)
        return (raw >= self.min_raw) & (raw <= self.max_raw)

    def check(self, raw, what: str = "value") -> np.ndarray:
        """Return ``raw`` as int64, or raise if any element is outside the format."""
        arr = np.asarray(raw, dtype=np.int64)
        bad = ~self.contains(arr)
        if np.any(bad):
            v = int(arr[bad].flat[0])
            raise ValueError(f"{what} must fit {self} ({self.min_raw}..{self.max_raw}), not {v}")
        return arr


def shift_round(x, shift: int, rounding: Rounding) -> np.ndarray:
    """``x * 2**-shift`` rounded to an integer by ``rounding`` (int64, exact).

    ``shift <= 0`` is an exact left shift.
    """
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << -shift
    if rounding is Rounding.FLOOR:
        return x >> shift
    if rounding is Rounding.HALF_UP:
        return (x + (1 << (shift - 1))) >> shift
    if rounding is Rounding.HALF_EVEN:
        q = x >> shift
        rem = x - (q << shift)
        half = 1 << (shift - 1)
        up = (rem > half) | ((rem == half) & ((q & 1) == 1))
        return q + up.astype(np.int64)
    raise TypeError(f"rounding must be a Rounding, not {rounding!r}")


def fit(x, fmt: QFormat, overflow: Overflow) -> np.ndarray:
    """Narrow raw integers ``x`` to ``fmt`` by ``overflow`` (int64, exact)."""
    x = np.asarray(x, dtype=np.int64)
    if overflow is Overflow.SATURATE:
        return np.clip(x, fmt.min_raw, fmt.max_raw)
    if overflow is Overflow.WRAP:
        mask = (1 << fmt.width) - 1
        u = x & mask
        if fmt.signed:
            u = np.where(u >= (1 << (fmt.width - 1)), u - (1 << fmt.width), u)
        return u
    raise TypeError(f"overflow must be an Overflow, not {overflow!r}")
