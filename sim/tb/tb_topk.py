"""cocotb testbench of the generated top-k Verilog, bit-exact against ``sim.golden.topk``.

Runs inside the simulator; configured by environment variables set by ``sim.runner``:

- ``TB_CONFIG``: the ``SpAttenConfig`` as JSON (the one the Verilog was generated from);
- ``TB_PACKETS``: packets per stall setting; the edge cases of the golden spec come first;
- ``TB_STALLS``: stall settings ``in:out`` separated by commas (``0:0,0.3:0.5``), or
  ``in:out:packets`` with that setting's own count (``sim.harness.env.packets``);
- ``TB_BENCH``: ``n:k`` runs uniformly random packets of ``n`` scores one at a time (no
  stalls) and records each packet's latency instead;
- ``TB_SEED``: the seed of the run; stimulus and stalls derive from it;
- ``TB_RESULT``: where to write a JSON summary (packets, cycles, mismatches, latencies).

A mismatch fails the test with the seed, packet, beat, field and lane of the first one.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np

from generators.config import SpAttenConfig
from hdl.topk.layouts import in_layout, out_layout
from sim import stimulus
from sim.harness import env
from sim.harness.stream import StreamPump
from sim.scoreboard import Scoreboard, input_beats

CFG = SpAttenConfig.from_json(os.environ["TB_CONFIG"])
TK = CFG.topk
PACKETS = int(os.environ.get("TB_PACKETS", "100"))   # per bench point
STALLS = env.stalls()
BENCH = os.environ.get("TB_BENCH")
SEED = int(os.environ.get("TB_SEED", "0"))  # the run's seed (`spatten sim --seed`)


def _max_cycles(packets, stall: float) -> int:
    per = sum(len(s) // TK.lanes + 4 for s, _ in packets) * (TK.levels + 2) + 100
    return int(per / max(0.05, 1 - stall) + 1000)


@cocotb.test(skip=BENCH is not None)
@cocotb.parametrize(stall=STALLS)
async def random_packets(dut, stall):
    """Edge cases then random packets, with random input bubbles and output back-pressure."""
    in_stall, out_stall = stall
    rng = await env.start(dut)
    seed = SEED
    packets = stimulus.topk_packets(TK, np.random.default_rng([seed, int(in_stall * 10),
                                                               int(out_stall * 10)]),
                                    env.packets(stall, 100))
    sb = Scoreboard(TK, context=f"{CFG.tag} seed={seed} stall={in_stall}:{out_stall}")
    for scores, k in packets:
        sb.expect(scores, k)
    pump = StreamPump(dut, in_layout(TK), out_layout(TK), rng=rng, in_stall=in_stall,
                      out_stall=out_stall)
    finished = await pump.run([input_beats(TK, s, k) for s, k in packets],
                              on_beat=lambda beat, cyc: (sb.got(beat), env.advance(
                                  sb.packets, len(packets), f"stall {in_stall}:{out_stall}")),
                              max_cycles=_max_cycles(packets, max(stall)))
    report = sb.finish()
    env.record("runs", {"stall": [in_stall, out_stall], "packets": len(packets),
                     "matched": sb.packets, "mismatches": sb.mismatches, "cycles": pump.cycle,
                     "first": report, "finished": finished})
    assert finished, f"timed out after {pump.cycle} cycles; {report}"
    assert report is None, report


@cocotb.test(skip=BENCH is None)
async def bench_latency(dut):
    """Isolated packets of uniformly random scores: cycles from last input to last output.

    ``TB_BENCH`` lists ``n:k`` pairs separated by commas; each gets ``TB_PACKETS`` packets.
    A pair written ``b2b:n:k`` sends its packets back to back instead and records the
    steady-state cycles per packet (throughput).
    """
    rng = await env.start(dut)
    seed = SEED
    nprng = np.random.default_rng(seed)
    pump = StreamPump(dut, in_layout(TK), out_layout(TK), rng=rng)
    pairs = BENCH.split(",")
    for i, pair in enumerate(pairs):
        env.advance(i, len(pairs), "bench points")
        serial = not pair.startswith("b2b:")  # b2b: back-to-back packets, for throughput
        n, k = (int(x) for x in pair.removeprefix("b2b:").split(":"))
        packets = [stimulus.topk_packet(TK, nprng, n, k) for _ in range(PACKETS)]
        sb = Scoreboard(TK, context=f"{CFG.tag} seed={seed} bench {n}:{k}")
        for scores, kk in packets:
            sb.expect(scores, kk)
        sent, lat, ends = {}, [], []

        def on_beat(beat, cycle, sb=sb, sent=sent, lat=lat, ends=ends):
            p = sb.packets
            sb.got(beat)
            if beat["last"]:
                lat.append(cycle - sent[p])
                ends.append(cycle)

        start = pump.cycle
        finished = await pump.run([input_beats(TK, s, kk) for s, kk in packets],
                                  on_beat=on_beat, on_sent=lambda p, c: sent.__setitem__(p, c),
                                  serial=serial,
                                  max_cycles=pump.cycle + _max_cycles(packets, 0))
        report = sb.finish()
        env.record("bench" if serial else "throughput", {
            "n": n, "k": k, "latency": lat, "mismatches": sb.mismatches, "first": report,
            "cycles": pump.cycle - start,
            "cycles_per_packet": (ends[-1] - ends[0]) / max(1, len(ends) - 1)})
        assert finished and report is None, report
    env.advance(len(pairs), len(pairs), "bench points")
