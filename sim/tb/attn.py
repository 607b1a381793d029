"""Shared cocotb scenarios of the attention blocks (``qk``, ``softmax``, ``pv``, ``head``).

Each block's testbench module (``tb_<block>.py``) calls :func:`random_passes_test` or
:func:`bench_test`. Configured, like ``tb_topk``, by environment variables from
``sim.runner``: ``TB_CONFIG``, ``TB_PACKETS`` (passes per stall setting), ``TB_STALLS``
(``in:out`` pairs, or ``in:out:passes``: ``sim.harness.env``), ``TB_SEED``, ``TB_BENCH`` (``n:keep`` pairs, head only), ``TB_RESULT``.

Every input stream gets random bubbles and every output stream random back-pressure; every
output beat is compared bit for bit, in order, with the golden model's (``sim.attn_stim``),
and beats that never come or come extra fail the test.

The head's host: each query is sent as a pass; an MSB-only pass that may be refetched
(``threshold > 0``) makes the host wait for its decision, and a refetch is answered with the
same query at full precision before anything else (as SpAtten's fetcher would). Passes that
cannot be refetched stream back to back. V requests are answered by a memory model that
returns the requested rows (rows past the request's count are random garbage).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from generators.config import SpAttenConfig
from hdl.attn import layouts as L
from sim import attn_stim as S
from sim.harness import env
from sim.harness.multi import MultiPump
from sim.scoreboard import StreamChecker

CFG = SpAttenConfig.from_json(os.environ["TB_CONFIG"])
STALLS = env.stalls()
BENCH = os.environ.get("TB_BENCH")
SEED = int(os.environ.get("TB_SEED", "0"))

PORTS = {  # block → (input ports, output ports), with their layouts
    "qk": ({"q": L.query_layout, "k": L.key_layout}, {"o": L.score_layout}),
    "softmax": ({"i": L.score_layout}, {"dec": L.decision_layout, "o": L.prob_layout}),
    "pv": ({"c": L.chunk_layout, "v": L.value_layout}, {"o": L.out_layout}),
    "head": ({"q": L.query_layout, "k": L.key_layout, "v": L.value_layout},
             {"dec": L.decision_layout, "p": L.prob_layout, "vreq": L.vreq_layout,
              "o": L.out_layout}),
}


def edge_sizes(cfg: SpAttenConfig) -> list[int]:
    lanes, cap = cfg.attn.lanes, cfg.topk.capacity
    sizes = [0, cap, 1, cap + 3, max(1, lanes - 1), lanes + 1]
    return [n for j, n in enumerate(sizes) if n not in sizes[:j]]


def make_queries(cfg: SpAttenConfig, rng: np.random.Generator, count: int) -> list[list]:
    """``count`` queries, each the list of its passes (an MSB-only pass that is refetched is
    followed by its full-precision pass). Edge sizes first, then random sizes and kinds."""
    cap = cfg.topk.capacity
    sizes = edge_sizes(cfg)
    queries = []
    for j in range(count):
        n = sizes[j] if j < len(sizes) else int(rng.integers(1, cap + 1))
        kind = S.KINDS[j % len(S.KINDS)]
        p0 = S.random_pass(cfg, rng, n, kind=kind)
        passes = [p0]
        if p0.result.refetch:
            pr = replace(p0.params, msb_only=0)
            passes.append(S.Pass(p0.q, p0.kmsb, p0.klsb, p0.vmsb, p0.vlsb, pr,
                                 S.head_pass(cfg, p0.q, p0.kmsb, p0.klsb, p0.vmsb, p0.vlsb,
                                             pr)))
        queries.append(passes)
    return queries


def _expected(block: str, cfg, p) -> dict:
    if block == "qk":
        return {"o": S.score_beats(cfg, p)}
    if block == "softmax":
        return {"dec": [S.decision_beat(cfg, p)], "o": S.prob_beats(cfg, p)}
    if block == "pv":
        return {"o": S.out_beat(cfg, p)}
    return {"dec": [S.decision_beat(cfg, p)], "p": S.prob_beats(cfg, p),
            "vreq": S.vreq_beats(cfg, p), "o": S.out_beat(cfg, p)}


def _inputs(block: str, cfg, p, rng) -> dict:
    if block == "qk" or block == "head":
        return {"q": [S.query_beat(cfg, p)], "k": S.key_beats(cfg, p, rng)}
    if block == "softmax":
        return {"i": S.score_beats(cfg, p)}
    chunks = S.chunk_beats(cfg, p)
    if not chunks:  # pv is fed accepted passes only
        return {}
    return {"c": chunks, "v": [S.value_beat(cfg, p, c, rng) for c in chunks]}


class Host:
    """Feeds the passes of ``queries`` into the pump and checks every output stream."""

    def __init__(self, block, cfg, pump: MultiPump, checker: StreamChecker, queries, rng, *,
                 serial: bool = False):
        self.block, self.cfg, self.pump, self.chk, self.rng = block, cfg, pump, checker, rng
        self.serial = serial  # one pass at a time: the next waits for the previous output
        self.unsent = [p for q in queries for p in q]
        self.passes = 0
        self.waiting = False  # a progressive pass's decision is outstanding
        self.vpasses = []  # accepted passes whose V requests are still to come (head)

    def issue(self):
        """Send passes until one must wait for its decision (head) or none is left."""
        while self.unsent and not self.waiting:
            p = self.unsent.pop(0)
            if self.block == "pv" and p.result.refetch:
                continue
            for stream, beats in _expected(self.block, self.cfg, p).items():
                self.chk.expect(stream, beats)
            for stream, beats in _inputs(self.block, self.cfg, p, self.rng).items():
                self.pump.push(stream, beats)
            if self.block == "head":
                if not p.result.refetch:
                    self.vpasses.append(p)
                self.waiting = bool(p.params.msb_only and p.params.threshold)
            self.waiting |= self.serial and not p.result.refetch
            self.passes += 1

    def on_beat(self, stream, beat, cycle):
        self.chk.got(stream, beat)
        if self.block != "head":
            return
        if stream == "dec" and not (self.serial and not beat["refetch"]):
            self.waiting = False
            self.issue()
        elif stream == "o" and self.serial:
            self.waiting = False
            self.issue()
        elif stream == "vreq" and self.vpasses:
            p = self.vpasses[0]
            self.pump.push("v", [S.value_beat(self.cfg, p, beat, self.rng)])
            if beat["last"]:
                self.vpasses.pop(0)

    def done(self) -> bool:
        return not self.unsent and self.chk.pending() == 0

    def failed(self) -> bool:
        return self.chk.first is not None


def _pump(dut, block, cfg, rng, in_stall, out_stall) -> MultiPump:
    ins, outs = PORTS[block]
    return MultiPump(dut, {n: (f(cfg), in_stall) for n, f in ins.items()},
                     {n: (f(cfg), out_stall) for n, f in outs.items()}, rng=rng)


def _budget(cfg, queries, stall: float) -> int:
    a = cfg.attn
    per = sum(4 * (p.n // a.lanes) + 3 * cfg.topk.capacity // cfg.topk.lanes + 200
              for q in queries for p in q)
    return int(per / max(0.05, 1 - stall)) + 2000


async def random_passes_test(dut, block: str, stall):
    """Edge cases then random passes, under ``stall = (in, out)``."""
    in_stall, out_stall = stall
    rng = await env.start(dut)
    nprng = np.random.default_rng([SEED, int(in_stall * 10), int(out_stall * 10)])
    queries = make_queries(CFG, nprng, env.packets(stall, 20))
    chk = StreamChecker(context=f"{block} {CFG.tag} seed={SEED} stall={in_stall}:{out_stall}")
    pump = _pump(dut, block, CFG, rng, in_stall, out_stall)
    host = Host(block, CFG, pump, chk, queries, nprng)
    total = sum(len(beats) for q in queries for p in q
                if not (block == "pv" and p.result.refetch)
                for beats in _expected(block, CFG, p).values())

    def on_beat(stream, beat, cycle):
        host.on_beat(stream, beat, cycle)
        env.advance(sum(chk.checked.values()), total,
                    f"output beats, stall {in_stall}:{out_stall}")

    host.issue()
    finished = await pump.run(on_beat=on_beat,
                              done=lambda: host.done() or host.failed(),
                              max_cycles=_budget(CFG, queries, max(stall)))
    report = chk.finish()
    refetched = sum(len(q) > 1 for q in queries)
    env.record("runs", {"stall": [in_stall, out_stall], "passes": host.passes,
                    "queries": len(queries), "refetched": refetched,
                    "mismatches": chk.mismatches, "cycles": pump.cycle, "first": report,
                    "finished": finished, "beats": dict(chk.checked)})
    assert finished, f"timed out after {pump.cycle} cycles; {report}"
    assert report is None, report


async def bench_test(dut):
    """Head pipeline timing: for each ``n:keep`` in ``TB_BENCH``, ``TB_PACKETS``
    full-precision passes of ``n`` random keys, no stalls anywhere; first one at a time
    (latency: query beat in to output beat out), then back to back: the steady-state cycles
    per pass are those between the last key beats taken of the passes in the second half
    (the first half fills the head's buffers), and the Q·K array's utilization is its busy
    cycles, ``ceil(n / keys_per_cycle)`` per pass, over the cycles per pass."""
    rng = await env.start(dut)
    nprng = np.random.default_rng(SEED)
    kpc = CFG.attn.keys_per_cycle
    count = env.packets((0.0, 0.0), 20)
    pairs = BENCH.split(",")
    for i, pair in enumerate(pairs):
        env.advance(i, len(pairs), "bench points")
        n, keep = (int(x) for x in pair.split(":"))
        passes = [S.random_pass(CFG, nprng, n, kind=S.KINDS[j % 3], keep=keep, msb_only=0,
                                threshold=0) for j in range(count)]
        for serial in (True, False):
            chk = StreamChecker(context=f"head bench {n}:{keep}")
            pump = _pump(dut, "head", CFG, rng, 0.0, 0.0)
            host = Host("head", CFG, pump, chk, [[p] for p in passes], nprng, serial=serial)
            outs, firsts, row_ends = [], [], []

            def on_beat(stream, beat, cycle, host=host, outs=outs):
                if stream == "o":
                    outs.append(cycle)
                host.on_beat(stream, beat, cycle)

            def on_sent(stream, beat, cycle, firsts=firsts, row_ends=row_ends):
                if stream == "q":
                    firsts.append(cycle)
                elif stream == "k" and beat["last"]:
                    row_ends.append(cycle)

            host.issue()
            finished = await pump.run(on_beat=on_beat, on_sent=on_sent,
                                      done=lambda host=host: host.done() or host.failed(),
                                      max_cycles=pump.cycle + _budget(CFG, [passes], 0))
            report = chk.finish()
            assert finished and report is None, report or "timed out"
            if serial:
                env.record("latency", {"n": n, "keep": keep,
                                   "latency": [o - f for o, f in zip(outs, firsts)]})
            else:
                h = len(row_ends) // 2
                cpp = (row_ends[-1] - row_ends[h - 1]) / (len(row_ends) - h)
                busy = max(1, -(-n // kpc))
                env.record("throughput", {"n": n, "keep": keep, "passes": len(passes),
                                      "cycles_per_pass": cpp, "qk_busy_per_pass": busy,
                                      "qk_utilization": busy / cpp if cpp else None})
    env.advance(len(pairs), len(pairs), "bench points")
