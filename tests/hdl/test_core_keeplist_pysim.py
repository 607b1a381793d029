# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.keeplist.KeepList against a reference model (a Python list per
layer): keep lists of several lengths (empty, one beat, partial last beat, full capacity)
pass from ``i`` to ``o`` unchanged under random valid bubbles and ready back-pressure,
nothing dropped or duplicated; then slots read through each of the three read ports
(random ``en`` gaps; every slot of a short list, 42 of a long one) give their positions the
cycle after ``en`` and hold them while ``en`` is low; each list starts again at slot 0."""

import random

import pytest

from generators.presets import PRESETS
from hdl.core.keeplist import READERS, KeepList
from sim import pysim


def _beats(cfg, positions):
    P = cfg.topk.lanes
    out = []
    for b in range(max(1, -(-len(positions) // P))):
        lanes = positions[b * P:(b + 1) * P]
        last = (b + 1) * P >= len(positions)
        out.append({"data": [0] * P, "index": lanes + [0] * (P - len(lanes)),
                    "count": len(lanes), "kth": 0, "truncated": 0, "last": int(last)})
    return out


def _lists(cfg, rng):
    cap, P = cfg.topk.capacity, cfg.topk.lanes
    sizes = [0, 1, P + 1, cap, rng.randrange(1, cap)]
    return [sorted(rng.sample(range(cap), n)) for n in sizes]


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_keeplist_passes_and_stores(name, stall):
    cfg = PRESETS[name]
    dut = KeepList(cfg)
    seed = len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    lists = _lists(cfg, rng)
    got, reads = [], {r: [] for r in READERS}

    async def tb(ctx):
        for positions in lists:
            beats = _beats(cfg, positions)
            out = []
            # the sender and the receiver in one process: drive a beat, accept with stalls
            for beat in beats:
                while rng.random() < stall[0]:
                    ctx.set(dut.i.valid, 0)
                    ctx.set(dut.o.ready, int(rng.random() >= stall[1]))
                    _, _, ov, op = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                    if ov and ctx.get(dut.o.ready):
                        out.append(pysim.const_to_py(op))
                ctx.set(dut.i.payload, beat)
                ctx.set(dut.i.valid, 1)
                while True:
                    ready = int(rng.random() >= stall[1])
                    ctx.set(dut.o.ready, ready)
                    _, _, ov, op, ir = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               dut.i.ready)
                    if ov and ready:
                        out.append(pysim.const_to_py(op))
                    if ir != ready:
                        raise AssertionError("i.ready is not o.ready")
                    if ready:
                        break
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            got.append(out)
            # read slots through every port, in random order, with en gaps (every slot of
            # the short lists, the first and last and 40 others of the long ones)
            for r in READERS:
                port = getattr(dut, r)
                n = len(positions)
                slots = (rng.sample(range(n), n) if n <= 64 else
                         [0, n - 1] + rng.sample(range(1, n - 1), 40))
                for slot in slots:
                    ctx.set(port.slot, slot)
                    ctx.set(port.en, 1)
                    await ctx.tick()
                    ctx.set(port.en, 0)
                    ctx.set(port.slot, rng.randrange(cfg.topk.capacity))
                    held = []
                    for _ in range(rng.randrange(1, 3)):
                        held.append(ctx.get(port.pos))
                        await ctx.tick()
                    reads[r].append((len(got) - 1, slot, held))

    pysim.run(dut, tb)
    for positions, out in zip(lists, got):
        assert out == _beats(cfg, positions)
    for r in READERS:
        assert {(k, slot) for k, slot, _ in reads[r]} >= {(k, 0) for k, p in enumerate(lists)
                                                            if p}
        for k, slot, held in reads[r]:
            assert held == [lists[k][slot]] * len(held), (r, k, slot)
