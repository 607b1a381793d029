"""sim.pysim.run: the run ends when its testbenches do, and a run still going at the deadline
fails (so a hang is reported, never waited out or passed)."""

import pytest
from amaranth.hdl import Module, Signal

from sim import pysim


def _counter():
    m = Module()
    m.count = Signal(16)
    m.d.sync += m.count.eq(m.count + 1)
    return m


def test_run_ends_with_its_testbenches():
    dut, seen = _counter(), []

    async def tb(ctx):
        await ctx.tick().repeat(10)
        seen.append(ctx.get(dut.count))

    pysim.run(dut, tb, deadline=1e-8 * 1_000_000)   # would take minutes if waited out
    assert seen == [10]


def test_a_hang_fails_at_the_deadline():
    dut = _counter()

    async def never_done(ctx):
        while ctx.get(dut.count) != 0x10000:    # a 16-bit count never gets there
            await ctx.tick()

    with pytest.raises(AssertionError, match="did not end within 200 cycles"):
        pysim.run(dut, never_done, deadline=1e-8 * 200)
