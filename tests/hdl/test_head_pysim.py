# amaranth: UnusedElaboratable=no
"""amaranth.sim of the head pipeline (hdl.attn.head.Head) against the golden model.

Every output stream (dec, p, vreq, o) is compared beat by beat with ``sim.attn_stim``'s
expected beats; random bubbles on q, k and v, random back-pressure on every output; the V
rows are served by a responder that answers each request in order.
"""

import random
from dataclasses import replace

import numpy as np
import pytest

from generators.config import ConfigError
from generators.presets import PRESETS
from hdl.attn.head import Head
from sim import attn_stim as S
from sim import pysim
from sim.scoreboard import StreamChecker


def _queries(cfg, rng, count):
    sizes = [0, 1, cfg.attn.lanes + 1, cfg.topk.capacity, cfg.topk.capacity + 2]
    out = []
    for j in range(count):
        n = sizes[j] if j < len(sizes) else int(rng.integers(1, cfg.topk.capacity + 1))
        p0 = S.random_pass(cfg, rng, n, kind=S.KINDS[j % 3])
        out.append(p0)
        if p0.result.refetch:  # the host's answer: the same query at full precision
            pr = replace(p0.params, msb_only=0)
            out.append(S.Pass(p0.q, p0.kmsb, p0.klsb, p0.vmsb, p0.vlsb, pr,
                              S.head_pass(cfg, p0.q, p0.kmsb, p0.klsb, p0.vmsb, p0.vlsb, pr)))
    return out


def run_head(cfg, passes, *, stall, seed):
    dut = Head(cfg)
    chk = StreamChecker(context=f"head {cfg.name} seed={seed}")
    accepted = [p for p in passes if not p.result.refetch]
    for p in passes:
        chk.expect("dec", [S.decision_beat(cfg, p)])
        chk.expect("p", S.prob_beats(cfg, p))
        chk.expect("vreq", S.vreq_beats(cfg, p))
        chk.expect("o", S.out_beat(cfg, p))
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    in_stall, out_stall = stall
    requests = []  # vreq beats seen, answered in order by the V responder

    async def send_q(ctx):
        await pysim.stream_send(ctx, dut.q, [S.query_beat(cfg, p) for p in passes], rng=rng,
                                stall=in_stall)

    async def send_k(ctx):
        await pysim.stream_send(ctx, dut.k, [b for p in passes for b in S.key_beats(cfg, p)],
                                rng=rng, stall=in_stall)

    def recv(port, name, count, *, packets=True):
        """Take ``count`` packets (``last`` beats), or ``count`` beats if not ``packets``."""
        def on_beat(beat):
            chk.got(name, beat)
            if name == "vreq":
                requests.append(beat)

        async def tb(ctx):
            await pysim.stream_recv(ctx, port, rng=rng, stall=out_stall, on_beat=on_beat,
                                    **{"until_last" if packets else "until_beats": count})
        return tb

    async def serve_v(ctx):
        served = 0
        vpass = 0
        layout = dut.v.payload.shape()
        while vpass < len(accepted):
            if served >= len(requests):
                await ctx.tick()
                continue
            req = requests[served]
            while rng.random() < in_stall:
                ctx.set(dut.v.valid, 0)
                await ctx.tick()
            ctx.set(dut.v.payload, layout.const(S.value_beat(cfg, accepted[vpass], req, nprng)))
            ctx.set(dut.v.valid, 1)
            await ctx.tick().until(dut.v.ready)
            ctx.set(dut.v.valid, 0)
            served += 1
            vpass += int(req["last"])

    cycles = sum(8 * (p.n // cfg.attn.lanes) + 4 * cfg.topk.rows + 200 for p in passes)
    pysim.run(dut, send_q, send_k, recv(dut.p, "p", len(accepted)),
              recv(dut.vreq, "vreq", len(accepted)),
              recv(dut.dec, "dec", len(passes), packets=False),
              recv(dut.o, "o", len(accepted), packets=False), serve_v,
              vcd_name=f"head_{cfg.name}", deadline=cycles / max(0.1, 1 - max(stall)) * 1e-8)
    assert chk.finish() is None, chk.finish()
    return chk


@pytest.mark.parametrize("stall", [(0.0, 0.0), (0.3, 0.5)], ids=["nostall", "stall"])
def test_head_ci_matches_golden(stall):
    cfg = PRESETS["ci"]
    seed = 0x4EAD + int(stall[0] * 10)
    passes = _queries(cfg, np.random.default_rng(seed), 14)
    assert any(p.result.refetch for p in passes) and any(not p.result.refetch for p in passes)
    chk = run_head(cfg, passes, stall=stall, seed=seed)
    assert chk.checked["dec"] == len(passes)


@pytest.mark.parametrize("engines", [1, 3])
def test_head_ci_any_engine_count(engines):
    """The presets use 2 local-value top-k engines; 1 (no split or merge) and 3 (a merge
    order that is not a parity) must give the same beats."""
    base = PRESETS["ci"]
    cfg = replace(base, attn=replace(base.attn, topk_engines=engines))
    seed = 0xE9 + engines
    passes = _queries(cfg, np.random.default_rng(seed), 12)
    chk = run_head(cfg, passes, stall=(0.3, 0.5), seed=seed)
    assert chk.checked["o"] == sum(not p.result.refetch for p in passes)


def test_head_rejects_mismatched_configs():
    cfg = PRESETS["ci"]
    bad = replace(cfg, attn=replace(cfg.attn, prob=replace(cfg.attn.prob, width=8, frac=8)))
    with pytest.raises(ConfigError, match="attn.prob .* must be narrower than topk.score"):
        Head(bad)
    with pytest.raises(TypeError, match="cfg must be a SpAttenConfig"):
        Head(cfg.attn)
