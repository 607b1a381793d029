# amaranth: UnusedElaboratable=no
"""hdl.common.stream.Fork: every beat reaches every output once, in order, under random
stalls on all ports."""

import random

import pytest
from amaranth.hdl import unsigned

from hdl.common.stream import Fork
from sim.pysim import run, stream_recv, stream_send


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_fork_delivers_every_beat_to_every_output(n, stall):
    from amaranth.lib import data
    layout = data.StructLayout({"v": unsigned(8), "last": unsigned(1)})
    dut = Fork(layout, n)
    items = [{"v": i, "last": int(i % 5 == 4)} for i in range(60)]
    got = [[] for _ in range(n)]
    rng = random.Random(n * 10 + int(stall * 10))

    async def send(ctx):
        await stream_send(ctx, dut.i, items, rng=rng, stall=stall)

    def recv(j):
        async def tb(ctx):
            await stream_recv(ctx, getattr(dut, f"o{j}"), rng=random.Random(j), stall=stall,
                              until_last=12, on_beat=got[j].append)
        return tb

    run(dut, send, *[recv(j) for j in range(n)])
    for j in range(n):
        assert got[j] == items


def test_fork_rejects_one_output():
    with pytest.raises(ValueError, match="n must be an integer of at least 2, not 1"):
        Fork(unsigned(4), 1)
