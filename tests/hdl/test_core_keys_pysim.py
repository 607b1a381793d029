# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.keys.KeyLoader against a reference model of a K sweep: for each
sweep (plane, head, key count), the row of every kept slot is requested once, in slot order,
at ``generators.dram.row_addr`` of its kept position (the keep list is a modelled read port
with one cycle of latency); a DRAM model takes requests with random back-pressure and lands
the rows after random delays; ``done`` (random back-pressure) comes only after every row has
landed, and a new sweep may start in the cycle it is taken; the K buffer read back word by
word holds every slot's row in its lane."""

import random

import pytest

from generators.dram import pack_row, row_addr
from generators.presets import PRESETS
from hdl.core.keys import KeyLoader
from hdl.core.layouts import ReadKind
from sim.packing import const_to_py
from sim.pysim import read_port_model, row_reader_models, run_models


def _row(cfg, rng, bits, signed):
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    vals = [rng.randrange(lo, hi) for _ in range(cfg.attn.head_dim)]
    return vals, int.from_bytes(pack_row(cfg, vals, bits), "little")


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_key_sweeps_match_model(name, stall):
    cfg = PRESETS[name]
    a, kpc = cfg.attn, cfg.attn.keys_per_cycle
    dut = KeyLoader(cfg)
    seed = 11 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    cap = cfg.topk.capacity
    n_max = min(cap, 40)
    sweeps = [(ReadKind.KMSB, 1, n_max), (ReadKind.KLSB, 2, n_max),
              (ReadKind.KMSB, 0, 1), (ReadKind.KLSB, 3, 2 * kpc + 1), (ReadKind.KMSB, 2, 3)]
    keeplist = sorted(rng.sample(range(cap), n_max))
    bases = {ReadKind.KMSB: 0x10000, ReadKind.KLSB: 0x80000}
    dram = {}                     # address → (values, packed row)
    requests, errors, readback = [], [], []
    state = {"landed": 0, "issued": 0}

    def data_for(req, r):
        msb = req["kind"] == ReadKind.KMSB.value
        dram.setdefault(req["addr"], _row(cfg, r, a.msb_bits if msb else a.lsb_bits, msb))
        return dram[req["addr"]][1]

    models = [read_port_model(dut.keep, keeplist),
              *row_reader_models(dut.req, dut.rows, data_for, seed=seed, stall=stall,
                                 requests=requests,
                                 on_landed=lambda n: state.__setitem__("landed", n))]

    async def driver(ctx):
        r = random.Random(seed + 3)
        ctx.set(dut.desc.kmsb, bases[ReadKind.KMSB])
        ctx.set(dut.desc.klsb, bases[ReadKind.KLSB])
        pending = list(sweeps)

        async def issue():                # the next sweep: one cycle on always-ready cmd
            kind, head, n = pending.pop(0)
            ctx.set(dut.desc.token_keep, n)
            ctx.set(dut.cmd.payload, {"kind": kind, "head": head})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            return kind, n

        kind, n = await issue()
        while True:
            ready = int(r.random() >= stall[1])
            ctx.set(dut.done.ready, ready)
            _, _, valid = await ctx.tick().sample(dut.done.valid)
            if not valid:
                continue
            if len(requests) != n + sum(s[2] for s in sweeps[:len(sweeps) - len(pending) - 1]) \
                    or state["landed"] != len(requests):
                errors.append(f"done with {len(requests)} requests, {state['landed']} landed")
            if not ready:
                continue
            ctx.set(dut.done.ready, 0)
            await _read_back(ctx, kind, n)
            if not pending:
                return
            kind, n = await issue()

    async def _read_back(ctx, kind, n):
        plane = dut.words.msb if kind == ReadKind.KMSB else dut.words.lsb
        for w in range(-(-n // kpc)):
            ctx.set(dut.words.addr, w)
            ctx.set(dut.words.en, 1)
            await ctx.tick()
            ctx.set(dut.words.en, 0)
            readback.append((kind, w, const_to_py(ctx.get(plane))))

    run_models(dut, [driver], models)
    assert errors == []
    # the requests: every kept slot's row, in slot order, per sweep
    want, k = [], 0
    for kind, head, n in sweeps:
        bits = a.msb_bits if kind == ReadKind.KMSB else a.lsb_bits
        want += [{"addr": row_addr(cfg, bases[kind], bits, head, keeplist[s]),
                  "kind": kind.value, "slot": s} for s in range(n)]
    assert requests == want
    # the K buffer: slot s's row in lane s mod kpc of word s // kpc
    got = iter(readback)
    first = 0
    for kind, head, n in sweeps:
        for w in range(-(-n // kpc)):
            rk, rw, lanes = next(got)
            assert (rk, rw) == (kind, w)
            for j in range(kpc):
                s = w * kpc + j
                if s < n:
                    assert lanes[j] == dram[want[first + s]["addr"]][0], (kind, head, s)
        first += n
