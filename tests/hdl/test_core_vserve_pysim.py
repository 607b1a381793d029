# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.vserve.VServer against a reference model of the V server.

Jobs of passes (MSB-only and full precision, slots repeated across a job's passes so that
loaded rows are reused, the loaded bits cleared by a job's first pass), each pass a kept
list of slots in ``pv_rows``-lane ``vreq`` beats (random bubbles on ``vreq`` and
``passes``); the keep list is a modelled read port with one cycle of latency; a DRAM model
takes the requests with random back-pressure and lands the rows after random delays; ``v``
is taken with random back-pressure. Checked: the V rows requested, in order (for each lane
of each beat, its MSB row the first time the job names its slot, then its LSB row the first
time a full-precision pass does), at ``generators.dram.row_addr`` of the kept position;
every ``v`` beat's rows (MSB planes, and LSB planes of full-precision passes), one per
``vreq`` beat, in order; ``idle`` at the end."""

import random

import pytest

from generators.dram import pack_row, row_addr
from generators.presets import PRESETS
from hdl.core.layouts import ReadKind
from hdl.core.vserve import VServer
from sim import pysim
from sim.pysim import run_models

VMSB, VLSB = ReadKind.VMSB, ReadKind.VLSB


class Model:
    """Passes, their vreq beats, and the expected requests and v beats."""

    def __init__(self, cfg, rng, kc):
        a, R = cfg.attn, cfg.attn.pv_rows
        self.cfg = cfg
        self.keeplist = sorted(rng.sample(range(cfg.topk.capacity), kc))
        self.bases = {VMSB: 0x100000, VLSB: 0x300000}
        self.dram = {}
        self.passes, self.vreq, self.requests, self.v = [], [], [], []
        for job, (head, npass) in enumerate([(1, 4), (2, 3), (1, 3)]):
            m_ld, l_ld = set(), set()
            for p in range(npass):
                full = rng.random() < 0.5
                keep = sorted(rng.sample(range(kc), rng.randrange(0, min(kc, 3 * R + 1) + 1)))
                self.passes.append({"pos": rng.randrange(cfg.topk.capacity), "full": int(full),
                                    "head": head, "first": int(p == 0)})
                beats = [keep[b * R:(b + 1) * R] for b in range(max(1, -(-len(keep) // R)))]
                for b, idx in enumerate(beats):
                    self.vreq.append({"index": idx + [0] * (R - len(idx)), "count": len(idx),
                                      "last": int(b == len(beats) - 1)})
                    for s in idx:
                        pos = self.keeplist[s]
                        if s not in m_ld:
                            m_ld.add(s)
                            self.requests.append(self._req(VMSB, head, pos, s))
                        if full and s not in l_ld:
                            l_ld.add(s)
                            self.requests.append(self._req(VLSB, head, pos, s))
                    self.v.append((full, [self._row(VMSB, head, self.keeplist[s]) for s in idx],
                                   [self._row(VLSB, head, self.keeplist[s]) for s in idx]))

    def bits(self, kind):
        return self.cfg.attn.msb_bits if kind == VMSB else self.cfg.attn.lsb_bits

    def _req(self, kind, head, pos, slot):
        return {"addr": row_addr(self.cfg, self.bases[kind], self.bits(kind), head, pos),
                "kind": kind.value, "slot": slot}

    def _row(self, kind, head, pos):
        addr = row_addr(self.cfg, self.bases[kind], self.bits(kind), head, pos)
        if addr not in self.dram:
            r = random.Random(addr * 7 + kind.value)
            bits = self.bits(kind)
            lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if kind == VMSB else (0, 1 << bits)
            vals = [r.randrange(lo, hi) for _ in range(self.cfg.attn.head_dim)]
            self.dram[addr] = vals, int.from_bytes(pack_row(self.cfg, vals, bits), "little")
        return self.dram[addr][0]


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_vserver_matches_model(name, stall):
    cfg = PRESETS[name]
    dut = VServer(cfg)
    seed = 61 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    model = Model(cfg, rng, min(cfg.topk.capacity, 10))
    requests, vbeats = [], []

    models = [pysim.read_port_model(dut.keep, model.keeplist),
              *pysim.row_reader_models(
                  dut.req, dut.rows, lambda req, r: model.dram.get(req["addr"], (None, 0))[1],
                  seed=seed, stall=stall, requests=requests)]

    async def send_passes(ctx):
        ctx.set(dut.desc.vmsb, model.bases[VMSB])
        ctx.set(dut.desc.vlsb, model.bases[VLSB])
        await pysim.stream_send(ctx, dut.passes, model.passes, rng=random.Random(seed + 3),
                                stall=stall[0])

    async def send_vreq(ctx):
        await pysim.stream_send(ctx, dut.vreq, model.vreq, rng=random.Random(seed + 4),
                                stall=stall[0])

    async def recv_v(ctx):
        await pysim.stream_recv(ctx, dut.v, rng=random.Random(seed + 5), stall=stall[1],
                                until_beats=len(model.vreq), on_beat=vbeats.append)
        for _ in range(4):
            await ctx.tick()
        assert ctx.get(dut.idle)

    run_models(dut, [send_passes, send_vreq, recv_v], models)
    assert requests == model.requests
    assert len(vbeats) == len(model.v)
    for n, ((full, msb, lsb), beat) in enumerate(zip(model.v, vbeats)):
        assert beat["msb"][:len(msb)] == msb, n
        if full:
            assert beat["lsb"][:len(lsb)] == lsb, n
