# amaranth: UnusedElaboratable=no
"""amaranth.sim of hdl.core.job.Job against a reference model of a job's passes.

Around the DUT, models of its neighbours: the K loader (sweeps land after random delays; the
K buffer is a read port with one cycle of latency whose planes hold the rows of the head
last swept, so reading a word before its sweep is done gives wrong keys), the query reads
(a job's queries arrive with random bubbles, only after ``fetch``) and the head (``q`` and
``k`` taken with random back-pressure, one ``dec`` beat per pass after a random delay,
``refetch`` drawn per MSB-only pass). ``passes``, ``outs`` and ``done`` are taken with
random back-pressure, ``start`` beats come with random bubbles. Layers: summarization MSB-only
(with refetches, an odd key count), summarization at full precision, generation. Checked:
the sweeps, the fetches, every ``q`` beat and every ``k`` beat (MSB plane, and LSB plane of
full-precision passes), the passes and output tags pushed (``first`` on a job's first) and
one ``done`` per job, all in order, nothing dropped or duplicated."""

import random

import pytest

from generators.presets import PRESETS
from hdl.core.job import Job
from hdl.core.layouts import ReadKind
from sim import pysim
from sim.pysim import run_models

KMSB, KLSB = ReadKind.KMSB, ReadKind.KLSB


def _vec(rng, n, bits, signed):
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return [rng.randrange(lo, hi) for _ in range(n)]


class Model:
    """The expected traffic of a run of layers (each a descriptor and its jobs' heads)."""

    def __init__(self, cfg, rng, layers):
        a, t = cfg.attn, cfg.topk
        self.cfg, self.layers = cfg, layers
        D, kpc = a.head_dim, a.keys_per_cycle
        self.keys = {(h, s, p): _vec(rng, D, a.msb_bits if p == KMSB else a.lsb_bits,
                                     p == KMSB)
                     for h in range(cfg.core.heads) for s in range(t.capacity)
                     for p in (KMSB, KLSB)}
        self.sweeps, self.fetches, self.q, self.k, self.passes, self.outs = ([] for _ in range(6))
        self.queries = []             # per job: the (vector, position) the query reads give
        self.decisions = []           # per pass sent: refetch
        for desc, heads in layers:
            kc = desc["token_keep"]
            nq = 1 if desc["mode"] else kc
            for h in heads:
                qs = [(_vec(rng, D, a.q_bits, True), desc["newest"] if desc["mode"] else
                       rng.randrange(t.capacity)) for _ in range(nq)]
                self.queries.append(qs)
                self.sweeps.append({"kind": KMSB.value, "head": h})
                lsb = not desc["msb_only"]
                if lsb:
                    self.sweeps.append({"kind": KLSB.value, "head": h})
                self.fetches.append({"head": h})
                for i, (vec, pos) in enumerate(qs):
                    full = not desc["msb_only"]
                    while True:
                        self._pass(desc, h, vec, full)
                        refetch = (not full) and rng.random() < 0.5
                        self.decisions.append(refetch)
                        if not refetch:
                            break
                        full = True
                        if not lsb:
                            self.sweeps.append({"kind": KLSB.value, "head": h})
                            lsb = True
                    self.passes.append({"pos": pos, "full": int(full), "head": h,
                                        "first": int(i == 0)})
                    self.outs.append({"pos": pos, "head": h})

    def _pass(self, desc, h, vec, full):
        kpc = self.cfg.attn.keys_per_cycle
        kc = desc["token_keep"]
        self.q.append({"q": vec, "scale": desc["scale"], "shift": desc["shift"],
                       "meta": {"keep": desc["value_keep"], "threshold": desc["threshold"],
                                "msb_only": int(not full)}})
        words = -(-kc // kpc)
        for w in range(words):
            last = w == words - 1
            self.k.append((full, {"msb": [self.keys[(h, w * kpc + j, KMSB)] for j in range(kpc)],
                                  "lsb": [self.keys[(h, w * kpc + j, KLSB)] for j in range(kpc)],
                                  "count": kc - w * kpc if last else kpc, "last": int(last)}))


def _layers(cfg):
    cap, kpc = cfg.topk.capacity, cfg.attn.keys_per_cycle
    n = min(cap, 12) | 1 if kpc > 1 else min(cap, 12)
    common = {"scale": 77, "shift": 3, "value_keep": 2, "threshold": 9, "newest": 0}
    return [({**common, "mode": 0, "msb_only": 1, "token_keep": n}, [1, 3]),
            ({**common, "mode": 0, "msb_only": 0, "token_keep": 4}, [0, 2]),
            ({**common, "mode": 1, "msb_only": 1, "token_keep": n, "newest": cap - 2}, [2, 1])]


@pytest.mark.parametrize("name,stall", [("ci", (0.0, 0.0)), ("ci", (0.4, 0.5)),
                                        ("eighth", (0.3, 0.3))])
def test_job_passes_match_model(name, stall):
    cfg = PRESETS[name]
    dut = Job(cfg)
    seed = 41 + len(name) + int(stall[1] * 10)
    rng = random.Random(seed)
    layers = _layers(cfg)
    model = Model(cfg, rng, layers)
    kpc = cfg.attn.keys_per_cycle
    got = {n: [] for n in ("sweeps", "fetches", "q", "k", "passes", "outs")}
    st = {"loaded": {KMSB: None, KLSB: None}, "jobs_done": 0, "fetched": 0}
    errors = []
    jobs = [(li, h) for li, (_, heads) in enumerate(layers) for h in heads]

    async def loader(ctx):            # sweeps (always taken) → swept after a delay
        r = random.Random(seed + 1)
        queue, wait = [], 0           # sweeps taken, cycles before the first is swept
        while True:
            _, _, valid, payload, sv, sr = await ctx.tick().sample(
                dut.sweep.valid, dut.sweep.payload, dut.swept.valid, dut.swept.ready)
            if sv and sr:
                st["loaded"][ReadKind(queue[0]["kind"])] = queue[0]["head"]
                queue.pop(0)
                ctx.set(dut.swept.valid, 0)
                wait = r.randrange(1, 6)
            if valid:
                sweep = {"kind": payload.kind.value, "head": int(payload.head)}
                got["sweeps"].append(sweep)
                if queue:
                    errors.append("a sweep started before the last one was swept")
                queue.append(sweep)
                wait = r.randrange(1, 6)
            if queue and not sv:
                wait -= 1
                if wait <= 0:
                    ctx.set(dut.swept.valid, 1)

    async def kbuf(ctx):              # the K buffer's read port
        r = random.Random(seed + 2)
        while True:
            _, _, en, addr = await ctx.tick().sample(dut.keys.en, dut.keys.addr)
            if not en:
                continue
            for plane, port in ((KMSB, dut.keys.msb), (KLSB, dut.keys.lsb)):
                h = st["loaded"][plane]
                word = [model.keys[(h, addr * kpc + j, plane)] if h is not None else
                        _vec(r, cfg.attn.head_dim, 1, False) for j in range(kpc)]
                ctx.set(port, word)

    async def queries(ctx):           # a job's queries, after its fetch
        r = random.Random(seed + 3)
        for j, qs in enumerate(model.queries):
            while st["fetched"] <= j:
                await ctx.tick()
            await pysim.stream_send(ctx, dut.queries, [{"q": v, "pos": p} for v, p in qs],
                                    rng=r, stall=stall[0])

    async def fetch_watch(ctx):
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.fetch.valid, dut.fetch.payload)
            if valid:
                got["fetches"].append({"head": int(payload.head)})
                st["fetched"] += 1

    async def head_q(ctx):
        await pysim.stream_recv(ctx, dut.q, rng=random.Random(seed + 4), stall=stall[1],
                                until_beats=len(model.q), on_beat=got["q"].append)

    async def head_k(ctx):
        def on_beat(beat):
            full = not got["q"][-1]["meta"]["msb_only"] if got["q"] else None
            got["k"].append((full, beat))
        await pysim.stream_recv(ctx, dut.k, rng=random.Random(seed + 5), stall=stall[1],
                                until_last=len(model.decisions), on_beat=on_beat)

    async def head_dec(ctx):          # one dec per pass, in order, after a delay
        r = random.Random(seed + 6)
        for p, refetch in enumerate(model.decisions):
            while sum(b["last"] for _, b in got["k"]) <= p:
                await ctx.tick()
            for _ in range(r.randrange(0, 5)):
                await ctx.tick()
            ctx.set(dut.dec.payload, {"refetch": int(refetch), "pmax": 0, "truncated": 0})
            ctx.set(dut.dec.valid, 1)
            await ctx.tick()
            ctx.set(dut.dec.valid, 0)

    async def sink(ctx, port, key):
        await pysim.stream_recv(ctx, port, rng=random.Random(seed + len(key)), stall=stall[1],
                                until_beats=len(getattr(model, key)),
                                on_beat=got[key].append)

    async def passes(ctx):
        await sink(ctx, dut.passes, "passes")

    async def outs(ctx):
        await sink(ctx, dut.outs, "outs")

    async def starter(ctx):
        r = random.Random(seed + 7)
        for li, h in jobs:
            for k, v in layers[li][0].items():
                ctx.set(getattr(dut.desc, k), v)
            await pysim.stream_send(ctx, dut.start, [{"head": h}], rng=r, stall=stall[0])
            # the job's done, with back-pressure
            while True:
                ready = int(r.random() >= stall[1])
                ctx.set(dut.done.ready, ready)
                _, _, valid = await ctx.tick().sample(dut.done.valid)
                if valid and ready:
                    break
            ctx.set(dut.done.ready, 0)
            st["jobs_done"] += 1

    run_models(dut, [starter, head_q, head_k, passes, outs],
         [loader, kbuf, queries, fetch_watch, head_dec])
    assert errors == []
    assert st["jobs_done"] == len(jobs)
    assert got["sweeps"] == model.sweeps
    assert got["fetches"] == model.fetches
    assert got["q"] == model.q
    assert len(got["k"]) == len(model.k)
    for n, ((full, want), (_, beat)) in enumerate(zip(model.k, got["k"])):
        assert beat["count"] == want["count"] and beat["last"] == want["last"], n
        count = want["count"]
        assert beat["msb"][:count] == want["msb"][:count], n
        if full:
            assert beat["lsb"][:count] == want["lsb"][:count], n
    assert got["passes"] == model.passes
    assert got["outs"] == model.outs
