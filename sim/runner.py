"""Generate Verilog, build it with cocotb's runner (Icarus or Verilator) and run a testbench.

Folders (``build_root`` defaults to ``build/rtl``; ``build_dir`` puts everything of one run
in a folder of the caller's choosing instead):

- ``<build_root>/<block>/<tag>/``: the Verilog and its manifest;
- ``.../<simulator>[-waves]/``: the compiled model, rebuilt only when the Verilog's hash
  changes. It is shared by runs of the same block and config, under a file lock: a build
  holds it exclusively, a simulation shared, so two runs at once never build over each other;
- ``.../<simulator>[-waves]/runs/<run>/``: one folder per run, its own: the testbench's
  results (``tb_result.json``), cocotb's ``results.xml``, ``sim.log`` and waveforms. Two runs
  started at once never read each other's results.

A failing testbench is reported with the first failure cocotb recorded (the exception and
where it was raised), not just a count.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from generators.config import SpAttenConfig
from generators.tools import find_tool, setup_env
from hdl.blocks import emit

__all__ = ["SIMULATORS", "TOOLS", "SimBuildError", "SimResult", "run_cocotb", "ROOT",
           "KEEP_RUNS"]

ROOT = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")
# The executables each simulator needs (found, or a one-line error, before any work).
TOOLS = {"icarus": ("iverilog", "vvp"), "verilator": ("verilator",)}
# Run folders kept per compiled model (the oldest beyond these are removed).
KEEP_RUNS = 8


class SimBuildError(RuntimeError):
    """The simulator could not build the generated Verilog (one-line reason, log path)."""


@dataclass(frozen=True)
class SimResult:
    ok: bool
    tests: int
    failed: int
    result: dict          # what the testbench recorded (TB_RESULT)
    build_dir: Path       # this run's own folder (logs, results, waves)
    waves: Path | None
    failures: tuple[str, ...] = ()   # "test: message" of every failed cocotb test

    @property
    def reason(self) -> str:
        """One line on why the run failed (empty when it passed)."""
        if self.ok:
            return ""
        if self.failures:
            return self.failures[0]
        if self.tests == 0:
            return f"the testbench did not run (see {self.build_dir / 'sim.log'})"
        return f"{self.failed} of {self.tests} cocotb tests failed (see {self.build_dir})"


@contextmanager
def _locked(path: Path, exclusive: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _failures(xml: Path) -> tuple[int, int, tuple[str, ...]]:
    """Tests, failures and the failure messages of a cocotb results file."""
    if not xml.is_file():
        return 0, 0, ()
    try:
        root = ElementTree.parse(xml).getroot()
    except ElementTree.ParseError:
        return 0, 0, ()
    tests = failed = 0
    messages = []
    for suite in root.iter("testsuite"):
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    for case in root.iter("testcase"):
        for bad in (*case.findall("failure"), *case.findall("error")):
            text = " ".join((bad.get("message") or "failed").split())
            kind = bad.get("type")
            where = re.findall(r'File "([^"]+)", line (\d+)', bad.text or "")
            at = f" (at {Path(where[-1][0]).name}:{where[-1][1]})" if where else ""
            messages.append(f"{case.get('name')}: {kind + ': ' if kind else ''}{text}{at}")
    return tests, max(failed, len(messages)), tuple(messages)


def _build(runner, simulator: str, em, model: Path, waves: bool, quiet: bool,
           current: bool):
    """Build the model in ``model`` (the caller holds its lock exclusively); a ``current``
    one (same Verilog) is only checked by the simulator's own make rules, so it is not
    rebuilt, but the runner learns its sources."""
    stamp = model / "verilog.sha256"
    sources = [em.verilog]
    if simulator == "icarus":
        # -g2005 avoids a time-zero race of Yosys' always @* idiom under -g2012 (amaranth#594).
        # cocotb's own Icarus dump module is SystemVerilog, so the dump module is ours; vvp
        # writes the FST into the directory it runs in (the run's folder).
        build_args = ["-g2005"]
        if waves:
            dump = model / "waves_dump.v"
            dump.write_text(f"module waves_dump;\ninitial begin\n"
                            f"  $dumpfile(\"{em.top}.fst\");\n"
                            f"  $dumpvars(0, {em.top});\nend\nendmodule\n")
            sources.append(dump)
            build_args += ["-s", "waves_dump"]
    else:
        build_args = ["-Wno-fatal", "-O2"]
    log = model / "build.log"
    if not current:
        stamp.unlink(missing_ok=True)
    try:
        runner.build(sources=sources, hdl_toplevel=em.top, build_dir=model, always=not current,
                     build_args=build_args, timescale=("1ns", "1ps"),
                     waves=waves and simulator != "icarus", log_file=log if quiet else None)
    except (RuntimeError, SystemExit, OSError) as e:
        raise SimBuildError(f"{simulator} build of {em.verilog.name} failed ({e}); "
                            f"see {log}") from None
    stamp.write_text(em.sha256)


def _new_run_folder(model: Path) -> Path:
    runs = model / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    old = sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    for stale in old[:max(0, len(old) - KEEP_RUNS + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    run = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    run.mkdir()
    return run


def _watch(path: Path, task, stop: threading.Event):
    """Show the testbench's progress file (``sim.harness.env.advance``) on ``task`` until
    ``stop``, and once more after it."""
    while True:
        stopped = stop.wait(0.5)
        try:
            done, total, label = json.loads(path.read_text())
        except (OSError, ValueError, TypeError):
            done = None
        if done is not None:
            if label:
                task.say(label)
            task.show(done, total)
        if stopped:
            return


def run_cocotb(cfg: SpAttenConfig, block: str, *, simulator: str = "icarus", packets: int = 100,
               seed: int = 1, stalls: str = "0:0,0.3:0.5", bench: str | None = None,
               waves: bool | None = None, build_root: Path | None = None,
               build_dir: Path | None = None, quiet: bool = True,
               tb_env: dict | None = None, progress=None) -> SimResult:
    """Simulate ``block`` of ``cfg`` with its testbench ``sim.tb.tb_<block>``.

    ``packets``, ``seed``, ``stalls`` (``in:out`` pairs, or ``in:out:count`` with the
    packets of that setting) and ``bench`` go to the testbench (``TB_*``); ``tb_env`` adds
    variables. ``progress`` (:class:`sim.progress.Progress`) shows the build and the
    testbench's progress. Raises :class:`~generators.tools.ToolNotFound` before any work
    when a tool is missing, :class:`SimBuildError` when the model does not build."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    setup_env()
    for tool in TOOLS[simulator]:
        find_tool(tool)
    from cocotb_tools.runner import get_runner

    if waves is None:
        waves = os.environ.get("WAVES") == "1"
    if build_dir is not None:
        base = Path(build_dir)
    else:
        base = (Path(build_root) if build_root else ROOT / "build" / "rtl") / block / cfg.tag
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base / ".lock", exclusive=True):
        em = emit(cfg, block, base)
    model = base / (simulator + ("-waves" if waves else ""))
    runner = get_runner(simulator)
    if quiet:  # its notes ("Skipping compilation of ...") are in the logs
        runner.log.setLevel(logging.ERROR)
    with _locked(model / ".lock", exclusive=True):
        stamp = model / "verilog.sha256"
        current = stamp.is_file() and stamp.read_text() == em.sha256
        with _task(progress if not current else None,
                   f"{simulator} build of {block} [{cfg.name}]"):
            _build(runner, simulator, em, model, waves, quiet, current)
        run = _new_run_folder(model)
    result_path = run / "tb_result.json"
    env = {"TB_CONFIG": cfg.to_json(), "TB_PACKETS": str(packets), "TB_STALLS": stalls,
           "TB_RESULT": str(result_path), "TB_PROGRESS": str(run / "progress.json"),
           "TB_SEED": str(seed), "PYTHONPATH": str(ROOT)}
    if bench:
        env["TB_BENCH"] = bench
    env.update({k: str(v) for k, v in (tb_env or {}).items()})
    xml = run / "results.xml"
    with _locked(model / ".lock", exclusive=False), \
            _task(progress, f"{simulator} simulation of {block} [{cfg.name}]") as task:
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(run / "progress.json", task, stop),
                                   daemon=True)
        watcher.start()
        try:
            runner.test(hdl_toplevel=em.top, test_module=f"sim.tb.tb_{block}",
                        build_dir=model, test_dir=run, results_xml=str(xml), seed=seed,
                        extra_env=env, waves=waves, timescale=("1ns", "1ps"),
                        log_file=run / "sim.log" if quiet else None)
        except SystemExit:   # under pytest the runner exits on a failure: read the results
            pass
        finally:
            stop.set()
            watcher.join()
    tests, failed, failures = _failures(xml)
    try:
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
    except ValueError:
        result = {}
    wave = next(iter(sorted(run.glob("*.fst"))), None) if waves else None
    return SimResult(ok=failed == 0 and tests > 0, tests=tests, failed=failed, result=result,
                     build_dir=run, waves=wave, failures=failures)


@contextmanager
def _task(progress, desc):
    if progress is None:
        yield _NoTask()
    else:
        with progress.task(desc) as t:
            yield t


class _NoTask:
    def show(self, done, total):
        pass

    def say(self, text):
        pass
