# amaranth: UnusedElaboratable=no
"""hdl.common.stream: Fork delivers every beat to every output once, in order;
PacketSplit + PacketMerge around n delay lines of different lengths give back the input
stream unchanged. Random stalls on all ports."""

import random

import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.common.stream import Fork, PacketMerge, PacketSplit
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


class _Delay(wiring.Component):
    """A stream register chain of ``depth`` stages (each loads when empty or drained)."""

    def __init__(self, shape, depth):
        self._depth = depth
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        prev = self.i
        for d in range(self._depth):
            nxt = self.o if d == self._depth - 1 else stream.Signature(
                self.i.payload.shape()).create(path=(f"s{d}",))
            with m.If(~nxt.valid | nxt.ready):
                m.d.sync += [nxt.valid.eq(prev.valid), nxt.payload.eq(prev.payload)]
            m.d.comb += prev.ready.eq(~nxt.valid | nxt.ready)
            prev = nxt
        return m


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_split_merge_keep_packet_order(n, stall):
    from amaranth.lib import data
    layout = data.StructLayout({"v": unsigned(8), "last": unsigned(1)})
    m = Module()
    m.submodules.split = split = PacketSplit(layout, n)
    m.submodules.merge = merge = PacketMerge(layout, n)
    for j in range(n):  # copies of different latency, so packets finish out of order
        m.submodules[f"d{j}"] = d = _Delay(layout, 1 + 3 * ((n - j) % n))
        wiring.connect(m, getattr(split, f"o{j}"), d.i)
        wiring.connect(m, d.o, getattr(merge, f"i{j}"))
    rng = random.Random(n + int(stall * 10))
    items = []
    for p in range(13):  # packets of 1..5 beats
        size = rng.randint(1, 5)
        items += [{"v": len(items) % 256, "last": int(b == size - 1)} for b in range(size)]
    got = []

    async def send(ctx):
        await stream_send(ctx, split.i, items, rng=rng, stall=stall)

    async def recv(ctx):
        await stream_recv(ctx, merge.o, rng=random.Random(7), stall=stall, until_last=13,
                          on_beat=got.append)

    run(m, send, recv, deadline=1e-8 * (20 * len(items) + 100))  # a lost packet hangs
    assert got == items


@pytest.mark.parametrize("cls", [PacketSplit, PacketMerge])
def test_split_merge_reject_bad_arguments(cls):
    from amaranth.lib import data
    with pytest.raises(ValueError, match="n must be an integer of at least 2, not 1"):
        cls(data.StructLayout({"last": unsigned(1)}), 1)
    with pytest.raises(ValueError, match="shape must be a StructLayout with a 'last' field"):
        cls(unsigned(4), 2)
