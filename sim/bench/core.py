"""Core benches from RTL simulation, every layer also checked against the golden model:
the replay of sampled rows of the SpAtten authors' GPT-2 traces, and a summarization
keep-ratio sweep."""

from __future__ import annotations

import json
from pathlib import Path

from generators.config import SpAttenConfig

from ..runner import run_cocotb
from ..trace import dense_traffic, load_trace, row_bound, row_params, spread, summary
from .common import BenchFailed, md_table, prepare_out_dir, write_text

__all__ = ["bench_core_trace", "bench_core_sweep", "sweep_defaults", "CORE_TRACE_COLUMNS",
           "CORE_SWEEP_COLUMNS", "SWEEP_RATIOS"]

CORE_TRACE_COLUMNS = ["row", "iteration", "layer", "head", "L", "keys", "values", "refetch",
                      "cycles", "bound", "cycles/bound", "limit", "DRAM read", "DRAM dense",
                      "dense/read"]
CORE_SWEEP_COLUMNS = ["keep ratio", "tokens per layer", "cycles", "cycles vs dense",
                      "DRAM read", "DRAM vs dense", "DRAM written"]
SWEEP_RATIOS = (1.0, 0.75, 0.5, 0.25)


def _run(cfg, entries, *, simulator, seed, out: Path, tag: str, progress):
    spec = (out / f"core_{tag}_entries.json").resolve()
    write_text(spec, json.dumps({"entries": entries}))
    r = run_cocotb(cfg, "core", simulator=simulator, packets=1, seed=seed, stalls="0:0",
                   bench=str(spec), progress=progress)
    if not r.ok:
        raise BenchFailed(f"core bench failed in simulation: {r.reason}")
    return r.result["bench"][0]["layers"]


def bench_core_trace(cfg: SpAttenConfig, trace_path, *, rows: int, simulator: str, seed: int,
                     out: Path, progress=None) -> dict:
    """Replay ``rows`` rows of an authors' trace, picked deterministically
    (:func:`sim.trace.spread`), through RTL simulation of the core: each row is one decode
    step of one head on a CLEARed core (``L`` positions, the row's kept keys and values, its
    refetch forced or not); cycles are the core's CYC register (selection, keep-list
    write-back, the job, importance merge), DRAM bytes its RD register. Writes
    ``core_trace_<name>.{md,json}``."""
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"--rows must be at least 1, not {rows}")
    tr = load_trace(trace_path)
    out = prepare_out_dir(out)
    picked = spread(tr, rows)
    entries = []
    for row in picked:
        p = row_params(cfg, row)
        entries.append({"kind": "row", "n": p["n"], "token_keep": p["token_keep"],
                        "value_keep": p["value_keep"], "msb_only": p["msb_only"],
                        "refetch": p["force_refetch"]})
    got = _run(cfg, entries, simulator=simulator, seed=seed, out=out,
               tag=f"trace_{Path(trace_path).stem}", progress=progress)
    table = []
    tot = dict.fromkeys(("cycles", "bound", "read", "dense"), 0)
    for row, g in zip(picked, got):
        b = row_bound(cfg, row)
        dense = dense_traffic(cfg, row).read
        tot["cycles"] += g["cycles"]
        tot["bound"] += b["cycles"]
        tot["read"] += g["rd"]
        tot["dense"] += dense
        table.append({"row": tr.rows.index(row), "iteration": row.iteration_id,
                      "layer": row.layer_id, "head": row.head_id,
                      "L": row.sentence_length_L, "keys": row.key_fetch_num,
                      "values": row.value_fetch_num, "refetch": g["refetched"],
                      "cycles": g["cycles"], "bound": b["cycles"],
                      "cycles/bound": f"{g['cycles'] / b['cycles']:.2f}", "limit": b["limit"],
                      "DRAM read": g["rd"], "DRAM dense": dense,
                      "dense/read": f"{dense / g['rd']:.2f}"})
    scale = len(tr.rows) / len(picked)
    res = {"trace": str(trace_path), "model": tr.model, "rows": len(tr.rows),
           "sampled": len(picked), "summary": summary(tr), "table": table, "totals": tot,
           "scaled": {k: round(v * scale) for k, v in tot.items()}}
    name = Path(trace_path).stem
    write_text(out / f"core_trace_{name}.json", json.dumps(res, indent=2, default=str))
    md = [f"Trace replay of `{Path(trace_path).name}` ({tr.model}) on `{cfg.name}` "
          f"({simulator}): {len(picked)} of {len(tr.rows)} rows, picked by a golden-ratio "
          f"sequence over the file (`sim.trace.spread`, deterministic). Bound: "
          f"`sim.trace.BOUND_DEFINITION` ({cfg.core.bus_bytes} bytes of DRAM per cycle).", "",
          md_table(table, CORE_TRACE_COLUMNS), "",
          f"Sampled rows: {tot['cycles']} cycles against a bound of {tot['bound']} "
          f"({tot['cycles'] / tot['bound']:.2f}x); DRAM read {tot['read']} bytes against "
          f"{tot['dense']} dense ({tot['dense'] / tot['read']:.2f}x less). Scaled to all "
          f"{len(tr.rows)} rows (x{scale:.1f}): {res['scaled']['cycles']:,} cycles, bound "
          f"{res['scaled']['bound']:,}; DRAM {res['scaled']['read']:,} bytes, dense "
          f"{res['scaled']['dense']:,}."]
    write_text(out / f"core_trace_{name}.md", "\n".join(md) + "\n")
    return res


def sweep_defaults(cfg: SpAttenConfig) -> dict:
    """The sweep's defaults for ``cfg``: 128 tokens (or the capacity), up to 4 heads, 2
    layers."""
    return {"n": min(128, cfg.topk.capacity), "heads": min(4, cfg.core.heads),
            "layers": min(2, cfg.core.layers)}


def check_sweep(cfg: SpAttenConfig, n: int, heads: int, layers: int):
    if not 1 <= heads <= cfg.core.heads or not 1 <= layers <= cfg.core.layers:
        raise ValueError(f"--heads must be in 1..{cfg.core.heads} and --layers in "
                         f"1..{cfg.core.layers}, not {heads} and {layers}")
    if not 8 <= n <= cfg.topk.capacity:
        raise ValueError(f"--tokens must be in 8..{cfg.topk.capacity}, not {n}")


def bench_core_sweep(cfg: SpAttenConfig, *, n: int, heads: int, layers: int,
                     ratios=SWEEP_RATIOS, simulator: str, seed: int, out: Path,
                     progress=None) -> list[dict]:
    """Synthetic summarization: ``layers`` layers of ``n`` tokens and ``heads`` heads; at
    keep ratio ``r`` layer ``l`` keeps ``round(n * r**(l+1))`` tokens (cascade) and local
    value pruning keeps the same share of each row; every head is kept and every pass is at
    full precision. Cycles (CYC, summed over the layers) and DRAM bytes (RD, WR) from RTL
    simulation, against the dense run (r = 1). Writes ``core_sweep.{md,json,png}``."""
    check_sweep(cfg, n, heads, layers)
    out = prepare_out_dir(out)
    entries = []
    for r in ratios:
        keeps = [max(1, round(n * r ** (li + 1))) for li in range(layers)]
        entries.append({"kind": "summarize", "n": n, "heads": heads,
                        "layers": [{"token_keep": k, "head_keep": heads,
                                    "value_keep": max(1, round(k * r)), "msb_only": 0}
                                   for k in keeps]})
    got = _run(cfg, entries, simulator=simulator, seed=seed, out=out, tag="sweep",
               progress=progress)
    rows = []
    for i, (r, e) in enumerate(zip(ratios, entries)):
        mine = [g for g in got if g["entry"] == i]
        rows.append({"keep ratio": r, "tokens per layer": "/".join(
            str(x["token_keep"]) for x in e["layers"]),
            "cycles": sum(g["cycles"] for g in mine), "DRAM read": sum(g["rd"] for g in mine),
            "DRAM written": sum(g["wr"] for g in mine)})
    dense = next((x for x in rows if x["keep ratio"] == 1.0), rows[0])
    for x in rows:
        x["cycles vs dense"] = f"{x['cycles'] / dense['cycles']:.3f}"
        x["DRAM vs dense"] = f"{x['DRAM read'] / dense['DRAM read']:.3f}"
    write_text(out / "core_sweep.json", json.dumps(rows, indent=2))
    write_text(out / "core_sweep.md",
               f"Summarization on `{cfg.name}` ({simulator}): {layers} layers of {n} tokens, "
               f"{heads} heads, full precision; layer l keeps n·r^(l+1) tokens and r of each "
               f"row's values.\n\n" + md_table(rows, CORE_SWEEP_COLUMNS) + "\n")
    _plot_sweep(rows, out / "core_sweep.png", cfg)
    return rows


def _plot_sweep(rows, path: Path, cfg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    r = [x["keep ratio"] for x in rows]
    ax.plot(r, [float(x["cycles vs dense"]) for x in rows], "o-", label="cycles (RTL)")
    ax.plot(r, [float(x["DRAM vs dense"]) for x in rows], "s-", label="DRAM bytes read (RTL)")
    ax.set_xlabel("keep ratio r (layer l keeps n·r^(l+1) tokens)")
    ax.set_ylabel("relative to dense (r = 1)")
    ax.set_title(f"SpAtten core, cascade token + local value pruning ({cfg.name})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
