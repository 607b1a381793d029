# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.writeback.WriteBack against the DRAM images of the spec
(``generators.dram.keeplist_image`` and ``counters_image``, rows at their addresses).

Three layers, each in the controller's phases: a keep list (one position, partial and
full beats; random bubbles on ``keep``), the header once ``keeplist_busy`` is low, output
rows, the counter record (random bubbles on each). A DMA model takes ``wcmd`` with random
back-pressure and ``wdata`` beats (random back-pressure) only for commands already taken,
checking ``last`` on each burst's final beat. Checked: every write lands where the spec puts
it and each layer's memory equals its image (nothing dropped, duplicated or written
elsewhere)."""

import random

import pytest

from generators.dram import counters_image, keeplist_image
from generators.presets import PRESETS
from hdl.core.writeback import WriteBack
from sim import pysim
from sim.pysim import run_models


def _keep_beats(cfg, positions):
    P = cfg.topk.lanes
    out = []
    for b in range(max(1, -(-len(positions) // P))):
        lanes = positions[b * P:(b + 1) * P]
        out.append({"data": [0] * P, "index": lanes + [0] * (P - len(lanes)),
                    "count": len(lanes), "kth": 0, "truncated": 0,
                    "last": int((b + 1) * P >= len(positions))})
    return out


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_writeback_images(name, stall):
    cfg = PRESETS[name]
    bus = cfg.core.bus_bytes
    dut = WriteBack(cfg)
    seed = 91 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    cap, H = cfg.topk.capacity, cfg.core.heads
    per_beat = 8 * bus // 16
    row_bits = len(dut.rows.payload.data)
    layers = []
    for n in (per_beat * 2 + 1, 1, per_beat):   # a layer that runs keeps at least one
        tokens = sorted(rng.sample(range(cap), n))
        heads = sorted(rng.sample(range(H), rng.randrange(1, H + 1)))
        rows = [{"addr": 0x400000 + k * 0x1000, "data": rng.randrange(1 << row_bits)}
                for k in range(3)]
        rec = {"bytes_read": rng.randrange(1 << 48), "bytes_written": rng.randrange(1 << 48),
               "cycles": rng.randrange(1 << 48), "layer": rng.randrange(256),
               "mode": rng.randrange(2)}
        layers.append((tokens, heads, rows, rec))
    kbase, cbase = 0x10000, 0x20000
    mems, errors = [], []
    cmds = []                     # (addr, beats) taken and not fully written

    async def dma_cmd(ctx):
        r = random.Random(seed + 1)
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(dut.wcmd.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.wcmd.valid, dut.wcmd.payload)
            if valid and ready:
                cmds.append([int(payload.addr), int(payload.beats), 0])

    async def dma_data(ctx):
        r = random.Random(seed + 2)
        while True:
            ready = int(bool(cmds) and r.random() >= stall[1])
            ctx.set(dut.wdata.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.wdata.valid, dut.wdata.payload)
            if valid and ready:
                addr, beats, done = cmds[0]
                mems[-1][addr + done * bus] = int(payload.data)
                cmds[0][2] += 1
                if int(payload.last) != int(cmds[0][2] == beats):
                    errors.append(f"last wrong on beat {done} of {beats} at {addr:#x}")
                if cmds[0][2] == beats:
                    cmds.pop(0)

    async def driver(ctx):
        r = random.Random(seed + 3)
        ctx.set(dut.desc.keeplist, kbase)
        ctx.set(dut.desc.counters, cbase)
        for tokens, heads, rows, rec in layers:
            mems.append({})
            await pysim.stream_send(ctx, dut.keep, _keep_beats(cfg, tokens), rng=r,
                                    stall=stall[0])
            while ctx.get(dut.keeplist_busy) or cmds:
                await ctx.tick()
            await pysim.stream_send(ctx, dut.header, [{"tokens": len(tokens),
                                                       "heads": len(heads),
                                                       "mask": sum(1 << h for h in heads)}],
                                    rng=r, stall=stall[0])
            await pysim.stream_send(ctx, dut.rows, rows, rng=r, stall=stall[0])
            info = {"layer": rec["layer"], "mode": rec["mode"], "tokens": len(tokens),
                    "heads": len(heads), "written": 1}
            await pysim.stream_send(ctx, dut.record, [{**{k: rec[k] for k in (
                "bytes_read", "bytes_written", "cycles")}, "info": info}], rng=r,
                stall=stall[0])
            while cmds:
                await ctx.tick()

    run_models(dut, [driver], [dma_cmd, dma_data])
    assert errors == []
    for mem, (tokens, heads, rows, rec) in zip(mems, layers):
        want = {}
        for base, image in ((kbase, keeplist_image(cfg, tokens, heads)),
                            (cbase, counters_image(cfg, bytes_read=rec["bytes_read"],
                                                   bytes_written=rec["bytes_written"],
                                                   cycles=rec["cycles"], layer=rec["layer"],
                                                   generation=bool(rec["mode"]),
                                                   tokens=len(tokens), heads=len(heads)))):
            for b in range(len(image) // bus):
                want[base + b * bus] = int.from_bytes(image[b * bus:(b + 1) * bus], "little")
        for row in rows:
            for b in range(row_bits // (8 * bus)):
                want[row["addr"] + b * bus] = (row["data"] >> (8 * bus * b)) & ((1 << 8 * bus) - 1)
        assert mem == want
