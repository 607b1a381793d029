# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.reads.ReadRouter against a reference model of the read port:
three requesters (random valid bubbles, each request held until taken), a DMA model that
takes commands with random back-pressure and returns each row's beats in order with random
bubbles. Checked: every request is issued exactly once with its row's address and beats,
in each requester's order; a command takes the highest-priority waiting requester; at most
MAX_OUTSTANDING rows are in flight; every row lands once, in issue order, on its kind's
stream with its slot and its beats."""

import random

import pytest

from generators.presets import PRESETS
from hdl.core.axi import MAX_OUTSTANDING
from hdl.core.layouts import ReadKind
from hdl.core.reads import ReadRouter, row_beats
from sim import pysim
from sim.packing import const_to_py
from sim.pysim import run_models

KINDS = {"v": (ReadKind.VMSB, ReadKind.VLSB), "k": (ReadKind.KMSB, ReadKind.KLSB),
         "q": (ReadKind.Q,)}
STREAM_OF = {k: name for name, kinds in KINDS.items() for k in kinds}


def _requests(cfg, rng, name, count):
    bus = cfg.core.bus_bytes
    return [{"addr": rng.randrange(1 << 20) * bus, "kind": rng.choice(KINDS[name]).value,
             "slot": rng.randrange(cfg.topk.capacity)} for _ in range(count)]


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_read_router_matches_model(name, stall):
    cfg = PRESETS[name]
    dut = ReadRouter(cfg)
    seed = len(name) * 31 + int(stall[0] * 10)
    rng = random.Random(seed)
    reqs = {n: _requests(cfg, rng, n, 40) for n in KINDS}
    total = sum(len(r) for r in reqs.values())
    bus = 8 * cfg.core.bus_bytes
    issued = []       # (requester, request) in grant order
    cmds = []         # rcmd beats in order
    rows = []         # the data of each issued row, in order
    landed = []       # (stream, kind, slot, data)
    errors = []

    def sender(n):
        async def tb(ctx):
            await pysim.stream_send(ctx, getattr(dut, n), reqs[n], rng=random.Random(seed + ord(n)),
                                    stall=stall[0])
        return tb

    async def dma_cmd(ctx):
        def on_cmd(c):
            cmds.append(c)
            rows.append([rng.randrange(1 << bus) for _ in range(c["beats"])])
        await pysim.stream_recv(ctx, dut.rcmd, rng=random.Random(seed + 2), stall=stall[1],
                                until_beats=total, on_beat=on_cmd)

    async def dma_data(ctx):
        r = random.Random(seed + 3)
        for j in range(total):
            while len(rows) <= j:
                await ctx.tick()
            beats = rows[j]
            for b, word in enumerate(beats):
                while r.random() < stall[0]:
                    ctx.set(dut.rdata.valid, 0)
                    await ctx.tick()
                ctx.set(dut.rdata.payload, {"data": word, "last": int(b == len(beats) - 1)})
                ctx.set(dut.rdata.valid, 1)
                await ctx.tick().until(dut.rdata.ready)
        ctx.set(dut.rdata.valid, 0)

    async def monitor(ctx):
        order = ["v", "k", "q"]
        ports = [getattr(dut, n) for n in order]
        outs = {"vrows": dut.vrows, "krows": dut.krows, "qrows": dut.qrows}
        taken_cmds = 0
        while len(landed) < total:
            sig = [p.valid for p in ports] + [p.ready for p in ports] + [p.payload for p in ports]
            sig += [dut.rcmd.valid, dut.rcmd.ready]
            sig += [x for o in outs.values() for x in (o.valid, o.payload)]
            _, _, *vals = await ctx.tick().sample(*sig)
            valid, ready, payload = vals[0:3], vals[3:6], vals[6:9]
            cmd_taken = vals[9] and vals[10]
            granted = [order[i] for i in range(3) if valid[i] and ready[i]]
            if cmd_taken:
                taken_cmds += 1
                want = next(order[i] for i in range(3) if valid[i])
                if granted != [want]:
                    errors.append(f"command took {granted}, the first waiting is {want}")
                for n in granted:
                    issued.append((n, const_to_py(payload[order.index(n)])))
            elif granted:
                errors.append(f"{granted} granted without a command")
            for k, (sname, o) in enumerate(outs.items()):
                if vals[11 + 2 * k]:
                    landed.append((sname, const_to_py(vals[12 + 2 * k])))
            if taken_cmds - len(landed) > MAX_OUTSTANDING:
                errors.append(f"{taken_cmds - len(landed)} rows in flight")

    run_models(dut, [*[sender(n) for n in KINDS], dma_cmd, dma_data, monitor])
    assert errors == []
    # every request once, in each requester's order
    for n in KINDS:
        assert [r for who, r in issued if who == n] == reqs[n]
    # commands: the granted rows' addresses and lengths
    assert cmds == [{"addr": r["addr"], "beats": row_beats(cfg, ReadKind(r["kind"]))}
                    for _, r in issued]
    # rows land in issue order, on their kind's stream, with their beats
    assert len(landed) == total
    for (who, r), beats, (sname, row) in zip(issued, rows, landed):
        assert sname == f"{STREAM_OF[ReadKind(r['kind'])]}rows"
        assert (row["kind"], row["slot"]) == (r["kind"], r["slot"])
        n = len(beats)
        want = sum(w << (bus * b) for b, w in enumerate(beats))
        assert row["data"] & ((1 << (n * bus)) - 1) == want
