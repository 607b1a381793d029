# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.queries.QueryFetch against a reference model of a job's query
reads: summarization (query ``i`` at kept position ``keeplist[i]``) and generation (one query
at the newest position), several jobs and heads in a row. A DRAM model takes requests with
random back-pressure and lands the rows after random delays; ``o`` is read with random
back-pressure. Checked: every query's row requested once, in order, at
``generators.dram.row_addr``; no request beyond the job's queries; never more than
QUERY_FIFO_DEPTH queries requested and not yet taken from ``o``; ``o`` gives every query's
vector and position once, in order."""

import random

import pytest

from generators.dram import pack_row, row_addr
from generators.presets import PRESETS
from hdl.core.layouts import ReadKind
from hdl.core.queries import QUERY_FIFO_DEPTH, QueryFetch
from sim.packing import const_to_py
from sim.pysim import read_port_model, run_models


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.6)),
                                        ("eighth", (0.3, 0.3))])
def test_query_reads_match_model(name, stall):
    cfg = PRESETS[name]
    a, cap = cfg.attn, cfg.topk.capacity
    dut = QueryFetch(cfg)
    seed = 21 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    n_max = min(cap, 24)
    keeplist = sorted(rng.sample(range(cap), n_max))
    base = 0x40000
    # (mode, token_keep, newest, head)
    jobs = [(0, n_max, 0, 1), (0, 1, 0, 0), (1, n_max, cap - 1, 2), (0, 5, 0, 3),
            (1, 3, 7, 1)]
    requests, outs, errors = [], [], []
    dram = {}

    async def dram_reqs(ctx):
        r = random.Random(seed + 1)
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(dut.req.ready, ready)
            _, _, valid, payload, ov, ordy = await ctx.tick().sample(
                dut.req.valid, dut.req.payload, dut.o.valid, dut.o.ready)
            if valid and ready:
                requests.append(const_to_py(payload))
            if len(requests) - len(outs) - int(ov and ordy) > QUERY_FIFO_DEPTH:
                errors.append(f"{len(requests) - len(outs)} queries ahead")

    async def dram_rows(ctx):
        r = random.Random(seed + 2)
        served = 0
        while True:
            while served >= len(requests) or r.random() < stall[0]:
                await ctx.tick()
            req = requests[served]
            if req["addr"] not in dram:
                vals = [r.randrange(-(1 << (a.q_bits - 1)), 1 << (a.q_bits - 1))
                        for _ in range(a.head_dim)]
                dram[req["addr"]] = vals, int.from_bytes(pack_row(cfg, vals, a.q_bits), "little")
            ctx.set(dut.rows.payload, {"kind": req["kind"], "slot": req["slot"],
                                       "data": dram[req["addr"]][1]})
            ctx.set(dut.rows.valid, 1)
            await ctx.tick()
            ctx.set(dut.rows.valid, 0)
            served += 1

    async def driver(ctx):
        r = random.Random(seed + 3)
        ctx.set(dut.desc.q, base)
        for mode, keep, newest, head in jobs:
            ctx.set(dut.desc.mode, mode)
            ctx.set(dut.desc.token_keep, keep)
            ctx.set(dut.desc.newest, newest)
            ctx.set(dut.cmd.payload, {"head": head})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            want = len(outs) + (1 if mode else keep)
            while len(outs) < want:
                ready = int(r.random() >= stall[1])
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid and ready:
                    outs.append(const_to_py(payload))
            ctx.set(dut.o.ready, 0)
            for _ in range(8):          # nothing more is requested for this job
                await ctx.tick()

    run_models(dut, [driver], [read_port_model(dut.keep, keeplist), dram_reqs, dram_rows])
    assert errors == []
    want_req, want_out = [], []
    for mode, keep, newest, head in jobs:
        positions = [newest] if mode else keeplist[:keep]
        for pos in positions:
            addr = row_addr(cfg, base, a.q_bits, head, pos)
            want_req.append({"addr": addr, "kind": ReadKind.Q.value, "slot": pos})
            want_out.append({"q": dram[addr][0], "pos": pos})
    assert requests == want_req
    assert outs == want_out
