"""generators.numerics against exact pure-Python definitions (fractions.Fraction)."""

import math
from fractions import Fraction

import numpy as np
import pytest

from generators.numerics import Overflow, QFormat, Rounding, bits_for, ceil_log2, fit, shift_round

# QFormat ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width", list(range(2, 63)))
def test_signed_bounds(width):
    q = QFormat(width, 3, True)
    assert q.min_raw == -(2 ** (width - 1))
    assert q.max_raw == 2 ** (width - 1) - 1
    assert q.max_raw - q.min_raw + 1 == 2**width


@pytest.mark.parametrize("width", list(range(1, 63)))
def test_unsigned_bounds(width):
    q = QFormat(width, 0, False)
    assert q.min_raw == 0
    assert q.max_raw == 2**width - 1


def test_defaults_and_str():
    assert QFormat(12) == QFormat(12, 0, True)
    assert str(QFormat(12)) == "s12f0"
    assert str(QFormat(8, 4, False)) == "u8f4"
    assert str(QFormat(16, -3)) == "s16f-3"
    assert str(QFormat(62, 61, True)) == "s62f61"


@pytest.mark.parametrize("q", [QFormat(w, f, s) for w in (1, 2, 8, 12, 32, 62)
                               for f in (0, 1, 7, -2) for s in (True, False)
                               if not (s and w < 2)])
def test_parse_round_trip(q):
    assert QFormat.parse(str(q)) == q
    assert QFormat.parse(f"  {q}\n") == q


def test_parse_values():
    assert QFormat.parse("s12f0") == QFormat(12, 0, True)
    assert QFormat.parse("u8f4") == QFormat(8, 4, False)


@pytest.mark.parametrize("text", ["", " ", "12f0", "x12f0", "S12f0", "s12", "s12f", "sf0",
                                  "s12f0f1", "s12.5f0", "sxf0", "s12fx", "s1f0", "s63f0",
                                  "u0f0", "u63f0", "f"])
def test_parse_errors(text):
    with pytest.raises(ValueError, match="QFormat"):
        QFormat.parse(text)


@pytest.mark.parametrize("args,exc,fragment", [
    ((0,), ValueError, "1..62"),
    ((63,), ValueError, "1..62"),
    ((-4,), ValueError, "1..62"),
    ((1, 0, True), ValueError, "at least 2"),
    ((12.0,), TypeError, "width must be an int"),
    ((True,), TypeError, "width must be an int"),
    ((12, 0.5), TypeError, "frac must be an int"),
    ((12, False), TypeError, "frac must be an int"),
    (("12",), TypeError, "width must be an int"),
])
def test_constructor_errors(args, exc, fragment):
    with pytest.raises(exc, match=fragment):
        QFormat(*args)


def test_frozen_and_hashable():
    q = QFormat(8)
    with pytest.raises(AttributeError):
        q.width = 9
    assert len({QFormat(8), QFormat(8, 0, True), QFormat(8, 0, False)}) == 2


@pytest.mark.parametrize("q", [QFormat(8), QFormat(8, 0, False), QFormat(2), QFormat(1, 0, False)])
def test_contains_and_check(q):
    lo, hi = q.min_raw, q.max_raw
    vals = np.array([lo - 1, lo, hi, hi + 1])
    assert q.contains(vals).tolist() == [False, True, True, False]
    out = q.check([lo, hi])
    assert out.dtype == np.int64 and out.tolist() == [lo, hi]
    with pytest.raises(ValueError, match=rf"thing must fit {q} \({lo}\.\.{hi}\), not {hi + 1}"):
        q.check([lo, hi + 1, hi + 2], "thing")
    with pytest.raises(ValueError, match=rf"not {lo - 1}"):
        q.check(lo - 1)


def ref_shift_round(x: int, shift: int, rounding: Rounding) -> int:
    if shift <= 0:
        return x * 2 ** (-shift)
    v = Fraction(x, 2**shift)
    if rounding is Rounding.FLOOR:
        return math.floor(v)
    if rounding is Rounding.HALF_UP:
        return math.floor(v + Fraction(1, 2))
    if rounding is Rounding.HALF_EVEN:
        fl = math.floor(v)
        frac = v - fl
        if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and fl % 2 == 1):
            return fl + 1
        return fl
    raise AssertionError(rounding)


def test_ref_half_even_agrees_with_python_round():
    for num in range(-40, 41):
        v = Fraction(num, 4)
        assert ref_shift_round(num, 2, Rounding.HALF_EVEN) == round(v)


def _values(rng, shift):
    lim = 2**61
    rand = rng.integers(-lim, lim, 400)
    if shift > 0:
        # Exact ties (odd multiples of 2**(shift-1)) and their neighbours.
        q = rng.integers(-(2 ** (60 - shift)), 2 ** (60 - shift), 100)
        ties = (2 * q + 1) * (1 << (shift - 1))
        near = np.concatenate([ties, ties - 1, ties + 1])
    else:
        near = np.array([], dtype=np.int64)
    small = np.arange(-70, 71)
    return np.concatenate([rand, near, small, [lim - 1, -lim]]).astype(np.int64)


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("shift", [1, 2, 3, 5, 8, 13, 31, 32, 33, 59, 60])
def test_shift_round_matches_fraction(rounding, shift):
    rng = np.random.default_rng(shift * 7 + len(rounding.value))
    x = _values(rng, shift)
    got = shift_round(x, shift, rounding)
    assert got.dtype == np.int64 and got.shape == x.shape
    want = [ref_shift_round(int(v), shift, rounding) for v in x]
    assert got.tolist() == want


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("shift", [0, -1, -5, -12])
def test_shift_round_nonpositive_shift_is_exact_left_shift(rounding, shift):
    rng = np.random.default_rng(-shift)
    x = np.concatenate([rng.integers(-(2**48), 2**48, 300), np.arange(-9, 10)]).astype(np.int64)
    got = shift_round(x, shift, rounding)
    assert got.dtype == np.int64
    assert got.tolist() == [int(v) * 2 ** (-shift) for v in x]


def test_shift_round_hand_written():
    x = [-7, -6, -5, -3, -2, -1, 1, 2, 3, 5, 6, 7]  # shift 1: ±0.5, ±1, ±1.5, ±2.5, ±3, ±3.5
    assert shift_round(x, 1, Rounding.FLOOR).tolist() == [-4, -3, -3, -2, -1, -1,
                                                          0, 1, 1, 2, 3, 3]
    assert shift_round(x, 1, Rounding.HALF_UP).tolist() == [-3, -3, -2, -1, -1, 0,
                                                            1, 1, 2, 3, 3, 4]
    assert shift_round(x, 1, Rounding.HALF_EVEN).tolist() == [-4, -3, -2, -2, -1, 0,
                                                              0, 1, 2, 2, 3, 4]


def test_shift_round_scalar():
    out = shift_round(13, 2, Rounding.HALF_UP)
    assert out.dtype == np.int64 and out.shape == () and int(out) == 3


def test_shift_round_rejects_non_rounding():
    with pytest.raises(TypeError, match="rounding must be a Rounding"):
        shift_round([1, 2], 1, "floor")


# fit -------------------------------------------------------------------------------------

def ref_wrap(x: int, q: QFormat) -> int:
    m = 2**q.width
    return (x - q.min_raw) % m + q.min_raw


def ref_saturate(x: int, q: QFormat) -> int:
    return min(max(x, q.min_raw), q.max_raw)


FIT_FORMATS = [QFormat(w, f, s) for w in (1, 2, 3, 8, 12, 31, 32, 33, 61, 62)
               for f, s in ((0, True), (4, False)) if not (s and w < 2)]


@pytest.mark.parametrize("q", FIT_FORMATS, ids=str)
@pytest.mark.parametrize("overflow", list(Overflow))
def test_fit_matches_reference(q, overflow):
    rng = np.random.default_rng(q.width * 3 + q.signed)
    x = np.concatenate([
        rng.integers(-(2**62), 2**62, 300),
        rng.integers(q.min_raw, q.max_raw, 100, endpoint=True),
        [q.min_raw - 1, q.min_raw, q.max_raw, q.max_raw + 1, 0, -1, 1,
         2**q.width, -(2**q.width), 2**63 - 1, -(2**63)],
    ]).astype(np.int64)
    got = fit(x, q, overflow)
    assert got.dtype == np.int64 and got.shape == x.shape
    ref = ref_wrap if overflow is Overflow.WRAP else ref_saturate
    assert got.tolist() == [ref(int(v), q) for v in x]
    assert np.all(q.contains(got))


@pytest.mark.parametrize("overflow", list(Overflow))
def test_fit_is_identity_in_range(overflow):
    q = QFormat(6)
    x = np.arange(q.min_raw, q.max_raw + 1)
    assert fit(x, q, overflow).tolist() == x.tolist()


def test_fit_hand_written():
    s4 = QFormat(4)
    assert fit([8, -9, 17, -1], s4, Overflow.WRAP).tolist() == [-8, 7, 1, -1]
    assert fit([8, -9, 17, -1], s4, Overflow.SATURATE).tolist() == [7, -8, 7, -1]
    u4 = QFormat(4, 0, False)
    assert fit([16, -1, 17], u4, Overflow.WRAP).tolist() == [0, 15, 1]
    assert fit([16, -1, 17], u4, Overflow.SATURATE).tolist() == [15, 0, 15]


def test_fit_rejects_non_overflow():
    with pytest.raises(TypeError, match="overflow must be an Overflow"):
        fit([1], QFormat(8), "wrap")


# ceil_log2 / bits_for --------------------------------------------------------------------

def ref_ceil_log2(n):
    b = 0
    while 2**b < n:
        b += 1
    return b


def ref_bits_for(n):
    b = 1
    while 2**b <= n:
        b += 1
    return b


def _ints():
    out = set(range(2100))
    for e in range(80):
        out |= {2**e - 1, 2**e, 2**e + 1}
    return sorted(out)


def test_ceil_log2():
    for n in _ints():
        if n >= 1:
            assert ceil_log2(n) == ref_ceil_log2(n), n
    assert [ceil_log2(n) for n in (1, 2, 3, 4, 5, 1024, 1025)] == [0, 1, 2, 2, 3, 10, 11]


@pytest.mark.parametrize("n", [0, -1, -1024])
def test_ceil_log2_rejects_non_positive(n):
    with pytest.raises(ValueError, match=f"not {n}"):
        ceil_log2(n)


def test_bits_for():
    for n in _ints():
        assert bits_for(n) == ref_bits_for(n), n
    assert [bits_for(n) for n in (0, 1, 2, 3, 4, 64, 1023, 1024)] == [1, 1, 2, 2, 3, 7, 10, 11]


@pytest.mark.parametrize("n", [-1, -64])
def test_bits_for_rejects_negative(n):
    with pytest.raises(ValueError, match=f"not {n}"):
        bits_for(n)
