"""hdl.common.narrow equals generators.numerics bit for bit, every rounding and overflow mode."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from generators.numerics import Overflow, QFormat, Rounding, fit, shift_round
from hdl.common import narrow

IN = QFormat(16, 0)
OUT = QFormat(8, 0)


def _values(rng):
    edge = [IN.min_raw, IN.min_raw + 1, -1, 0, 1, IN.max_raw - 1, IN.max_raw]
    # Exact halves and their neighbours at every shift, plus uniform draws.
    halves = [s * ((2 * q + 1) << 3) + d for q in range(-6, 6) for s in (1, -1)
              for d in (-1, 0, 1)]
    return np.array(edge + halves + list(rng.integers(IN.min_raw, IN.max_raw + 1, 300)))


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("shift", [0, 1, 4, 9])
def test_narrow_matches_numerics(rounding, overflow, shift):
    x = Signal(signed(IN.width))
    y = Signal(signed(OUT.width))
    m = Module()
    m.d.comb += y.eq(narrow.fit(narrow.shift_round(x, shift, rounding), OUT, overflow))
    xs = _values(np.random.default_rng(shift))
    want = fit(shift_round(xs, shift, rounding), OUT, overflow)
    got = []

    async def tb(ctx):
        for v in xs:
            ctx.set(x, int(v))
            got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    np.testing.assert_array_equal(np.array(got), want)
