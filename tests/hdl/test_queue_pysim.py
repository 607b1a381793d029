# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.common.queue.Queue: a FIFO between two streams whose word is the
payload's layout. Random valid bubbles on ``w`` and ready back-pressure on ``r``: every
payload comes out once, in order, with every field intact; ``level`` never exceeds the depth;
an empty queue's write reaches ``r`` after the stated latency."""

import random

import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from hdl.common.queue import Queue
from sim import pysim

LAYOUT = data.StructLayout({"pos": unsigned(5), "flag": unsigned(1),
                            "vec": data.ArrayLayout(signed(3), 3)})


def _items(rng, count):
    return [{"pos": rng.randrange(32), "flag": rng.randrange(2),
             "vec": [rng.randrange(-4, 4) for _ in range(3)]} for _ in range(count)]


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("depth,stall", [(1, (0.0, 0.0)), (3, (0.3, 0.5)), (16, (0.6, 0.2)),
                                         (4, (0.0, 0.8))])
def test_queue_keeps_order_under_stalls(buffered, depth, stall):
    dut = Queue(LAYOUT, depth, buffered=buffered)
    seed = depth * 7 + int(buffered) + int(stall[1] * 10)
    rng = random.Random(seed)
    items = _items(rng, 120)
    got, levels = [], []

    async def send(ctx):
        await pysim.stream_send(ctx, dut.w, items, rng=rng, stall=stall[0])

    async def recv(ctx):
        await pysim.stream_recv(ctx, dut.r, rng=random.Random(seed + 1), stall=stall[1],
                                until_beats=len(items), on_beat=got.append)

    async def watch(ctx):
        while len(got) < len(items):
            _, _, level = await ctx.tick().sample(dut.level)
            levels.append(level)

    pysim.run(dut, send, recv, watch)
    assert got == items
    assert max(levels) <= depth and (stall[1] < 0.5 or max(levels) == depth)


@pytest.mark.parametrize("buffered,latency", [(True, 2), (False, 1)])
def test_queue_latency_and_level(buffered, latency):
    """A write into an empty queue is valid on ``r`` ``latency`` cycles later; ``level``
    counts what is held and a full queue refuses writes."""
    dut = Queue(unsigned(8), 2, buffered=buffered)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.w.payload, 0x5A)
        ctx.set(dut.w.valid, 1)
        await ctx.tick()
        ctx.set(dut.w.valid, 0)
        for cycle in range(1, 5):
            if ctx.get(dut.r.valid) and "valid" not in seen:
                seen["valid"] = cycle
            await ctx.tick()
        assert ctx.get(dut.r.payload) == 0x5A
        # fill it: two entries, then w.ready low
        ctx.set(dut.w.payload, 0x11)
        ctx.set(dut.w.valid, 1)
        await ctx.tick()
        seen["ready_full"] = ctx.get(dut.w.ready)
        seen["level"] = ctx.get(dut.level)

    pysim.run(dut, tb)
    assert seen["valid"] == latency
    assert seen["level"] == 2 and seen["ready_full"] == 0


@pytest.mark.parametrize("depth", [0, -1, 2.0, True])
def test_queue_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        Queue(unsigned(4), depth)


def test_queue_rejects_non_shape():
    with pytest.raises(TypeError):
        Queue("wide", 4)
