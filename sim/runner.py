"""Generate Verilog, build it with cocotb's runner (Icarus or Verilator) and run a testbench.

One build folder per (block, config, simulator): ``build/rtl/<top>/<tag>/<simulator>/``, so
parallel pytest workers never share one, and a Verilator build is reused while the Verilog's
hash is unchanged. ``WAVES=1`` (or ``waves=True``) dumps an FST waveform there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from generators.config import SpAttenConfig
from hdl.blocks import emit

from generators.tools import find_tool, setup_env

__all__ = ["SIMULATORS", "SimBuildError", "SimResult", "run_cocotb", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")
# The executables each simulator needs (found, or a one-line error, before any work).
TOOLS = {"icarus": ("iverilog", "vvp"), "verilator": ("verilator",)}


class SimBuildError(RuntimeError):
    """The simulator could not build the generated Verilog (one-line reason, log path)."""


@dataclass(frozen=True)
class SimResult:
    ok: bool
    tests: int
    failed: int
    result: dict  # what the testbench recorded (TB_RESULT)
    build_dir: Path
    waves: Path | None


def run_cocotb(cfg: SpAttenConfig, block: str, *, simulator: str = "icarus", packets: int = 100,
               seed: int = 1, stalls: str = "0:0,0.3:0.5", bench: str | None = None,
               waves: bool | None = None, build_root: Path | None = None,
               quiet: bool = True, tb_env: dict | None = None) -> SimResult:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    setup_env()
    for tool in TOOLS[simulator]:
        find_tool(tool)
    from cocotb_tools.runner import get_results, get_runner

    if waves is None:
        waves = os.environ.get("WAVES") == "1"
    build_root = Path(build_root) if build_root else ROOT / "build" / "rtl"
    em = emit(cfg, block, build_root / block / cfg.tag)
    # A bench run gets its own folder: its results file must not race a test run of the
    # same block (pytest -n 2 runs both at once).
    build_dir = build_root / block / cfg.tag / (simulator + ("-waves" if waves else "")
                                                + ("-bench" if bench else ""))
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / "verilog.sha256"
    fresh = not stamp.exists() or stamp.read_text() != em.sha256
    runner = get_runner(simulator)
    sources = [em.verilog]
    if simulator == "icarus":
        # -g2005 avoids a time-zero race of Yosys' always @* idiom under -g2012 (amaranth#594).
        # cocotb's own Icarus dump module is SystemVerilog, so the dump module is ours; the
        # runner's `waves` at test time makes vvp write FST.
        build_args = ["-g2005"]
        if waves:
            dump = build_dir / "waves_dump.v"
            dump.write_text(f"module waves_dump;\ninitial begin\n"
                            f"  $dumpfile(\"{build_dir / em.top}.fst\");\n"
                            f"  $dumpvars(0, {em.top});\nend\nendmodule\n")
            sources.append(dump)
            build_args += ["-s", "waves_dump"]
    else:
        build_args = ["-Wno-fatal", "-O2"]
    log = build_dir / "build.log"
    try:
        runner.build(sources=sources, hdl_toplevel=em.top, build_dir=build_dir,
                     always=fresh or simulator == "icarus", build_args=build_args,
                     timescale=("1ns", "1ps"), waves=waves and simulator != "icarus",
                     log_file=log if quiet else None)
    except (RuntimeError, SystemExit, OSError) as e:
        raise SimBuildError(f"{simulator} build of {em.verilog.name} failed ({e}); "
                            f"see {log}") from None
    stamp.write_text(em.sha256)
    result_path = build_dir / "tb_result.json"
    result_path.unlink(missing_ok=True)
    env = {"TB_CONFIG": cfg.to_json(), "TB_PACKETS": str(packets), "TB_STALLS": stalls,
           "TB_RESULT": str(result_path), "TB_SEED": str(seed), "PYTHONPATH": str(ROOT)}
    if bench:
        env["TB_BENCH"] = bench
    env.update({k: str(v) for k, v in (tb_env or {}).items()})
    xml = runner.test(hdl_toplevel=em.top, test_module=f"sim.tb.tb_{block}", build_dir=build_dir,
                      test_dir=build_dir, seed=seed, extra_env=env, waves=waves,
                      timescale=("1ns", "1ps"), log_file=build_dir / "sim.log" if quiet else None)
    tests, failed = get_results(xml)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    wave = next(iter(sorted(build_dir.glob("*.fst"))), None) if waves else None
    return SimResult(ok=failed == 0 and tests > 0, tests=tests, failed=failed, result=result,
                     build_dir=build_dir, waves=wave)
