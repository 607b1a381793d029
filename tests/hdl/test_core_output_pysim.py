# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.output.OutputPath against a reference model: output vectors on
``o`` and their tags (position, head) on ``tags``, both with random valid bubbles; ``imp``
and ``row`` taken with random back-pressure. Checked: each vector goes out once on ``imp``
with its tag's head and once on ``row`` as the OUT row at ``generators.dram.row_addr`` of its
position and head (packed by ``generators.dram.pack_row``), in order, nothing dropped or
duplicated; no vector is taken while a row is held; ``written`` is high exactly in the
cycles a row is taken."""

import random

import pytest

from generators.dram import pack_row, row_addr
from generators.presets import PRESETS
from hdl.core.output import OutputPath
from sim import pysim
from sim.pysim import run_models


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.6))])
def test_output_path_matches_model(name, stall):
    cfg = PRESETS[name]
    a = cfg.attn
    dut = OutputPath(cfg)
    seed = 81 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    count, base = 30, 0x200000
    w = a.out.width
    vecs = [[rng.randrange(-(1 << (w - 1)), 1 << (w - 1)) for _ in range(a.head_dim)]
            for _ in range(count)]
    tags = [{"pos": rng.randrange(cfg.topk.capacity), "head": rng.randrange(cfg.core.heads)}
            for _ in range(count)]
    imps, rows, errors = [], [], []

    async def send_o(ctx):
        ctx.set(dut.desc.out, base)
        await pysim.stream_send(ctx, dut.o, [{"data": v} for v in vecs],
                                rng=random.Random(seed + 1), stall=stall[0])

    async def send_tags(ctx):
        await pysim.stream_send(ctx, dut.tags, tags, rng=random.Random(seed + 2),
                                stall=stall[0])

    async def recv_imp(ctx):
        await pysim.stream_recv(ctx, dut.imp, rng=random.Random(seed + 3), stall=stall[1],
                                until_beats=count, on_beat=imps.append)

    async def recv_row(ctx):
        r = random.Random(seed + 4)
        while len(rows) < count:
            ready = int(r.random() >= stall[1])
            ctx.set(dut.row.ready, ready)
            _, _, valid, payload, written, ov, ordy = await ctx.tick().sample(
                dut.row.valid, dut.row.payload, dut.written, dut.o.valid, dut.o.ready)
            if valid and ready:
                rows.append(pysim.const_to_py(payload))
            if written != (valid and ready):
                errors.append("written is not the row's transfer")
            if ov and ordy and valid:
                errors.append("a vector was taken while a row is held")

    run_models(dut, [send_o, send_tags, recv_imp, recv_row])
    assert errors == []
    assert imps == [{"head": t["head"], "data": v} for t, v in zip(tags, vecs)]
    assert rows == [{"addr": row_addr(cfg, base, w, t["head"], t["pos"]),
                     "data": int.from_bytes(pack_row(cfg, v, w), "little")}
                    for t, v in zip(tags, vecs)]
