"""Head pipeline bench: steady-state cycles per pass, Q·K utilization and the latency of an
isolated pass, from RTL simulation."""

from __future__ import annotations

import json
from pathlib import Path

from generators.config import SpAttenConfig

from ..runner import run_cocotb
from .common import BenchFailed, md_table, prepare_out_dir, write_text

__all__ = ["bench_head", "default_sizes", "HEAD_COLUMNS", "MIN_PASSES"]

HEAD_COLUMNS = ["L", "keep", "cycles/pass", "Q·K busy cycles/pass", "Q·K utilization",
                "latency (cycles)", "passes"]
# The steady state is measured over the second half of the passes.
MIN_PASSES = 8


def default_sizes(cfg: SpAttenConfig) -> list[int]:
    """Row lengths of the bench: an eighth, a half and all of the capacity."""
    cap = cfg.topk.capacity
    return sorted({max(8, cap // d) for d in (8, 2, 1)})


def check_args(cfg: SpAttenConfig, sizes, packets: int):
    cap = cfg.topk.capacity
    bad = [n for n in sizes if not 8 <= n <= cap]
    if bad:
        raise ValueError(f"--sizes must be in 8..{cap} (the capacity of {cfg.name}), "
                         f"not {bad[0]}")
    if not isinstance(packets, int) or packets < MIN_PASSES:
        raise ValueError(f"--packets must be at least {MIN_PASSES} for the head (the steady "
                         f"state is measured over the second half), not {packets}")


def bench_head(cfg: SpAttenConfig, *, sizes=None, packets: int, simulator: str, seed: int,
               out: Path, progress=None) -> list[dict]:
    """For each L in ``sizes`` and keep in {L/4, L}: cycles per pass, Q·K utilization and
    latency; writes ``head_bench.{md,json}`` in ``out``."""
    sizes = default_sizes(cfg) if sizes is None else list(sizes)
    check_args(cfg, sizes, packets)
    out = prepare_out_dir(out)
    pairs = [(n, k) for n in sizes for k in (n // 4, n)]
    r = run_cocotb(cfg, "head", simulator=simulator, packets=packets, seed=seed,
                   stalls="0:0", bench=",".join(f"{n}:{k}" for n, k in pairs),
                   progress=progress)
    if not r.ok:
        raise BenchFailed(f"head bench simulation failed: {r.reason}")
    lat = {(x["n"], x["keep"]): x["latency"] for x in r.result.get("latency", [])}
    rows = []
    for x in r.result.get("throughput", []):
        key = (x["n"], x["keep"])
        rows.append({"L": x["n"], "keep": x["keep"],
                     "cycles/pass": round(x["cycles_per_pass"], 1),
                     "Q·K busy cycles/pass": x["qk_busy_per_pass"],
                     "Q·K utilization": f"{100 * x['qk_utilization']:.1f} %",
                     "latency (cycles)": (f"{min(lat[key])}..{max(lat[key])}"
                                          if lat.get(key) else "-"),
                     "passes": x["passes"]})
    write_text(out / "head_bench.json", json.dumps(rows, indent=2))
    md = (f"Head pipeline, `{cfg.name}` ({cfg.attn.keys_per_cycle} keys/cycle, "
          f"{cfg.attn.pv_rows} V rows/cycle), {simulator} RTL simulation, full-precision "
          f"passes back to back, no stalls; cycles/pass = Q·K input cycles per pass over the "
          f"second half of the passes (the first half fills the buffers); latency = query beat "
          f"in to output beat out of an isolated pass.\n\n" + md_table(rows, HEAD_COLUMNS))
    write_text(out / "head_bench.md", md)
    return rows
