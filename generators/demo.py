"""``make demo`` and ``make report``: generate → simulate against the golden model →
synthesize → bench → a report.

The default demo is the main job in about three minutes on two cores, at the ``ci`` preset on
Icarus: Verilog generated and linted, cocotb bit-exact runs of the top-k engine, the head
and the core, synthesis for ASIC and for ECP5 with place and route, the top-k latency and
core keep-ratio benches, and the accuracy tables. ``full=True`` (``make report``) is the
paper-scale report: ``paper`` and ``eighth`` on Verilator, the ``paper`` top-k engine on
every target, the ``eighth`` core's area by block, the ``paper`` benches and the GPT-2 trace
replay. Both write ``OUT/report.md`` and ``OUT/report.json``; every number in them is read
from this run's own outputs.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from generators.presets import PRESETS
from hdl.blocks import emit
from sim import accuracy
from sim.bench import bench_core_sweep, bench_core_trace, bench_head, bench_topk
from sim.bench.common import md_table, write_text
from sim.lint import lint
from sim.progress import Progress
from sim.results import CORE_COLUMNS
from sim.runner import run_cocotb
from synth.breakdown import COLUMNS, hier_breakdown
from synth.cache import run_synth_block

__all__ = ["run_demo", "Plan", "FAST", "FULL", "TRACE"]

TRACE = Path(__file__).resolve().parents[2] / "shared" / "workloads" / "spatten-gpt2" / \
    "gpt2-small-wikitext2-pruned.csv"


@dataclass(frozen=True)
class Plan:
    """What a demo runs: (config, block) to generate and lint; (config, block, simulator,
    packets) to simulate; (config, block, target) to synthesize; hierarchical breakdowns;
    benches."""

    name: str
    generate: tuple = ()
    sims: tuple = ()
    synth: tuple = ()
    breakdowns: tuple = ()
    topk_bench: tuple | None = None       # (config, simulator, sizes, packets)
    head_bench: tuple | None = None       # (config, simulator, sizes, packets)
    core_sweep: tuple | None = None       # (config, simulator, tokens, heads, layers)
    trace: tuple | None = None            # (config, simulator, rows)
    extra: dict = field(default_factory=dict)


FAST = Plan(
    name="demo",
    generate=(("ci", "topk"), ("ci", "head"), ("ci", "core")),
    sims=(("ci", "topk", "icarus", 250), ("ci", "head", "icarus", 60),
          ("ci", "core", "icarus", 24)),
    synth=(("ci", "topk", "asic"), ("ci", "topk", "ecp5"), ("ci", "head", "asic")),
    topk_bench=("ci", "icarus", None, 10),
    core_sweep=("ci", "icarus", 32, 2, 2),
)
FULL = Plan(
    name="report",
    generate=tuple((c, b) for c in ("ci", "paper", "eighth") for b in ("topk", "head", "core")),
    sims=(("ci", "topk", "icarus", 500), ("paper", "topk", "verilator", 300),
          ("ci", "head", "icarus", 200), ("paper", "head", "verilator", 16),
          ("ci", "core", "icarus", 24)),
    synth=(("paper", "topk", "cmos"), ("paper", "topk", "asic"), ("paper", "topk", "ecp5"),
           ("ci", "head", "asic"), ("ci", "head", "ecp5")),
    breakdowns=(("eighth", "core", "asic"),),
    topk_bench=("paper", "verilator", None, 10),
    head_bench=("paper", "verilator", None, 20),
    core_sweep=("ci", "icarus", 48, 4, 2),
    trace=("eighth", "verilator", 12),
)


class _Report:
    def __init__(self, out: Path, progress: Progress):
        self.out, self.progress = out, progress
        self.sections: list[str] = []
        self.data: dict = {}
        self.ok = True

    def say(self, text: str):
        self.progress.note(f"    {text}")

    def check(self, ok: bool, what: str):
        self.ok &= bool(ok)
        if not ok:
            self.say(f"FAILED: {what}")


def _generate(rep: _Report, plan: Plan):
    rows = []
    with rep.progress.task("generate and lint Verilog", total=len(plan.generate)) as task:
        for name, block in plan.generate:
            task.say(f"{block} [{name}]")
            em = emit(PRESETS[name], block, rep.out / "generate" / name / block)
            warnings = lint(em.verilog)
            rows.append({"config": name, "block": block, "verilog": str(em.verilog),
                         "lines": em.verilog.read_text().count("\n"),
                         "verilator -Wall warnings": len(warnings), "sha256": em.sha256[:16]})
            rep.check(not warnings, f"lint of {em.verilog}: {warnings[:1]}")
            task.advance()
    for r in rows:
        rep.say(f"{r['verilog']}: {r['lines']} lines, verilator --lint-only -Wall → "
                f"{r['verilator -Wall warnings']} warnings")
    rep.data["generate"] = rows
    names = sorted({n for n, _ in plan.generate})
    rep.sections.append("## 1. Generated Verilog\n\n" + md_table(
        rows, ["config", "block", "lines", "verilator -Wall warnings", "sha256", "verilog"])
        + "\n\nConfig tags: " + "; ".join(f"`{n}` = `{PRESETS[n].tag}`" for n in names) + ".")


def _simulate(rep: _Report, plan: Plan):
    rows, core_md = [], ""
    for name, block, simulator, packets in plan.sims:
        t0 = time.time()
        if block == "core":
            r = run_cocotb(PRESETS[name], "core", simulator=simulator, packets=packets, seed=1,
                           stalls="0:0,0:0.5", progress=rep.progress)
            runs = r.result.get("runs", [])
            layers = runs[0]["layers"] if runs else []
            rows.append({"config": name, "block": block, "simulator": simulator,
                         "stall in/out": "AXI 0 and 0.5", "work": f"{len(layers)} layers × "
                         f"{len(runs)}", "bit-exact": "yes" if r.ok else "NO",
                         "cycles": sum(x["cycles"] for x in layers),
                         "wall s": round(time.time() - t0, 1)})
            core_md = _core_md(layers, r.ok)
            rep.data["core_layers"] = layers
        else:
            half = packets // 2
            r = run_cocotb(PRESETS[name], block, simulator=simulator, packets=half, seed=1,
                           stalls="0:0,0.3:0.5", progress=rep.progress)
            for x in r.result.get("runs", []):
                work = x.get("packets", x.get("queries"))
                rows.append({"config": name, "block": block, "simulator": simulator,
                             "stall in/out": f"{x['stall'][0]}/{x['stall'][1]}",
                             "work": f"{work} {'packets' if block == 'topk' else 'queries'}",
                             "bit-exact": "yes" if x["mismatches"] == 0 and r.ok else "NO",
                             "cycles": x["cycles"], "wall s": round(time.time() - t0, 1)})
        rep.check(r.ok, f"{block} [{name}] on {simulator}: {r.reason}")
        rep.say(f"{block} [{name}] on {simulator}: "
                f"{'bit-exact' if r.ok else 'FAILED: ' + r.reason} ({time.time() - t0:.0f} s)")
    rep.data["sim"] = rows
    rep.sections.append(
        "## 2. Bit-exact simulation against the golden model\n\n"
        "Every output bit of every beat is compared with the NumPy golden model, with random "
        "valid bubbles on the inputs and ready back-pressure on the outputs (stall 0.3/0.5), "
        "or random pauses on every AXI channel (the core). Top-k: the golden spec's edge "
        "cases first, then random packets, some longer than the capacity. Head: queries of "
        "edge sizes then random sizes; MSB-only passes that are refetched are repeated at "
        "full precision, as the host would.\n\n"
        + md_table(rows, ["config", "block", "simulator", "stall in/out", "work",
                          "bit-exact", "cycles", "wall s"]) + core_md)


def _core_md(layers, ok) -> str:
    keep = "\n".join(f"- layer {x['layer']}, step {x['step']}: tokens {x['kept']}, heads "
                     f"{x['kept_heads']}" for x in layers if x["step"] <= 1)
    return ("\n\n### The core's layers (first AXI setting)\n\nA 4-layer, 4-head summarization "
            "(cascade token and head pruning, local value pruning, MSB-only layers with "
            "refetches), decode steps on the same state (a sink, a recent window of 2, age "
            "normalisation), then bad descriptors and injected AXI errors. Outputs, keep "
            "lists, status codes, DRAM byte counters and counter records equal the golden "
            f"model's: {'yes' if ok else 'NO'}. Mode 0 is summarization, 1 a decode step; "
            "rd/wr are DRAM bytes, cycles the layer's CYC register.\n\n"
            + md_table(layers, CORE_COLUMNS) + "\n\nKeep lists (positions, heads):\n\n" + keep)


def _synthesize(rep: _Report, plan: Plan):
    md = []
    with rep.progress.task("synthesis", total=len(plan.synth)) as task:
        for name, block, target in plan.synth:
            task.say(f"{block} [{name}] {target}")
            t0 = time.time()
            row = run_synth_block(PRESETS[name], block, target,
                                  rep.out / "synth" / block / PRESETS[name].tag,
                                  progress=task.say)
            row["wall s"] = round(time.time() - t0, 1)
            rep.data.setdefault("synth", []).append(row)
            cols = COLUMNS[target][:6]
            rep.say(f"{block} [{name}] {target}: "
                    + ", ".join(f"{c}={row.get(c)}" for c in cols))
            md.append(f"### `{name}` {block}, {target}\n\n"
                      + md_table([row], COLUMNS[target] + ["wall s"]))
            task.advance()
    for name, block, target in plan.breakdowns:
        with rep.progress.task(f"{block} [{name}] {target} by parts") as task:
            parts = hier_breakdown(PRESETS[name], block, target, rep.out / "synth",
                                   progress=task.say)
        rep.data.setdefault("breakdown", []).extend(parts)
        total = parts[-1]
        rep.say(f"{block} [{name}] by parts: {total.get('area_um2')} µm², "
                f"{total.get('fmax_mhz')} MHz (slowest part)")
        md.append(f"### The `{name}` {block}, area by block ({target}; memories are SRAM "
                  "macros, excluded)\n\nHierarchical synthesis (`spatten synth core --config "
                  f"{name} --target {target} --breakdown`): every block on its own, the head "
                  "and the core with their blocks as black boxes (the glue rows), the sums; "
                  "Fmax of a sum is its slowest block's; paths between blocks are not timed."
                  "\n\n" + md_table(parts, ["block", "area_um2", "share", "nand2_eq", "ff",
                                            "fmax_mhz", "memory_bits", "memory_macros"]))
    yosys = rep.data["synth"][0]["yosys"] if rep.data.get("synth") else "?"
    rep.sections.append("## 3. Synthesis\n\nASIC: OSU 0.18 µm standard cells, area without "
                        "SRAM macros, OpenSTA register-to-register Fmax. ECP5: LFE5U-85F out "
                        "of context, nextpnr place and route, seed 1.\n\n" + "\n\n".join(md)
                        + f"\n\nYosys: {yosys}.")


def _benches(rep: _Report, plan: Plan):
    bench = rep.out / "bench"
    md = ["## 4. Benches (RTL simulation; every run also checked against the golden model)"]
    if plan.topk_bench:
        name, simulator, sizes, packets = plan.topk_bench
        rep.data["bench_topk"] = bench_topk(PRESETS[name], sizes=sizes, packets=packets,
                                            simulator=simulator, seed=1, out=bench,
                                            progress=rep.progress)
        worst = max(r["rtl_max"] - r["worst_case_formula"] for r in rep.data["bench_topk"])
        rep.check(worst <= 0, f"top-k latency above its bound by {worst} cycles")
        rep.say(f"top-k latency [{name}]: {len(rep.data['bench_topk'])} (n, k) points, "
                f"every one within the bound: {worst <= 0}")
        md.append("### Top-k latency\n\n" + (bench / "topk_latency.md").read_text()
                  + "\n![latency](bench/topk_latency.png)")
    if plan.head_bench:
        name, simulator, sizes, packets = plan.head_bench
        rep.data["bench_head"] = bench_head(PRESETS[name], sizes=sizes, packets=packets,
                                            simulator=simulator, seed=1, out=bench,
                                            progress=rep.progress)
        md.append("### Head pipeline\n\n" + (bench / "head_bench.md").read_text())
    if plan.core_sweep:
        name, simulator, n, heads, layers = plan.core_sweep
        rep.data["core_sweep"] = bench_core_sweep(PRESETS[name], n=n, heads=heads,
                                                  layers=layers, simulator=simulator, seed=1,
                                                  out=bench, progress=rep.progress)
        md.append(f"### Core keep-ratio sweep (`{name}`, {simulator})\n\n"
                  + (bench / "core_sweep.md").read_text() + "\n![sweep](bench/core_sweep.png)")
    if plan.trace:
        name, simulator, rows = plan.trace
        if TRACE.exists():
            rep.data["trace"] = bench_core_trace(PRESETS[name], TRACE, rows=rows,
                                                 simulator=simulator, seed=1, out=bench,
                                                 progress=rep.progress)
            md.append(f"### GPT-2 trace replay (`{name}`, {simulator})\n\nAt `eighth` the "
                      "token selection has 2 lanes, so its passes over ~1000 positions cost "
                      "several thousand cycles per decode step and dominate every row here; "
                      "the README has the `paper` replay (16 lanes).\n\n"
                      + (bench / f"core_trace_{TRACE.stem}.md").read_text())
        else:
            md.append(f"### GPT-2 trace replay\n\nNot run: {TRACE} is not here.")
    rep.sections.append("\n\n".join(md))


def run_demo(out: Path, *, full: bool = False, progress: Progress | None = None) -> int:
    """Run the demo (or with ``full`` the paper-scale report) into ``out``; 0 when every
    check passed."""
    plan = FULL if full else FAST
    progress = progress or Progress()
    rep = _Report(Path(out), progress)
    t_start = time.time()
    steps = [("generate Verilog and lint it", _generate),
             ("cocotb simulation against the golden model", _simulate),
             ("synthesis: ASIC and ECP5 (place and route)", _synthesize),
             ("benches", _benches)]
    for i, (title, step) in enumerate(steps, 1):
        progress.note(f"==> {i}/{len(steps) + 1} {title}")
        step(rep, plan)
    progress.note(f"==> {len(steps) + 1}/{len(steps) + 1} accuracy against float64")
    rep.sections.append("## 5. Accuracy against float64 (`paper`, `python -m sim.accuracy`)"
                        "\n\n" + accuracy.report(PRESETS["paper"], level="###"))
    wall = time.time() - t_start
    head = (f"# SpAtten generator {plan.name}\n\nGenerated by `make {plan.name}` on "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({platform.node()}, Python "
            f"{platform.python_version()}); wall time {wall:.0f} s. Result: "
            f"{'all checks passed' if rep.ok else 'SOME CHECKS FAILED'}.\n")
    report = write_text(rep.out / "report.md", head + "\n" + "\n\n".join(rep.sections) + "\n")
    write_text(rep.out / "report.json", json.dumps({**rep.data, "ok": rep.ok, "wall_s": wall},
                                                   indent=2, default=str))
    print(f"\n{plan.name}: {'all checks passed' if rep.ok else 'SOME CHECKS FAILED'} in "
          f"{wall:.0f} s; report: {report.resolve()}")
    return 0 if rep.ok else 1
