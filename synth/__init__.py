"""Synthesis flow: Yosys scripts per target, P&R / timing runs, and report parsing.

``run_synth(verilog, top, target, workdir)`` runs one target of :data:`TARGETS` and returns a
:class:`SynthResult` whose flat ``metrics`` suit a table or JSON; see :mod:`synth.flow`,
:mod:`synth.report` and :mod:`synth.macro` (black-box SRAM macros, ``memory="macro"``).
"""

from .flow import MEMORY_MODES, TARGETS, SynthError, SynthResult, run_synth, tool_versions
from .report import AreaReport, LibertyInfo, NextpnrReport, StaReport

__all__ = [
    "MEMORY_MODES",
    "TARGETS",
    "AreaReport",
    "LibertyInfo",
    "NextpnrReport",
    "StaReport",
    "SynthError",
    "SynthResult",
    "run_synth",
    "tool_versions",
]
