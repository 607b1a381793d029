# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.heads.HeadImportance against sim.golden.core: head importance
(sum of |out| per accepted pass, saturating) and cascade head selection (the golden
``select`` over the candidate heads: ties to the lower head, bad keep counts). Output beats
of random heads, including full-scale ones that saturate, interleaved with selection chains;
random bubbles on the inputs, random back-pressure on the outputs."""

import random
from dataclasses import replace

import numpy as np
import pytest

from generators.presets import PRESETS
from hdl.core.heads import HeadImportance
from sim import pysim
from generators.status import Status
from sim.golden.select import DescriptorError, select


def _plan(cfg, rng, steps):
    H, L, D = cfg.core.heads, cfg.core.layers, cfg.attn.head_dim
    lo, hi = -(1 << (cfg.attn.out.width - 1)), (1 << (cfg.attn.out.width - 1)) - 1
    himp = np.zeros(H, dtype=np.int64)
    masks = np.zeros((L, H), dtype=bool)
    top = (1 << cfg.core.head_imp_bits) - 1
    plan, expect_keep, expect_status = [], [], []
    saturated = False
    for step in range(steps):
        beats = []
        for _ in range(int(rng.integers(0, 6))):
            h = int(rng.integers(0, H))
            scale = [0, 3, hi][int(rng.integers(3))]  # zero rows make ties
            vec = rng.integers(max(lo, -scale), scale + 1, D) if scale else np.zeros(D, int)
            if rng.random() < 0.05:
                vec = np.full(D, lo)                     # |most negative| = 2**(w-1)
            beats.append({"head": h, "data": [int(x) for x in vec]})
            saturated |= himp[h] + int(np.abs(vec).sum()) > top
            himp[h] = min(himp[h] + int(np.abs(vec).sum()), top)
        n = int(rng.integers(1, H + 1))
        layer = step % L
        c = {"n": n, "all": int(layer == 0), "src": max(0, layer - 1), "has_upper": 0,
             "upper": 0, "dst": layer, "store": int(rng.random() < 0.8)}
        if layer and rng.random() < 0.3:
            c.update(has_upper=1, upper=int(rng.integers(0, L)))
        listed = np.ones(n, bool) if c["all"] else masks[c["src"], :n].copy()
        if c["has_upper"]:
            listed &= masks[c["upper"], :n]
        cand = np.flatnonzero(listed)
        keep = int(rng.integers(1, cand.size + 1)) if cand.size else 1
        if rng.random() < 0.15:
            keep = [0, cand.size + 1][int(rng.integers(2))]
        c["keep"] = keep
        try:
            kept = select(cfg, cand, himp[cand], keep)
            if c["store"]:  # a check-only command leaves the mask as it was
                masks[layer] = False
                masks[layer, kept] = True
            expect_keep.append({"mask": int(sum(1 << int(k) for k in kept)),
                                "count": int(kept.size)})
            code = Status.OK
        except DescriptorError as e:
            code = e.status
        expect_status.append({"code": int(code), "candidates": int(cand.size)})
        plan.append((beats, c))
    return plan, expect_keep, expect_status, saturated


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.3, 0.5)),
                                        ("paper", (0.3, 0.5))])
def test_heads_match_golden(name, stall):
    cfg = PRESETS[name]
    if name == "ci":  # narrow accumulators, so that they saturate
        cfg = replace(cfg, core=replace(cfg.core, head_imp_bits=14))
    dut = HeadImportance(cfg)
    seed = 0x4EAD5 + int(stall[1] * 10) + len(name)
    plan, expect_keep, expect_status, saturated = _plan(cfg, np.random.default_rng(seed), 60)
    assert saturated or name != "ci"
    assert {s["code"] for s in expect_status} == {0, 1}
    rng = random.Random(seed)
    got_keep, got_status = [], []

    async def send(ctx):
        for i, (beats, c) in enumerate(plan):
            while len(got_status) < i:
                await ctx.tick()
            await pysim.stream_send(ctx, dut.o, beats, rng=rng, stall=stall[0])
            await pysim.stream_send(ctx, dut.cmd, [c], rng=rng, stall=stall[0])

    def recv(port, out, count):
        async def tb(ctx):
            await pysim.stream_recv(ctx, port, rng=random.Random(seed + len(out)),
                                    stall=stall[1], until_beats=count, on_beat=out.append)
        return tb

    cycles = len(plan) * (cfg.core.heads + 40)
    pysim.run(dut, send, recv(dut.keep, got_keep, len(expect_keep)),
              recv(dut.status, got_status, len(expect_status)), vcd_name="heads",
              deadline=cycles / (1 - max(stall)) * 1e-8)
    assert got_status == expect_status
    assert got_keep == expect_keep
