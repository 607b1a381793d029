"""The ``spatten`` command: argument parsing and dispatch to the library.

Every subcommand has ``--help``. Arguments are checked before any long work starts: a bad
one, a missing tool or an unusable output folder ends with one line (``spatten: error:
...``) and exit status 2. A simulation that mismatches the golden model, a testbench that
raises, or a tool that fails exits with status 1 and says why in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from generators.config import ConfigError
from generators.presets import PRESETS, get_config
from generators.tools import ToolNotFound, setup_env
from hdl.blocks import BLOCKS, emit
from sim.bench import bench_core_sweep, bench_core_trace, bench_head, bench_topk
from sim.bench.common import BenchFailed, md_table, prepare_out_dir
from sim.bench.core import SWEEP_RATIOS, sweep_defaults
from sim.progress import Progress
from sim.results import UNITS, core_lines, run_lines, stall_plan
from sim.runner import SIMULATORS, SimBuildError, run_cocotb
from synth import MEMORY_MODES, TARGETS, SynthError
from synth.breakdown import (BREAKDOWN_BLOCKS, COLUMNS, HEAD_PARTS, SIZE_METRIC,
                             area_breakdown, hier_breakdown)
from synth.cache import run_synth_block, write_json_atomic

__all__ = ["main", "BENCH_BLOCKS", "STALLS"]

# The blocks `spatten bench` measures.
BENCH_BLOCKS = ("topk", "head", "core")
# `spatten sim`'s stall settings (in:out probabilities); the core's streams are internal, its
# stalls are AXI pauses.
STALLS = {"default": ["0:0", "0.3:0.5"], "core": ["0:0", "0:0.5"]}


class Failed(Exception):
    """A check failed (exit status 1, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse with the command's one-line errors (no usage block)."""

    def error(self, message):
        self.exit(2, f"spatten: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return metadata.version("spatten-gen")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {v}")
    return v


def _sizes(text: str | None):
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, not {text!r}") from None


# ---- commands ---------------------------------------------------------------------------
def cmd_generate(args, progress) -> int:
    cfg = get_config(args.config)
    out = prepare_out_dir(args.out)
    em = emit(cfg, args.block, out)
    print(f"wrote {em.verilog} ({em.top}, sha256 {em.sha256[:16]}…) and {em.manifest}")
    return 0


def cmd_sim(args, progress) -> int:
    cfg = get_config(args.config)
    build_dir = prepare_out_dir(args.build_dir, "--build-dir") if args.build_dir else None
    if args.packets is None:
        args.packets = 24 if args.block == "core" else 500
    settings = STALLS.get(args.block, STALLS["default"])
    if args.no_stall:
        settings = settings[:1]
    if args.block == "core":
        cap = cfg.topk.capacity
        if not 4 <= args.packets <= cap - 3:
            raise ValueError(f"--packets (the core's tokens) must be in 4..{cap - 3}, not "
                             f"{args.packets}")
        stalls = ",".join(settings)
    elif args.block == "regs":
        stalls = "0:0"
    else:
        stalls = stall_plan(args.packets, settings)
    t0 = time.time()
    r = run_cocotb(cfg, args.block, simulator=args.simulator, packets=args.packets,
                   seed=args.seed, stalls=stalls, waves=args.waves or None,
                   build_dir=build_dir, progress=progress)
    lines = core_lines(r.result) if args.block == "core" else run_lines(args.block, r.result)
    print("\n".join(lines))
    unit = UNITS.get(args.block, "passes")
    runs = r.result.get("runs", [])
    total = (sum(len(x["layers"]) for x in runs) if args.block == "core"
             else sum(x.get(unit, 0) for x in runs))
    print(f"{args.block} [{cfg.name}] on {args.simulator}, seed {args.seed}: {total} {unit}, "
          f"{'all bit-exact with the golden model' if r.ok else 'FAILED'}, "
          f"{time.time() - t0:.1f} s (logs: {r.build_dir})")
    if r.waves:
        print(f"waveform: {r.waves}")
    if not r.ok:
        raise Failed(r.reason)
    return 0


def cmd_synth(args, progress) -> int:
    cfg = get_config(args.config)
    liberty = Path(args.liberty) if args.liberty else None
    if liberty is not None and args.target != "asic":
        raise ValueError(f"--liberty applies to --target asic, not {args.target}")
    if liberty is not None and not liberty.is_file():
        raise ValueError(f"--liberty {liberty} is not a file")
    if args.breakdown and args.block not in BREAKDOWN_BLOCKS:
        raise ValueError(f"--breakdown applies to the {' and '.join(BREAKDOWN_BLOCKS)} "
                         f"blocks, not {args.block}")
    if args.hierarchical and not args.breakdown:
        raise ValueError("--hierarchical goes with --breakdown")
    out = prepare_out_dir(args.out)
    hier = args.breakdown and (args.hierarchical or args.block == "core")
    cols = ["block", "config", "target"] + COLUMNS[args.target]
    if args.breakdown:
        cols.insert(3 + cols[3:].index(SIZE_METRIC[args.target]) + 1, "share")
    if hier:
        with progress.task(f"synthesis of {args.block} [{cfg.name}] by parts for "
                           f"{args.target}") as task:
            rows = hier_breakdown(cfg, args.block, args.target, out, liberty, args.memory,
                                  progress=task.say)
        dest = out / args.block / cfg.tag / f"breakdown_{args.target}.json"
        write_json_atomic(dest, rows)
        print(md_table(rows, cols))
        print(f"{args.block}: {rows[-1]['note']}")
        print(f"JSON: {dest}")
        return 0
    blocks = [*HEAD_PARTS, "head"] if args.breakdown else [args.block]
    rows = []
    with progress.task(f"synthesis of {args.block} [{cfg.name}] for {args.target}",
                       total=len(blocks)) as task:
        for block in blocks:
            task.say(block)
            rows.append(run_synth_block(cfg, block, args.target, out / block / cfg.tag,
                                        liberty, args.memory, progress=task.say))
            task.advance()
    for block in blocks:
        print(f"JSON: {out / block / cfg.tag / args.target / 'result.json'}")
    if args.breakdown:
        rows = area_breakdown(rows, args.target, cfg.attn.topk_engines)
    print(md_table(rows, cols))
    return 0


def cmd_bench(args, progress) -> int:
    cfg = get_config(args.config)
    out = prepare_out_dir(args.out)
    common = {"simulator": args.simulator, "seed": args.seed, "out": out,
              "progress": progress}
    if args.block != "core":
        for flag in ("trace", "tokens", "heads", "layers"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} applies to the core block, not {args.block}")
    if args.block == "core":
        if args.trace:
            res = bench_core_trace(cfg, args.trace, rows=args.rows, **common)
            name = Path(args.trace).stem
            print((out / f"core_trace_{name}.md").read_text())
            print(f"wrote {out / f'core_trace_{name}.md'}, {out / f'core_trace_{name}.json'} "
                  f"({res['sampled']} rows)")
            return 0
        d = sweep_defaults(cfg)
        bench_core_sweep(cfg, n=args.tokens or d["n"], heads=args.heads or d["heads"],
                         layers=args.layers or d["layers"], ratios=SWEEP_RATIOS, **common)
        print((out / "core_sweep.md").read_text())
        print(f"wrote {out / 'core_sweep.md'}, {out / 'core_sweep.json'}, "
              f"{out / 'core_sweep.png'}")
        return 0
    packets = 20 if args.packets is None else args.packets
    if args.block == "head":
        bench_head(cfg, sizes=_sizes(args.sizes), packets=packets, **common)
        print((out / "head_bench.md").read_text())
        print(f"wrote {out / 'head_bench.md'}, {out / 'head_bench.json'}")
        return 0
    bench_topk(cfg, sizes=_sizes(args.sizes), packets=packets, **common)
    print((out / "topk_latency.md").read_text())
    print(f"wrote {out / 'topk_latency.csv'}, {out / 'topk_latency.md'}, "
          f"{out / 'topk_latency.png'}")
    return 0


def cmd_demo(args, progress) -> int:
    from .demo import run_demo

    out = prepare_out_dir(args.out)
    return run_demo(out, full=args.full, progress=progress)


def cmd_spion(args, progress) -> int:
    from sim.golden.spion import spion_pattern

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out must be a .npy file, but {out} is a folder")
    prepare_out_dir(out.parent)
    path = Path(args.attn)
    if not path.is_file():
        raise ValueError(f"--attn must be an existing .npy file, not {str(path)!r}")
    try:
        attn = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"--attn {path} is not a NumPy .npy array ({e})") from None
    if args.variant == "c" and args.density is None:
        raise ValueError("--variant c needs --density")
    if args.variant != "c" and args.quantile is None:
        raise ValueError(f"--variant {args.variant} needs --quantile")
    p = spion_pattern(attn, args.block, variant=args.variant, quantile=args.quantile,
                      filt=args.filter, density=args.density)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, p.mask)
    os.replace(tmp, out)
    nb = p.mask.shape[0]
    theta = "" if p.theta is None else f", theta {p.theta}"
    print(f"SPION-{args.variant.upper()}: {int(p.mask.sum())} of {nb}x{nb} blocks kept, "
          f"density {p.density:.4f}{theta}; wrote {out}")
    return 0


# ---- argument parsing -------------------------------------------------------------------
def _common(sp, default_cfg="ci"):
    sp.add_argument("block", choices=list(BLOCKS), help="the block (" + "; ".join(
        f"{k}: {v[1]}" for k, v in BLOCKS.items()) + ")")
    sp.add_argument("--config", default=default_cfg,
                    help=f"a preset ({', '.join(PRESETS)}) or a .toml file that names its "
                         f"base preset (base = \"paper\") and overrides fields (default: "
                         f"{default_cfg})")


def _sim_parser(sub):
    s = sub.add_parser("sim", help="cocotb simulation against the golden model",
                       description="Generate the Verilog, build it with Icarus or Verilator, "
                                   "and check random packets (edge cases first) bit-exactly "
                                   "against the golden model with random valid bubbles and "
                                   "ready back-pressure. Exits 1 on any mismatch.")
    _common(s)
    s.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    s.add_argument("--packets", type=int, default=None,
                   help="work in all, split over the stall settings: packets (topk), passes "
                        "(qk, softmax, pv, head), rows (dma), descriptors (regs); for the "
                        "core, the summarization's tokens (default 500; core: 24)")
    s.add_argument("--seed", type=_nonneg, default=1, help="the run's seed (default 1)")
    s.add_argument("--no-stall", action="store_true", help="no bubbles or back-pressure")
    s.add_argument("--waves", action="store_true", help="dump an FST waveform (also WAVES=1)")
    s.add_argument("--build-dir", help="put this run's Verilog, model and logs here "
                                       "(default: build/rtl/<block>/<config tag>/, shared "
                                       "under a lock, each run in a folder of its own)")
    s.set_defaults(func=cmd_sim)


def _synth_parser(sub):
    y = sub.add_parser("synth", help="synthesis: area, resources, Fmax",
                       description="Synthesize the generated Verilog. Targets: cmos "
                                   "(transistor estimate, no liberty), asic (OSU 0.18 um "
                                   "liberty: area and OpenSTA Fmax), ice40 and ecp5 (resources "
                                   "and nextpnr Fmax), xc7 (resources only). On cmos/asic, "
                                   "memories become black-box SRAM macros (area excluded, "
                                   "timed as registers) unless --memory flops. Prints a "
                                   "table, writes JSON. A result whose inputs are unchanged "
                                   "is reused.")
    _common(y, "paper")
    y.add_argument("--target", choices=TARGETS, default="cmos")
    y.add_argument("--liberty", help="liberty file for --target asic (default: OSU 0.18 um)")
    y.add_argument("--memory", choices=MEMORY_MODES, default="macro",
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


def _bench_parser(sub):
    b = sub.add_parser("bench", help="latency and throughput from RTL simulation",
                       description="topk: latency (mean, p99, max cycles from the last input "
                                   "beat to the last output beat) on random data for n in "
                                   "--sizes x k in {n/8, n/4, n/2, n-1, n}, beside the "
                                   "engine's bound, 2n/P and the SpAtten authors' latency "
                                   "model; writes CSV, a markdown table and a PNG plot. head: "
                                   "for L in --sizes and keep in {L/4, L}, steady-state "
                                   "cycles per pass, Q·K multiplier utilization and the "
                                   "latency of an isolated pass. core: with --trace, replays "
                                   "sampled rows of an authors' GPT-2 trace (cycles beside "
                                   "the idealised bound, DRAM bytes beside dense); without, "
                                   "a summarization sweep over keep ratios (table and PNG). "
                                   "Every run is also checked against the golden model.")
    b.add_argument("block", choices=BENCH_BLOCKS, help="the block to benchmark")
    b.add_argument("--config", default="paper", help=f"a preset ({', '.join(PRESETS)}) or a "
                                                     ".toml file (default: paper)")
    b.add_argument("--sizes", default=None,
                   help="topk, head: packet sizes n / row lengths L, comma-separated "
                        "(default: fractions of the config's capacity; paper: "
                        "128,256,512,1024 for topk, 128,512,1024 for head)")
    b.add_argument("--packets", type=int, default=None,
                   help="topk, head: packets or passes per point (default 20)")
    b.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    b.add_argument("--seed", type=_nonneg, default=1)
    b.add_argument("--out", default="build/bench", help="output folder")
    b.add_argument("--trace", help="core: replay this trace of the SpAtten authors (CSV, e.g. "
                                   "../shared/workloads/spatten-gpt2/*.csv)")
    b.add_argument("--rows", type=int, default=24,
                   help="core --trace: rows replayed, spread over the file (default 24)")
    b.add_argument("--tokens", type=int, default=None,
                   help="core sweep: tokens (default 128, at most the capacity)")
    b.add_argument("--heads", type=int, default=None, help="core sweep: heads (default 4)")
    b.add_argument("--layers", type=int, default=None, help="core sweep: layers (default 2)")
    b.set_defaults(func=cmd_bench)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="spatten",
        description="SpAtten RTL generator: generate Verilog, simulate it against the golden "
                    "model, synthesize it, benchmark it.")
    p.add_argument("--version", action="version", version=f"spatten {_version()}")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           parser_class=_Parser)
    g = sub.add_parser("generate", help="write Verilog and a manifest",
                       description="Write <top>.v and manifest.json (config, tool versions, "
                                   "hashes) for a block.")
    _common(g)
    g.add_argument("--out", default="build/generate", help="output folder")
    g.set_defaults(func=cmd_generate)
    _sim_parser(sub)
    _synth_parser(sub)
    _bench_parser(sub)
    d = sub.add_parser("demo", help="generate → sim → synth → bench, written to a report",
                       description="The main job in about three minutes on 2 cores: "
                                   "Verilog generated and linted; cocotb bit-exact against "
                                   "the golden model for the top-k engine, the head and the "
                                   "core (ci, Icarus); "
                                   "synthesis for ECP5 (place and route) and ASIC (OSU 0.18 "
                                   "um); benches. --full: the paper-scale report (paper and "
                                   "eighth on Verilator, the eighth core's area by block, the "
                                   "trace replay; about half an hour). Writes OUT/report.md.")
    d.add_argument("--out", default="build", help="output folder (default: build)")
    d.add_argument("--full", action="store_true", help="the paper-scale report")
    d.set_defaults(func=cmd_demo)
    _spion_parser(sub)
    return p


def _spion_parser(sub):
    from sim.golden.spion import DEFAULT_FILTER, VARIANTS

    sp = sub.add_parser("spion", help="SPION's block-sparse pattern of an attention map "
                                      "(the golden model)",
                        description="The nb x nb block mask of an L x L attention map (a "
                                    ".npy of non-negative integers, computed exactly, or "
                                    "floats, in float64): cf = diagonal convolution, block "
                                    "pooling, quantile threshold and greedy walk; c = the "
                                    "top floor(nb^2*density - nb) pooled cells; f = the walk "
                                    "without the convolution. The diagonal is always kept. "
                                    "Writes the boolean mask and prints its density.")
    sp.add_argument("--attn", required=True, help="the L x L attention map (.npy)")
    sp.add_argument("--block", type=int, required=True, help="the block size B (L = nb*B)")
    sp.add_argument("--variant", choices=VARIANTS, default="cf", help="default: cf")
    sp.add_argument("--quantile", help="q in (0, 1), taken as the exact decimal (cf, f)")
    sp.add_argument("--density", help="the kept fraction of blocks in (0, 1] (c)")
    sp.add_argument("--filter", type=int, default=DEFAULT_FILTER,
                    help=f"the odd filter size F (cf, c; default {DEFAULT_FILTER})")
    sp.add_argument("--out", required=True, help="the mask file to write (.npy)")
    sp.set_defaults(func=cmd_spion)


def main(argv=None) -> int:
    setup_env()
    args = _parser().parse_args(argv)
    progress = Progress(enabled=not args.quiet)
    try:
        return args.func(args, progress)
    except (ConfigError, ToolNotFound, ValueError, NotImplementedError) as e:
        print(f"spatten: error: {e}", file=sys.stderr)
        return 2
    except (Failed, BenchFailed, SynthError, SimBuildError) as e:
        print(f"spatten: failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spatten: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
