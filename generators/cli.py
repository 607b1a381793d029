"""The ``spatten`` command: generate, simulate, synthesize and benchmark the blocks.

Every subcommand has ``--help``. Bad arguments and missing tools end with a one-line reason
(``spatten: error: ...``) and exit status 2; a simulation mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from .config import ConfigError
from hdl.blocks import BLOCKS, emit
from .presets import PRESETS, get_config

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


class CliError(Exception):
    """A one-line, user-facing failure."""


def _progress(msg: str):
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _config(name: str):
    try:
        return get_config(name)
    except ConfigError as e:
        raise CliError(str(e)) from None


def _table(rows: list[dict], cols: list[str]) -> str:
    """A markdown table of ``rows`` (dicts) with columns ``cols``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


# ---- generate ---------------------------------------------------------------------------
def cmd_generate(args) -> int:
    cfg = _config(args.config)
    em = emit(cfg, args.block, Path(args.out))
    print(f"wrote {em.verilog} ({em.top}, sha256 {em.sha256[:16]}…) and {em.manifest}")
    return 0


# ---- sim --------------------------------------------------------------------------------
def cmd_sim(args) -> int:
    from sim.runner import run_cocotb

    cfg = _config(args.config)
    if args.packets < 1:
        raise CliError(f"--packets must be at least 1, not {args.packets}")
    stalls = "0:0" if args.no_stall else "0:0,0.3:0.5"
    _progress(f"generate + build {args.block} [{cfg.tag}] for {args.simulator}"
              + (" (a Verilator build takes a minute or two)" if args.simulator == "verilator"
                 else ""))
    t0 = time.time()
    if args.block == "core":
        # the core's streams are internal: its stalls are AXI pauses (0 and 0.5)
        return _sim_core(cfg, args, "0:0" if args.no_stall else "0:0,0:0.5", t0)
    per = max(1, args.packets // len(stalls.split(",")))
    r = run_cocotb(cfg, args.block, simulator=args.simulator, packets=per, seed=args.seed,
                   stalls=stalls, waves=args.waves or None)
    runs = r.result.get("runs", [])
    unit = {"topk": "packets", "dma": "rows"}.get(args.block, "passes")
    for x in runs:
        if args.block == "dma":
            extra = (f"read beats {x['read_beats']}, RAM after writes "
                     f"{'as expected' if x['ram_ok'] else 'WRONG'}, byte counters "
                     f"{'right' if x['counters_ok'] else 'WRONG'}")
        elif unit == "packets":
            extra = f"matched {x['matched']}"
        else:
            extra = (f"queries {x['queries']} ({x['refetched']} refetched), beats checked "
                     + ", ".join(f"{k} {v}" for k, v in sorted(x["beats"].items())))
        print(f"stall in/out {x['stall'][0]:.1f}/{x['stall'][1]:.1f}: {unit} {x[unit]}, "
              f"{extra}, cycles {x['cycles']}, mismatches {x['mismatches']}")
        if x.get("first"):
            print(f"  {x['first']}")
    total = sum(x[unit] for x in runs)
    bad = sum(x["mismatches"] for x in runs)
    print(f"{args.block} [{cfg.tag}] on {args.simulator}, seed {args.seed}: {total} {unit}, "
          f"{sum(x['cycles'] for x in runs)} cycles, {bad} mismatches, "
          f"{time.time() - t0:.1f} s (logs: {r.build_dir})")
    if r.waves:
        print(f"waveform: {r.waves}")
    if not r.ok or not runs:
        print(f"FAIL: {r.failed} of {r.tests} cocotb tests failed", file=sys.stderr)
        return 1
    return 0


def _sim_core(cfg, args, stalls, t0) -> int:
    """The core end to end (sim/tb/tb_core.py): --packets is the summarization's tokens."""
    from sim.runner import run_cocotb

    r = run_cocotb(cfg, "core", simulator=args.simulator, packets=args.packets,
                   seed=args.seed, stalls=stalls, waves=args.waves or None)
    runs = r.result.get("runs", [])
    cols = ["layer", "step", "mode", "tokens", "heads", "queries", "refetched", "rd", "wr",
            "cycles"]
    for x in runs:
        print(f"AXI pauses {x['stall'][1]:.1f}: {len(x['layers'])} good layers (mode 0 "
              f"summarization, 1 decode step), status codes {x['codes']}")
        print(_table(x["layers"], cols))
    print(f"core [{cfg.tag}] on {args.simulator}, seed {args.seed}: outputs, keep lists, codes "
          f"and DRAM byte counters {'all as the golden model' if r.ok else 'MISMATCHED'}, "
          f"{time.time() - t0:.1f} s (logs: {r.build_dir})")
    if not r.ok or not runs:
        print(f"FAIL: {r.failed} of {r.tests} cocotb tests failed (see {r.build_dir}/sim.log)",
              file=sys.stderr)
        return 1
    return 0


# ---- synth ------------------------------------------------------------------------------
SYNTH_COLUMNS = {
    "cmos": ["transistors", "gates", "ff", "memory_bits", "memory_macros", "area_excludes"],
    "asic": ["area_um2", "sequential_area_um2", "nand2_eq", "ff", "critical_path_ns",
             "fmax_mhz", "memory_bits", "memory_macros", "area_excludes"],
    "ice40": ["lut", "carry", "ff", "bram", "fmax_mhz", "device", "note"],
    "ecp5": ["lut", "carry", "ff", "bram", "dsp", "fmax_mhz", "device", "note"],
    "xc7": ["lut", "carry", "ff", "bram", "dsp", "device"],
}


def run_synth_block(cfg, block: str, target: str, out: Path, liberty=None,
                    memory: str = "macro", blackbox: tuple[str, ...] = ()) -> dict:
    """Synthesize one block; ``blackbox`` names its submodules (Amaranth names below the top,
    e.g. ``("qk", "pv")``) that stay black boxes (:func:`hier_breakdown`)."""
    from synth import run_synth

    em = emit(cfg, block, out / "rtl")
    boxes = tuple(f"{em.top}.{b}" for b in blackbox)
    sha = glue_sha256(em.verilog.read_text(), boxes) if boxes else em.sha256
    key = synth_key(sha, target, liberty, memory, boxes)
    dest = out / target / "result.json"
    if dest.is_file():
        old = json.loads(dest.read_text())
        if old.get("key") == key:
            _progress(f"reusing {dest} (same Verilog, target, options and flow)")
            return {"block": block, "config": cfg.name, "target": target, **old["metrics"],
                    "yosys": old["yosys"]}
    r = run_synth(em.verilog, em.top, target, out / target, liberty=liberty, memory=memory,
                  progress=_progress, blackbox=boxes)
    row = {"block": block, "config": cfg.name, "target": target, **r.metrics,
           "yosys": r.yosys}
    dest.write_text(json.dumps({**r.to_dict(), "key": key}, indent=2, default=str))
    return row


def glue_sha256(text: str, boxes: tuple[str, ...]) -> str:
    """The sha256 of what a synthesis with ``boxes`` as black boxes reads from ``text``:
    the Verilog without the bodies of the black-boxed modules (their port declarations
    stay) and without their submodules (Amaranth names them ``box.sub``), with Yosys'
    design-wide helper numbering made local, so a glue result is reused when only a
    black-boxed part changed."""
    import hashlib

    kept, inside, box = [], False, False  # in a black box or its submodule; in the box
    for line in text.splitlines(keepends=True):
        head = re.match(r"\s*module\s+\\?([^\s(]+)", line)
        if head:
            name = head.group(1)
            box = name in boxes
            inside = box or any(name.startswith(b + ".") for b in boxes)
        if not inside or (box and re.match(r"\s*(module|input|output|inout|endmodule)\b", line)):
            kept.append(line)
        if re.match(r"\s*endmodule\b", line):  # what follows belongs to the next module
            inside = box = False
    # Yosys' Verilog backend numbers its helper registers design-wide
    # (``\$auto$verilog_backend.cc:…$541``): renumber them in order of appearance.
    seen: dict[str, str] = {}
    body = re.sub(r"\\\$auto\$\S+", lambda t: seen.setdefault(t.group(0), f"\\$auto${len(seen)}"),
                  "".join(kept))
    return hashlib.sha256(body.encode()).hexdigest()


def synth_key(verilog_sha256: str, target: str, liberty, memory: str,
              blackbox: tuple[str, ...]) -> dict:
    """What a synthesis result depends on: a result.json with the same key is reused. The
    flow's own sources (scripts, flow, report parsing) and the tool versions are part of it."""
    import hashlib

    import synth
    from synth import tool_versions

    src = Path(synth.__file__).parent
    flow = hashlib.sha256()
    for f in sorted([*src.glob("*.py"), *(src / "scripts").iterdir()]):
        flow.update(f.name.encode() + f.read_bytes())
    lib = None if liberty is None else Path(liberty).resolve()
    return {"verilog_sha256": verilog_sha256, "target": target, "memory": memory,
            "liberty": None if lib is None else [str(lib), hashlib.sha256(
                lib.read_bytes()).hexdigest() if lib.is_file() else None],
            "blackbox": list(blackbox), "flow_sha256": flow.hexdigest(),
            "tools": tool_versions()}


# The head pipeline's parts, synthesized one by one for the area breakdown.
HEAD_PARTS = ("qk", "softmax", "topk", "pv")
# The size column of each target that the breakdown's shares are computed from.
SIZE_METRIC = {"cmos": "transistors", "asic": "area_um2", "ice40": "lut", "ecp5": "lut",
               "xc7": "lut"}


# Columns that add up over copies of a block (a breakdown counts the top-k engine n times).
ADDITIVE = ("transistors", "gates", "area_um2", "sequential_area_um2", "nand2_eq", "ff",
            "lut", "carry", "bram", "dsp", "memory_bits")


def copies(row: dict, n: int) -> dict:
    """``row`` (one synthesized instance) counted ``n`` times, labelled ``block × n``."""
    if n == 1:
        return row
    out = {**row, **{c: row[c] * n for c in ADDITIVE if isinstance(row.get(c), (int, float))},
           "block": f"{row['block']} × {n}"}
    if row.get("memory_macros"):
        out["memory_macros"] = f"{n} × ({row['memory_macros']})"
    return out


def with_shares(rows: list[dict], target: str, total) -> list[dict]:
    """``rows`` with a ``share`` column: each one's size metric over ``total``."""
    metric = SIZE_METRIC[target]
    return [{**r, "share": f"{100 * r[metric] / total:.1f} %"
             if total and r.get(metric) is not None else "-"} for r in rows]


def area_breakdown(rows: list[dict], target: str, engines: int = 1) -> list[dict]:
    """The flat head breakdown: each part's share of the ``head`` row, and a row for the glue
    (the head minus its parts: FIFOs, forks and adapters). The head has ``engines`` top-k
    engines (``attn.topk_engines``): the ``topk`` row, one engine synthesized, counts
    ``engines`` times (:func:`copies`)."""
    metric = SIZE_METRIC[target]
    rows = [copies(r, engines) if r["block"] == "topk" else r for r in rows]
    by = {r["block"].split(" ×")[0]: r for r in rows}
    total = by["head"].get(metric)
    out = with_shares(rows, target, total)
    sizes = [by[b].get(metric) for b in HEAD_PARTS if b in by]
    if total is not None and None not in sizes and len(sizes) == len(HEAD_PARTS):
        glue = total - sum(sizes)
        out.insert(len(HEAD_PARTS), {"block": "glue (head - parts)",
                                     "config": rows[0]["config"], "target": target,
                                     metric: round(glue, 1),
                                     "share": f"{100 * glue / total:.1f} %"})
    return out


def hier_parts(cfg, block: str) -> list[tuple[str, tuple[str, ...]]]:
    """The parts of ``block`` that hierarchical synthesis measures on their own: (the block
    that synthesizes the part, the submodule names of its instances in ``block``)."""
    if block == "head":
        engines = tuple(f"topk{i}" for i in range(cfg.attn.topk_engines))
        return [(p, engines if p == "topk" else (p,)) for p in HEAD_PARTS]
    if block == "core":
        return [("head", ("head",)), ("select", ("select",)), ("heads", ("heads",)),
                ("importance", ("slots",)), ("dma", ("dma",)), ("regs", ("regs",))]
    raise CliError(f"hierarchical synthesis applies to the head and core blocks, not {block}")


# What the glue row of a hierarchical breakdown holds.
GLUE = {"head": "FIFOs, forks, adapters", "core": "controller, K/V buffers, FIFOs"}


def sum_rows(rows: list[dict], block: str, target: str, config: str) -> dict:
    """The whole of a hierarchical breakdown: the additive columns summed, Fmax the slowest
    part's (paths between parts are not timed)."""
    total = {"block": block, "config": config, "target": target}
    for c in ("cells", *ADDITIVE):
        vals = [r.get(c) for r in rows]
        if all(isinstance(v, (int, float)) for v in vals):
            total[c] = round(sum(vals), 1) if any(isinstance(v, float) for v in vals) \
                else sum(vals)
    fmax = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz") is not None]
    timed = len(fmax) == len(rows)
    total["fmax_mhz"] = min(fmax) if timed else None
    total["critical_path_ns"] = (max(r["critical_path_ns"] for r in rows) if timed else None)
    total["note"] = ("sum of the parts above, each synthesized on its own; Fmax: the slowest "
                     "part (paths between parts not timed)" if timed else
                     "sum of the parts above, each synthesized on its own; no Fmax: "
                     + ", ".join(r["block"] for r in rows if r.get("fmax_mhz") is None)
                     + " not timed")
    devices = {r.get("device") for r in rows} - {None}
    if len(devices) == 1:
        total["device"] = devices.pop()
    if target == "ecp5" and all(isinstance(total.get(c), int) for c in ("lut", "carry")):
        from synth.flow import ecp5_over
        over = ecp5_over(total)
        total["note"] += ("; as one design it does not fit the LFE5U-85F (" + ", ".join(over)
                          + ")" if over else "; as one design it fits the LFE5U-85F by "
                          "resources (not placed and routed as one)")
    return total


def hier_breakdown(cfg, block: str, target: str, out: Path, liberty=None,
                   memory: str = "macro", *, expand=("head",)) -> list[dict]:
    """Hierarchical synthesis of ``block``: each part of :func:`hier_parts` on its own (the
    parts named in ``expand`` hierarchically, in turn), then ``block`` with its parts as black
    boxes (the glue row), then the whole as their sum (:func:`sum_rows`). A top-k engine
    synthesized once counts once per instance (``topk × n``)."""
    rows, leaves = [], []
    for part, subs in hier_parts(cfg, block):
        if part in expand:
            sub_rows = hier_breakdown(cfg, part, target, out, liberty, memory, expand=())
            rows += sub_rows
            leaves += sub_rows[:-1]
            continue
        _progress(f"synthesizing {part} [{cfg.tag}] for {target}")
        row = copies(run_synth_block(cfg, part, target, out / part / cfg.tag, liberty,
                                     memory), len(subs))
        rows.append(row)
        leaves.append(row)
    _progress(f"synthesizing {block} [{cfg.tag}] for {target}, its parts black-boxed")
    glue = run_synth_block(cfg, block, target, out / block / cfg.tag / "glue", liberty, memory,
                           blackbox=tuple(b for _, subs in hier_parts(cfg, block) for b in subs))
    glue["block"] = f"{block} glue ({GLUE[block]})"
    rows.append(glue)
    leaves.append(glue)
    total = sum_rows(leaves, block, target, cfg.name)
    return with_shares(rows + [total], target, total.get(SIZE_METRIC[target]))


def cmd_synth(args) -> int:
    cfg = _config(args.config)
    liberty = Path(args.liberty) if args.liberty else None
    if liberty is not None and args.target != "asic":
        raise CliError(f"--liberty applies to --target asic, not {args.target}")
    if args.breakdown and args.block not in ("head", "core"):
        raise CliError(f"--breakdown applies to the head and core blocks, not {args.block}")
    hier = args.breakdown and (args.hierarchical or args.block == "core")
    if args.hierarchical and not args.breakdown:
        raise CliError("--hierarchical goes with --breakdown")
    cols = ["block", "config", "target"] + SYNTH_COLUMNS[args.target]
    if hier:
        rows = hier_breakdown(cfg, args.block, args.target, Path(args.out), liberty,
                              args.memory)
        cols.insert(3 + cols[3:].index(SIZE_METRIC[args.target]) + 1, "share")
        dest = Path(args.out) / args.block / cfg.tag / f"breakdown_{args.target}.json"
        dest.write_text(json.dumps(rows, indent=2, default=str))
        print(_table(rows, cols))
        print(f"{args.block}: {rows[-1]['note']}")
        print(f"JSON: {dest}")
        return 0
    blocks = [*HEAD_PARTS, "head"] if args.breakdown else [args.block]
    rows = []
    for block in blocks:
        out = Path(args.out) / block / cfg.tag
        _progress(f"synthesizing {block} [{cfg.tag}] for {args.target}")
        rows.append(run_synth_block(cfg, block, args.target, out, liberty, args.memory))
        print(f"JSON: {out / args.target / 'result.json'}")
    if args.breakdown:
        rows = area_breakdown(rows, args.target, cfg.attn.topk_engines)
        cols.insert(3 + cols[3:].index(SIZE_METRIC[args.target]) + 1, "share")
    print(_table(rows, cols))
    return 0


# ---- bench ------------------------------------------------------------------------------
def bench_topk(cfg, *, sizes, packets: int, simulator: str, seed: int, out: Path,
               plot: bool = True) -> list[dict]:
    import numpy as np

    from hdl.topk import latency_bound
    from sim.perf_model import authors_model_latency
    from sim.runner import run_cocotb

    tk = cfg.topk
    pairs = [(n, n // d) for n in sizes for d in (8, 4, 2)]
    too_big = [n for n in sizes if n > tk.capacity]
    if too_big:
        raise CliError(f"sizes must be at most the capacity ({tk.capacity}) of {cfg.name}, "
                       f"not {too_big[0]}")
    _progress(f"RTL simulation of {len(pairs)} (n, k) points × {packets} packets on "
              f"{simulator} [{cfg.tag}]")
    r = run_cocotb(cfg, "topk", simulator=simulator, packets=packets, seed=seed,
                   bench=",".join([f"{n}:{k}" for n, k in pairs]
                                  + [f"b2b:{max(sizes)}:{max(sizes) // 2}"]))
    if not r.ok:
        first = next((b["first"] for b in r.result.get("bench", []) if b["first"]), None)
        raise CliError(f"bench simulation failed: {first} (logs in {r.build_dir})")
    rows = []
    for b in r.result["bench"]:
        n, k, lat = b["n"], b["k"], np.array(b["latency"])
        _progress(f"authors' model n={n} k={k}")
        am = authors_model_latency(n, k, lanes=tk.lanes, trials=200, seed=seed,
                                   score_bits=tk.score.width)
        rows.append({
            "n": n, "k": k, "lanes": tk.lanes, "packets": len(lat),
            "rtl_mean": float(lat.mean()), "rtl_p99": float(np.percentile(lat, 99)),
            "rtl_max": int(lat.max()), "worst_case_formula": latency_bound(tk, n),
            "bound_2n_over_P": 2 * (-(-n // tk.lanes)),
            "authors_selection_mean": round(am["selection_mean"], 1),
            "authors_total_mean": round(am["mean"], 1), "authors_total_p99": am["p99"],
            "speedup_vs_authors": round(am["mean"] / float(lat.mean()), 2),
        })
    tp = r.result["throughput"][0]
    tp_line = (f"Back to back (n = {tp['n']}, k = {tp['k']}, {packets} packets, no stalls): "
               f"{tp['cycles_per_packet']:.1f} cycles per packet in steady state "
               f"(input alone: {-(-tp['n'] // tk.lanes)} beats).")
    out.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0])
    (out / "topk_latency.csv").write_text(
        ",".join(cols) + "\n" + "\n".join(",".join(str(r[c]) for c in cols) for r in rows)
        + "\n")
    md = (f"Top-k latency, cycles from the last input beat to the last output beat "
          f"({cfg.name}: {tk.lanes} lanes, {tk.score} scores, radix {tk.radix_bits}; "
          f"uniformly random scores, {packets} packets per point, RTL simulation on "
          f"{simulator}). Authors' model: SpAtten's quick-select cost model "
          f"(selection passes + one filter pass of n/P cycles; 200 trials). "
          f"worst_case_formula: the engine's data-independent bound "
          f"(levels-1)*(R+6)+R+11, R = ceil(n/P).\n\n"
          + _table(rows, ["n", "k", "rtl_mean", "rtl_p99", "rtl_max", "worst_case_formula",
                          "bound_2n_over_P",
                          "authors_selection_mean", "authors_total_mean", "authors_total_p99",
                          "speedup_vs_authors"]) + "\n\n" + tp_line + "\n")
    (out / "topk_latency.md").write_text(md)
    if plot:
        _plot(rows, out / "topk_latency.png", cfg)
    return rows


def _plot(rows, path: Path, cfg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [f"{r['n']}/{r['k']}" for r in rows]
    x = range(len(rows))
    ax.plot(x, [r["authors_total_mean"] for r in rows], "s--", label="authors' model (mean)")
    ax.plot(x, [r["authors_total_p99"] for r in rows], "v:", label="authors' model (p99)")
    ax.plot(x, [r["bound_2n_over_P"] for r in rows], "k-", lw=1, label="2n/P")
    ax.plot(x, [r["rtl_mean"] for r in rows], "o-", label="this engine, RTL (mean)")
    ax.plot(x, [r["rtl_max"] for r in rows], "x", color="C2", label="this engine, RTL (max)")
    ax.set_xticks(list(x), labels, rotation=60, fontsize=8)
    ax.set_xlabel("n / k")
    ax.set_ylabel("cycles, last input → last output")
    ax.set_title(f"Top-k latency, {cfg.topk.lanes} lanes ({cfg.name})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


HEAD_COLUMNS = ["L", "keep", "cycles/pass", "Q·K busy cycles/pass", "Q·K utilization",
                "latency (cycles)", "passes"]


def bench_head(cfg, *, sizes, packets: int, simulator: str, seed: int, out: Path) -> list[dict]:
    """Head pipeline timing from RTL simulation: for each L, keep = L/4 and keep = L."""
    from sim.runner import run_cocotb

    cap = cfg.topk.capacity
    if max(sizes) > cap:
        raise CliError(f"--sizes must be at most the capacity {cap}, not {max(sizes)}")
    if packets < 8:
        raise CliError(f"--packets must be at least 8 for the head (the steady state is "
                       f"measured over the second half), not {packets}")
    pairs = [(n, k) for n in sizes for k in (n // 4, n)]
    _progress(f"bench head: {len(pairs)} points x {packets} passes on {simulator} "
              f"[{cfg.tag}]")
    r = run_cocotb(cfg, "head", simulator=simulator, packets=packets, seed=seed,
                   stalls="0:0", bench=",".join(f"{n}:{k}" for n, k in pairs))
    if not r.ok:
        raise CliError(f"head bench failed in simulation; see {r.build_dir / 'sim.log'}")
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
    out.mkdir(parents=True, exist_ok=True)
    (out / "head_bench.json").write_text(json.dumps(rows, indent=2))
    md = (f"Head pipeline, `{cfg.name}` ({cfg.attn.keys_per_cycle} keys/cycle, "
          f"{cfg.attn.pv_rows} V rows/cycle), {simulator} RTL simulation, full-precision "
          f"passes back to back, no stalls; cycles/pass = Q·K input cycles per pass over the "
          f"second half of the passes (the first half fills the buffers); latency = query beat "
          f"in to output beat out of an isolated pass.\n\n" + _table(rows, HEAD_COLUMNS))
    (out / "head_bench.md").write_text(md)
    return rows


CORE_TRACE_COLUMNS = ["row", "iteration", "layer", "head", "L", "keys", "values", "refetch",
                      "cycles", "bound", "cycles/bound", "limit", "DRAM read", "DRAM dense",
                      "dense/read"]
CORE_SWEEP_COLUMNS = ["keep ratio", "tokens per layer", "cycles", "cycles vs dense",
                      "DRAM read", "DRAM vs dense", "DRAM written"]


def _run_core_bench(cfg, entries, *, simulator, seed, out: Path, tag: str):
    from sim.runner import run_cocotb

    out.mkdir(parents=True, exist_ok=True)
    spec = (out / f"core_{tag}_entries.json").resolve()
    spec.write_text(json.dumps({"entries": entries}))
    r = run_cocotb(cfg, "core", simulator=simulator, packets=1, seed=seed, stalls="0:0",
                   bench=str(spec))
    if not r.ok:
        raise CliError(f"core bench failed in simulation (a mismatch against the golden "
                       f"model or a hang); see {r.build_dir / 'sim.log'}")
    return r.result["bench"][0]["layers"]


def bench_core_trace(cfg, trace_path, *, rows: int, simulator: str, seed: int,
                     out: Path) -> dict:
    """Replay ``rows`` rows of an authors' trace, picked deterministically
    (:func:`sim.trace.spread`), through RTL simulation of the core: each row is one decode
    step of one head on a CLEARed core (``L`` positions, the row's kept keys and values, its
    refetch forced or not); cycles are the core's CYC register (selection, keep-list
    write-back, the job, importance merge), DRAM bytes its RD register."""
    from sim.trace import dense_traffic, load_trace, row_bound, row_params, spread, summary

    tr = load_trace(trace_path)
    picked = spread(tr, rows)
    entries = []
    for row in picked:
        p = row_params(cfg, row)
        entries.append({"kind": "row", "n": p["n"], "token_keep": p["token_keep"],
                        "value_keep": p["value_keep"], "msb_only": p["msb_only"],
                        "refetch": p["force_refetch"]})
    _progress(f"bench core: {len(picked)} of {len(tr.rows)} rows of {Path(trace_path).name} "
              f"on {simulator} [{cfg.tag}]")
    got = _run_core_bench(cfg, entries, simulator=simulator, seed=seed, out=out,
                          tag=f"trace_{Path(trace_path).stem}")
    table = []
    tot = dict.fromkeys(("cycles", "bound", "read", "dense"), 0)
    for i, (row, g) in enumerate(zip(picked, got)):
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
    (out / f"core_trace_{name}.json").write_text(json.dumps(res, indent=2, default=str))
    md = [f"Trace replay of `{Path(trace_path).name}` ({tr.model}) on `{cfg.name}` "
          f"({simulator}): {len(picked)} of {len(tr.rows)} rows, picked by a golden-ratio "
          f"sequence over the file (`sim.trace.spread`, deterministic). Bound: `sim.trace.BOUND_DEFINITION` "
          f"({cfg.core.bus_bytes} bytes of DRAM per cycle).", "",
          _table(table, CORE_TRACE_COLUMNS), "",
          f"Sampled rows: {tot['cycles']} cycles against a bound of {tot['bound']} "
          f"({tot['cycles'] / tot['bound']:.2f}x); DRAM read {tot['read']} bytes against "
          f"{tot['dense']} dense ({tot['dense'] / tot['read']:.2f}x less). Scaled to all "
          f"{len(tr.rows)} rows (x{scale:.1f}): {res['scaled']['cycles']:,} cycles, bound "
          f"{res['scaled']['bound']:,}; DRAM {res['scaled']['read']:,} bytes, dense "
          f"{res['scaled']['dense']:,}."]
    (out / f"core_trace_{name}.md").write_text("\n".join(md) + "\n")
    return res


def bench_core_sweep(cfg, *, n: int, heads: int, layers: int, ratios, simulator: str,
                     seed: int, out: Path) -> list[dict]:
    """Synthetic summarization: ``layers`` layers of ``n`` tokens and ``heads`` heads; at
    keep ratio ``r`` layer ``l`` keeps ``round(n * r**(l+1))`` tokens (cascade) and local
    value pruning keeps the same share of each row; every head is kept and every pass is at
    full precision. Cycles (CYC, summed over the layers) and DRAM bytes (RD, WR) from RTL
    simulation, against the dense run (r = 1)."""
    if not 1 <= heads <= cfg.core.heads or not 1 <= layers <= cfg.core.layers:
        raise CliError(f"--heads must be in 1..{cfg.core.heads} and --layers in "
                       f"1..{cfg.core.layers}, not {heads} and {layers}")
    if not 8 <= n <= cfg.topk.capacity:
        raise CliError(f"--tokens must be in 8..{cfg.topk.capacity}, not {n}")
    entries = []
    for r in ratios:
        keeps = [max(1, round(n * r ** (li + 1))) for li in range(layers)]
        entries.append({"kind": "summarize", "n": n, "heads": heads,
                        "layers": [{"token_keep": k, "head_keep": heads,
                                    "value_keep": max(1, round(k * r)), "msb_only": 0}
                                   for k in keeps]})
    _progress(f"bench core: summarization sweep, {len(ratios)} keep ratios x {layers} layers "
              f"of {n} tokens, {heads} heads, on {simulator} [{cfg.tag}]")
    got = _run_core_bench(cfg, entries, simulator=simulator, seed=seed, out=out, tag="sweep")
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
    (out / "core_sweep.json").write_text(json.dumps(rows, indent=2))
    (out / "core_sweep.md").write_text(
        f"Summarization on `{cfg.name}` ({simulator}): {layers} layers of {n} tokens, {heads} "
        f"heads, full precision; layer l keeps n·r^(l+1) tokens and r of each row's values."
        f"\n\n" + _table(rows, CORE_SWEEP_COLUMNS) + "\n")
    _plot_sweep(rows, out / "core_sweep.png", cfg)
    return rows


def _plot_sweep(rows, path: Path, cfg):
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


def cmd_bench(args) -> int:
    cfg = _config(args.config)
    out = Path(args.out)
    if args.block == "core":
        out.mkdir(parents=True, exist_ok=True)
        if args.trace:
            bench_core_trace(cfg, args.trace, rows=args.rows, simulator=args.simulator,
                             seed=args.seed, out=out)
            name = Path(args.trace).stem
            print((out / f"core_trace_{name}.md").read_text())
            print(f"wrote {out / f'core_trace_{name}.md'}, {out / f'core_trace_{name}.json'}")
            return 0
        bench_core_sweep(cfg, n=args.tokens, heads=args.heads, layers=args.layers,
                         ratios=[1.0, 0.75, 0.5, 0.25], simulator=args.simulator,
                         seed=args.seed, out=out)
        print((out / "core_sweep.md").read_text())
        print(f"wrote {out / 'core_sweep.md'}, {out / 'core_sweep.json'}, "
              f"{out / 'core_sweep.png'}")
        return 0
    if args.trace:
        raise CliError(f"--trace applies to the core block, not {args.block}")
    default = {"topk": "128,256,512,1024", "head": "128,512,1024"}[args.block]
    text = args.sizes or default
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise CliError(f"--sizes must be comma-separated integers, not {text!r}") from None
    if any(s < 8 for s in sizes):
        raise CliError(f"--sizes must all be at least 8, not {min(sizes)}")
    if args.block == "head":
        bench_head(cfg, sizes=sizes, packets=args.packets, simulator=args.simulator,
                   seed=args.seed, out=out)
        print((out / "head_bench.md").read_text())
        print(f"wrote {out / 'head_bench.md'}, {out / 'head_bench.json'}")
        return 0
    bench_topk(cfg, sizes=sizes, packets=args.packets, simulator=args.simulator,
               seed=args.seed, out=out)
    print((out / "topk_latency.md").read_text())
    print(f"wrote {out / 'topk_latency.csv'}, {out / 'topk_latency.md'}, "
          f"{out / 'topk_latency.png'}")
    return 0


# ---- demo -------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


# ---- argument parsing -------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spatten",
        description="SpAtten RTL generator: generate Verilog, simulate it against the golden "
                    "model, synthesize it, benchmark it.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    cfg_help = f"a preset ({', '.join(PRESETS)}) or a .toml config file"

    def common(sp, default_cfg="ci"):
        sp.add_argument("block", choices=sorted(BLOCKS), help="the block (" + "; ".join(
            f"{k}: {v[1]}" for k, v in BLOCKS.items()) + ")")
        sp.add_argument("--config", default=default_cfg, help=f"{cfg_help} (default: "
                        f"{default_cfg})")

    g = sub.add_parser("generate", help="write Verilog and a manifest",
                       description="Write <top>.v and manifest.json (config, tool versions, "
                                   "hashes) for a block.")
    common(g)
    g.add_argument("--out", default="build/generate", help="output folder")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("sim", help="cocotb simulation against the golden model",
                       description="Generate the Verilog, build it with Icarus or Verilator, "
                                   "and check random packets (edge cases first) bit-exactly "
                                   "against the golden model with random valid bubbles and "
                                   "ready back-pressure. Exits 1 on any mismatch.")
    common(s)
    s.add_argument("--simulator", choices=["icarus", "verilator"], default="icarus")
    s.add_argument("--packets", type=int, default=500, help="packets in all (default 500)")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--no-stall", action="store_true", help="no bubbles or back-pressure")
    s.add_argument("--waves", action="store_true", help="dump an FST waveform (also WAVES=1)")
    s.set_defaults(func=cmd_sim)

    y = sub.add_parser("synth", help="synthesis: area, resources, Fmax",
                       description="Synthesize the generated Verilog. Targets: cmos "
                                   "(transistor estimate, no liberty), asic (OSU 0.18 um "
                                   "liberty: area and OpenSTA Fmax), ice40 and ecp5 (resources "
                                   "and nextpnr Fmax), xc7 (resources only). On cmos/asic, "
                                   "memories become black-box SRAM macros (area excluded, "
                                   "timed as registers) unless --memory flops. Prints a "
                                   "table, writes JSON.")
    common(y, "paper")
    y.add_argument("--target", choices=["cmos", "asic", "ice40", "ecp5", "xc7"],
                   default="cmos")
    y.add_argument("--liberty", help="liberty file for --target asic (default: OSU 0.18 um)")
    y.add_argument("--memory", choices=["macro", "flops"], default="macro",
                   help="cmos/asic: memories as SRAM macros (default) or flip-flops (slow)")
    y.add_argument("--breakdown", action="store_true",
                   help="head or core: also synthesize its parts (head: qk, softmax, topk, "
                        "pv; core: head, select, heads, importance, dma, regs) and give each "
                        "one's share. head: the whole is synthesized flat and the glue is "
                        "the difference; core: always hierarchical (see --hierarchical), "
                        "with the head split into its parts too")
    y.add_argument("--hierarchical", action="store_true",
                   help="with --breakdown: synthesize the whole with its parts as black "
                        "boxes (the glue row) and report the whole as the sum of the rows; "
                        "Fmax is the slowest part's (paths between parts are not timed)")
    y.add_argument("--out", default="build/synth", help="output folder")
    y.set_defaults(func=cmd_synth)

    b = sub.add_parser("bench", help="latency and throughput from RTL simulation",
                       description="topk: latency (mean, p99, max cycles from the last input "
                                   "beat to the last output beat) on random data for n in "
                                   "--sizes x k in {n/8, n/4, n/2}, beside the 2n/P bound and "
                                   "the SpAtten authors' latency model; writes CSV, a markdown "
                                   "table and a PNG plot. head: for L in --sizes and keep in "
                                   "{L/4, L}, steady-state cycles per pass, Q·K multiplier "
                                   "utilization and the latency of an isolated pass; writes "
                                   "a markdown table and JSON. core: with --trace, replays "
                                   "sampled rows of an authors' GPT-2 trace (cycles beside "
                                   "the idealised bound, DRAM bytes beside dense); without, "
                                   "a summarization sweep over keep ratios (table and PNG). "
                                   "Every run is also checked against the golden model.")
    b.add_argument("block", choices=["topk", "head", "core"], help="the block to benchmark")
    b.add_argument("--config", default="paper", help=f"{cfg_help} (default: paper)")
    b.add_argument("--sizes", default=None,
                   help="packet sizes n / row lengths L (default: 128,256,512,1024 for topk, "
                        "128,512,1024 for head)")
    b.add_argument("--packets", type=int, default=20,
                   help="packets (topk) or passes (head) per point")
    b.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--out", default="build/bench", help="output folder")
    b.add_argument("--trace", help="core: replay this trace of the SpAtten authors (CSV, e.g. "
                                   "../shared/workloads/spatten-gpt2/*.csv)")
    b.add_argument("--rows", type=int, default=24,
                   help="core --trace: rows replayed, spread over the file (default 24)")
    b.add_argument("--tokens", type=int, default=128, help="core sweep: tokens (default 128)")
    b.add_argument("--heads", type=int, default=4, help="core sweep: heads (default 4)")
    b.add_argument("--layers", type=int, default=2, help="core sweep: layers (default 2)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="generate → sim → synth → bench, written to a report",
                       description="The whole flow: generate, cocotb simulation against the "
                                   "golden model (ci on Icarus, paper on Verilator), synthesis "
                                   "of paper (cmos, asic, ecp5) and a latency bench; writes "
                                   "OUT/report.md.")
    d.add_argument("--out", default="build", help="output folder (default: build)")
    d.add_argument("--quick", action="store_true", help="fewer packets, smaller bench")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    from generators.tools import ToolNotFound, setup_env

    setup_env()
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ConfigError, ToolNotFound, ValueError) as e:
        print(f"spatten: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spatten: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for tool failures (synthesis, simulator builds)
        from sim.runner import SimBuildError
        from synth import SynthError

        if isinstance(e, (SynthError, SimBuildError)):
            print(f"spatten: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
