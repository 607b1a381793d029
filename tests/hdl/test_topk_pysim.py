"""Fast tier: amaranth.sim of hdl.topk.TopK against the golden model, every preset."""

import random
import zlib

import numpy as np
import pytest

from generators.config import TopKConfig
from generators.numerics import QFormat
from generators.presets import PRESETS
from hdl.topk import TopK
from sim import pysim, stimulus
from sim.scoreboard import Scoreboard, input_beats

# Packets per preset: the ci preset gets every edge case; the big presets a smaller sample
# (amaranth.sim runs a few thousand cycles per second at 16 lanes).
COUNTS = {"ci": 160, "paper": 6, "eighth": 3}


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("stall", [(0.0, 0.0), (0.3, 0.5)], ids=["nostall", "stall"])
def test_topk_matches_golden(name, stall):
    cfg = PRESETS[name].topk
    seed = 0x70C + zlib.crc32(name.encode()) % 1000
    rng = np.random.default_rng(seed)
    count = COUNTS[name]
    packets = stimulus.topk_packets(cfg, rng, count, edges=(name == "ci"))
    if name != "ci":  # the big presets: full packets with k = n/2, one edge, one random
        packets = [stimulus.topk_packet(cfg, rng, cfg.capacity, cfg.capacity // 2)] + \
            [stimulus.topk_packet(cfg, rng, 1, 1), stimulus.topk_packet(cfg, rng, 0, 3)] + \
            packets[: count - 3]
    _check(cfg, packets, seed, stall, name)


# Every split of the two-level histogram (high/low digit bits 1/0, 1/1, 2/1, ... 4/4), with
# one and several lanes, one and two buffers, and a key that is padded or not.
RADIX_CASES = [(1, 1, 5, 1), (2, 2, 7, 2), (3, 4, 9, 2), (4, 1, 8, 2), (5, 2, 10, 1),
               (6, 4, 12, 2), (7, 2, 11, 2), (8, 4, 13, 2)]


@pytest.mark.parametrize("rb,lanes,width,buffers", RADIX_CASES,
                         ids=[f"r{c[0]}p{c[1]}w{c[2]}b{c[3]}" for c in RADIX_CASES])
def test_topk_radix_splits(rb, lanes, width, buffers):
    cfg = TopKConfig(lanes=lanes, capacity=24 * lanes, score=QFormat(width), radix_bits=rb,
                     buffers=buffers)
    seed = 0x5EA + 97 * rb + lanes
    rng = np.random.default_rng(seed)
    _check(cfg, stimulus.topk_packets(cfg, rng, 60), seed, (0.3, 0.5), f"radix{rb}")


def _check(cfg, packets, seed, stall, name):
    """Stream ``packets`` through a TopK with random bubbles and back-pressure; every output
    beat must match the golden model and every packet must come out once."""
    dut = TopK(cfg)
    sb = Scoreboard(cfg, context=f"{name} seed={seed}")
    prng = random.Random(seed)
    in_stall, out_stall = stall

    async def producer(ctx):
        for scores, k in packets:
            sb.expect(scores, k)
            await pysim.stream_send(ctx, dut.i, input_beats(cfg, scores, k), rng=prng,
                                    stall=in_stall)

    async def consumer(ctx):
        await pysim.stream_recv(ctx, dut.o, rng=prng, stall=out_stall,
                                until_last=len(packets), on_beat=sb.got)

    # A deadline turns a hang (a lost or an extra element) into a reported failure.
    cycles = sum(4 * (cfg.levels + 1) * (len(s) // cfg.lanes + 12) for s, _ in packets)
    pysim.run(dut, producer, consumer, vcd_name=f"topk_{name}", deadline=cycles * 1e-8)
    assert sb.finish() is None, sb.finish()
    assert sb.packets == len(packets)
