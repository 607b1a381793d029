"""``make demo``: generate → simulate against the golden model → synthesize → bench → report.

Writes ``OUT/report.md`` (and the artefacts of every step under ``OUT``) and prints where it
is. Every number in the report is read from this run's own outputs.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from .presets import PRESETS

__all__ = ["run_demo"]


def _step(msg: str):
    print(f"==> {msg}", flush=True)


def _core_section(out: Path, quick: bool, area: dict):
    """The core end to end at ``ci`` (Icarus): a multi-layer summarization and decode steps
    with pruning, checked against the golden model, their keep lists, DRAM traffic and
    cycles; the keep-ratio sweep (``ci``, Icarus); the trace replay (``eighth``, Verilator).
    ``area``: the ``eighth`` core's total row of section 3."""
    from sim.runner import run_cocotb

    from .cli import bench_core_sweep, bench_core_trace, _table

    t0 = time.time()
    r = run_cocotb(PRESETS["ci"], "core", simulator="icarus", packets=24, seed=1,
                   stalls="0:0,0:0.5")
    runs = r.result.get("runs", [])
    layers = runs[0]["layers"] if runs else []
    print(f"    core ci on icarus: {len(layers)} layers bit-exact x {len(runs)} AXI pause "
          f"settings: {'yes' if r.ok else 'NO'} ({time.time() - t0:.0f} s)")
    cols = ["layer", "step", "mode", "tokens", "heads", "queries", "refetched", "rd", "wr",
            "cycles"]
    keep = "\n".join(f"- layer {x['layer']}, step {x['step']}: tokens {x['kept']}, heads "
                      f"{x['kept_heads']}" for x in layers if x["step"] <= 1)
    bench = out / "bench"
    sweep = bench_core_sweep(PRESETS["ci"], n=48, heads=4, layers=2,
                             ratios=[1.0, 0.75, 0.5, 0.25], simulator="icarus", seed=1,
                             out=bench)
    trace = Path(__file__).resolve().parents[2] / "shared" / "workloads" / "spatten-gpt2" / \
        "gpt2-small-wikitext2-pruned.csv"
    md_trace = "(the authors' traces are not in ../shared/workloads here)"
    if trace.exists():
        bench_core_trace(PRESETS["eighth"], trace, rows=4 if quick else 12,
                         simulator="verilator", seed=1, out=bench)
        md_trace = (bench / f"core_trace_{trace.stem}.md").read_text()
    md = ("## 5. The SpAtten core\n\n"
          "### Layers with cascade pruning (`ci`, Icarus, against the golden model)\n\n"
          "A 4-layer, 4-head summarization of 24 tokens (cascade token and head pruning, "
          "local value pruning, MSB-only layers with refetches), decode steps on the same "
          "state (a sink, a recent window of 2, age normalisation), then bad descriptors. "
          "Every output row, keep list, status code, DRAM byte counter and counter record "
          f"equals the golden model's: {'yes' if r.ok else 'NO'}, with AXI pauses 0 and 0.5 "
          "on every channel. "
          "Mode 0 is summarization, 1 a decode step; rd/wr are DRAM bytes, cycles the "
          "layer's CYC register.\n\n" + _table(layers, cols)
          + "\n\nKeep lists (positions kept, heads kept):\n\n" + keep
          + "\n\nArea (section 3): the `eighth` core is "
          f"{area.get('area_um2', 0) / 1e6:.2f} mm² of standard cells on OSU 0.18 µm (SRAM "
          f"macros excluded), {area.get('fmax_mhz')} MHz for its slowest block."
          + "\n\n### Keep-ratio sweep (`ci`, Icarus)\n\n"
          + (bench / "core_sweep.md").read_text()
          + "\n![sweep](bench/core_sweep.png)\n\n### GPT-2 trace replay (`eighth`, Verilator)"
          "\n\nAt `eighth` the token selection has 2 lanes, so its passes over ~1000 "
          "positions (the scores, four radix-8 levels of the 32-bit token top-k engine, the "
          "mask write, the importance merge) cost several thousand cycles per decode step and "
          "dominate every row here; the README has the `paper` replay (16 lanes).\n\n"
          + md_trace)
    return {"layers": layers, "sweep": sweep}, {"ok": r.ok, "md": md}


def run_demo(out: Path, *, quick: bool = False) -> int:
    from sim.lint import lint
    from sim.runner import run_cocotb

    from sim import accuracy

    from .cli import (SYNTH_COLUMNS, _table, bench_head, bench_topk, hier_breakdown,
                      run_synth_block)
    from hdl.blocks import emit

    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    ok = True

    _step("1/6 generate Verilog (top-k engine and head pipeline; ci, paper, eighth)")
    gen_rows = []
    for name in ("ci", "paper", "eighth"):
        for block in ("topk", "head"):
            em = emit(PRESETS[name], block, out / "generate" / name / block)
            nlint = len(lint(em.verilog))
            gen_rows.append({"config": name, "block": block, "verilog": str(em.verilog),
                             "lines": em.verilog.read_text().count("\n"),
                             "verilator -Wall warnings": nlint, "sha256": em.sha256[:16]})
            print(f"    {em.verilog}: verilator --lint-only -Wall → {nlint} warnings")
            ok &= nlint == 0
    sections.append("## 1. Generated Verilog\n\n" + _table(
        gen_rows, ["config", "block", "lines", "verilator -Wall warnings", "sha256",
                   "verilog"]) + "\n\nConfig tags: " + "; ".join(
        f"`{n}` = `{PRESETS[n].tag}`" for n in ("ci", "paper", "eighth")) + ".")

    _step("2/6 cocotb simulation against the golden model (random bubbles and back-pressure)")
    sim_rows = []
    plan = [("ci", "icarus", 100 if quick else 250), ("paper", "verilator", 40 if quick else 150)]
    for name, simulator, packets in plan:
        print(f"    {name} on {simulator}: {2 * packets} packets"
              + (" (Verilator build: a minute or two)" if simulator == "verilator" else ""),
              flush=True)
        t0 = time.time()
        r = run_cocotb(PRESETS[name], "topk", simulator=simulator, packets=packets, seed=1,
                       stalls="0:0,0.3:0.5")
        for x in r.result.get("runs", []):
            sim_rows.append({"config": name, "simulator": simulator,
                             "stall in/out": f"{x['stall'][0]}/{x['stall'][1]}",
                             "packets": x["packets"], "matched": x["matched"],
                             "mismatches": x["mismatches"], "cycles": x["cycles"],
                             "wall s": round(time.time() - t0, 1)})
            print(f"    stall {x['stall']}: {x['matched']}/{x['packets']} packets bit-exact, "
                  f"{x['mismatches']} mismatching beats, {x['cycles']} cycles")
        ok &= r.ok
    head_rows = []
    plan = [("ci", "icarus", 30 if quick else 100), ("paper", "verilator", 4 if quick else 8)]
    for name, simulator, passes in plan:
        print(f"    head {name} on {simulator}: {2 * passes} queries"
              + (" (Verilator build of 1024 multipliers: several minutes)"
                 if simulator == "verilator" else ""), flush=True)
        t0 = time.time()
        r = run_cocotb(PRESETS[name], "head", simulator=simulator, packets=passes, seed=1,
                       stalls="0:0,0.3:0.5")
        for x in r.result.get("runs", []):
            head_rows.append({"config": name, "simulator": simulator,
                              "stall in/out": f"{x['stall'][0]}/{x['stall'][1]}",
                              "queries": x["queries"], "refetched": x["refetched"],
                              "passes": x["passes"], "beats checked": sum(x["beats"].values()),
                              "mismatches": x["mismatches"], "cycles": x["cycles"],
                              "wall s": round(time.time() - t0, 1)})
            print(f"    stall {x['stall']}: {x['queries']} queries ({x['refetched']} "
                  f"refetched), {sum(x['beats'].values())} beats checked, "
                  f"{x['mismatches']} mismatching, {x['cycles']} cycles")
        ok &= r.ok
    sections.append("## 2. Bit-exact simulation against the golden model\n\n"
                    "### Top-k engine\n\n"
                    "Edge cases of the golden spec first (n in {0, 1, capacity} × k in "
                    "{0, 1, n-1, n, >n} × random/equal/ties/sorted/reverse/extreme), then "
                    "random packets, some longer than the capacity. Every output bit is "
                    "compared.\n\n" + _table(sim_rows, list(sim_rows[0]))
                    + "\n\n### Head pipeline\n\n"
                    "Queries of edge sizes (0, capacity, 1, capacity + 3, …) then random "
                    "sizes; random, peaked and flat score rows; MSB-only passes that are "
                    "refetched are repeated at full precision, as the host would. Every beat "
                    "of `dec`, `p`, `vreq` and `o` is compared with the golden model; V rows "
                    "are served by a memory model.\n\n"
                    + _table(head_rows, list(head_rows[0])))

    _step("3/6 synthesis: paper top-k (cmos, asic, ecp5); eighth core area by block (asic)")
    syn = []
    for target in ("cmos", "asic", "ecp5"):
        t0 = time.time()
        row = run_synth_block(PRESETS["paper"], "topk", target,
                              out / "synth" / "topk" / PRESETS["paper"].tag)
        row["wall s"] = round(time.time() - t0, 1)
        syn.append(row)
        print("    " + ", ".join(f"{c}={row.get(c)}" for c in SYNTH_COLUMNS[target][:6]))
    syn_md = []
    for row in syn:
        syn_md.append(f"### {row['target']}\n\n"
                      + _table([row], SYNTH_COLUMNS[row["target"]] + ["wall s"]))
    t0 = time.time()
    parts = hier_breakdown(PRESETS["eighth"], "core", "asic", out / "synth")
    for row in parts:
        print(f"    eighth {row['block']}: area_um2={row.get('area_um2')}, "
              f"fmax_mhz={row.get('fmax_mhz')}")
    print(f"    eighth core, hierarchical: {time.time() - t0:.0f} s")
    syn += parts
    sections.append("## 3. Synthesis\n\n### `paper` top-k\n\n" + "\n\n".join(syn_md)
                    + "\n\n### The `eighth` core, area by block (asic, OSU 0.18 µm; memories "
                    "are SRAM macros, excluded)\n\n"
                    "Hierarchical synthesis (`spatten synth core --config eighth --target asic "
                    "--breakdown`): every block on its own, the head and the core with their "
                    "blocks as black boxes (the glue rows: the head's FIFOs and adapters; the "
                    "core's controller, K/V buffers and FIFOs), the head and the core as sums. "
                    "Fmax of a sum is its slowest block's; paths between blocks are not "
                    "timed.\n\n"
                    + _table(parts, ["block", "area_um2", "share", "nand2_eq", "ff",
                                     "fmax_mhz", "memory_bits", "memory_macros"])
                    + f"\n\nYosys: {syn[0]['yosys']}.")

    _step("4/6 benches (RTL simulation, paper, Verilator): top-k latency, head throughput")
    sizes = [128, 1024] if quick else [128, 256, 512, 1024]
    rows = bench_topk(PRESETS["paper"], sizes=sizes, packets=5 if quick else 10,
                      simulator="verilator", seed=1, out=out / "bench")
    head_bench = bench_head(PRESETS["paper"], sizes=[128, 1024] if quick else [128, 512, 1024],
                            packets=8 if quick else 20, simulator="verilator", seed=1,
                            out=out / "bench")
    sections.append("## 4. Benches\n\n### Top-k latency\n\n"
                    + (out / "bench" / "topk_latency.md").read_text()
                    + "\n![latency](bench/topk_latency.png)\n\n### Head pipeline\n\n"
                    + (out / "bench" / "head_bench.md").read_text())

    _step("5/6 the SpAtten core: layers with pruning against the golden model, keep-ratio "
          "sweep, trace replay")
    core_rows, core = _core_section(out, quick, parts[-1])
    ok &= core["ok"]
    sections.append(core["md"])

    _step("6/6 accuracy of the fixed-point datapath against float64 (paper)")
    sections.append("## 6. Accuracy against float64 (`paper`, `python -m sim.accuracy`)\n\n"
                    + accuracy.report(PRESETS["paper"], level="###"))

    _step("report")
    head = (f"# SpAtten generator demo report\n\n"
            f"Generated by `make demo` on {time.strftime('%Y-%m-%d %H:%M:%S')} "
            f"({platform.node()}, Python {platform.python_version()}); "
            f"total wall time {time.time() - t_start:.0f} s. Result: "
            f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}.\n")
    report = out / "report.md"
    report.write_text(head + "\n" + "\n\n".join(sections) + "\n")
    (out / "report.json").write_text(json.dumps(
        {"generate": gen_rows, "sim": sim_rows, "sim_head": head_rows, "synth": syn,
         "bench": rows, "bench_head": head_bench, "core": core_rows, "ok": ok},
        indent=2, default=str))
    print(f"\nreport: {report.resolve()}")
    if not ok:
        print("demo: some checks failed (see the report)", file=sys.stderr)
    return 0 if ok else 1
