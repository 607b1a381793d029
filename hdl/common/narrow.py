"""The two named narrowing operations of ``generators.numerics``, built as hardware.

Same definitions, same modes: ``shift_round(x, shift, rounding)`` and
``fit(x, fmt, overflow)`` return Amaranth values that equal, bit for bit, what
:func:`generators.numerics.shift_round` and :func:`generators.numerics.fit` compute on int64
(``tests/hdl/test_narrow.py`` checks every mode against them).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, Value, signed, unsigned

from generators.numerics import Overflow, QFormat, Rounding

__all__ = ["shift_round", "fit"]


def shift_round(x, shift: int, rounding: Rounding) -> Value:
    """``x * 2**-shift`` rounded by ``rounding``; ``shift <= 0`` is an exact left shift."""
    x = Value.cast(x)
    if not isinstance(rounding, Rounding):
        raise TypeError(f"rounding must be a Rounding, not {rounding!r}")
    if shift <= 0:
        return x << -shift
    if rounding is Rounding.FLOOR:
        return x >> shift  # arithmetic for signed x, like NumPy's >> on int64
    if rounding is Rounding.HALF_UP:
        return (x + (1 << (shift - 1))) >> shift
    # HALF_EVEN: round half up, except an exact half whose quotient is even stays down.
    q = x >> shift
    rem = x.as_unsigned()[:shift]
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & q[0])
    return q + up


def fit(x, fmt: QFormat, overflow: Overflow) -> Value:
    """Narrow ``x`` to ``fmt`` by ``overflow`` (``SATURATE`` clamps, ``WRAP`` keeps low bits)."""
    x = Value.cast(x)
    shape = signed(fmt.width) if fmt.signed else unsigned(fmt.width)
    if overflow is Overflow.WRAP:
        return x[:fmt.width].as_signed() if fmt.signed else x[:fmt.width]
    if overflow is Overflow.SATURATE:
        clamped = Mux(x > fmt.max_raw, fmt.max_raw, Mux(x < fmt.min_raw, fmt.min_raw, x))
        return Cat(clamped[:fmt.width]).as_signed() if shape.signed else clamped[:fmt.width]
    raise TypeError(f"overflow must be an Overflow, not {overflow!r}")
