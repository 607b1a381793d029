"""``verilator --lint-only -Wall`` on generated Verilog, with the waivers of hdl/lint_waivers.vlt,
and a check for a pattern that simulates wrongly under Icarus: an ``always @*`` block whose
only statement assigns a constant never runs there, so its target stays X (the Amaranth back
end emits one for a comb signal driven by a constant alone)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from generators.tools import find_tool

__all__ = ["lint", "constant_always", "WAIVERS"]

_CONST_ALWAYS = re.compile(r"^\s*always @\*\n\s*(\S.*?) = \d+'[hbd][0-9a-fA-F_]+;$",
                           re.MULTILINE)


def constant_always(text: str) -> list[str]:
    """The targets of ``always @*`` blocks that only assign a constant."""
    return _CONST_ALWAYS.findall(text)

WAIVERS = Path(__file__).resolve().parent.parent / "hdl" / "lint_waivers.vlt"


def lint(verilog: Path) -> list[str]:
    """The ``%Warning``/``%Error`` lines Verilator reports (empty when clean)."""
    exe = str(find_tool("verilator"))
    verilog = Path(verilog)
    shutil.copy(WAIVERS, verilog.parent / WAIVERS.name)
    p = subprocess.run([exe, "--lint-only", "-Wall", WAIVERS.name, verilog.name],
                       cwd=verilog.parent, capture_output=True, text=True)
    lines = (p.stdout + p.stderr).splitlines()
    found = [ln for ln in lines if ln.startswith(("%Warning", "%Error"))]
    found += [f"%Error-CONSTALWAYS: {verilog.name}: always @* assigning only a constant to "
              f"{t} (never runs under Icarus: drive it from a signal or drop the field)"
              for t in constant_always(verilog.read_text())]
    if p.returncode != 0 and not found:
        raise RuntimeError(f"verilator --lint-only failed: {' '.join(lines[:2])}")
    return found
