"""Synthesis flow: Yosys scripts per target, P&R / timing runs, and report parsing.

``run_synth(verilog, top, target, workdir)`` runs one target of :data:`TARGETS` and returns a
:class:`SynthResult` whose flat ``metrics`` suit a table or JSON; see :mod:`synth.flow` and
:mod:`synth.report`.
"""

from .flow import TARGETS, SynthError, SynthResult, ToolMissing, run_synth, tool_versions
from .report import AreaReport, LibertyInfo, NextpnrReport, StaReport

__all__ = [
    "TARGETS",
    "AreaReport",
    "LibertyInfo",
    "NextpnrReport",
    "StaReport",
    "SynthError",
    "SynthResult",
    "ToolMissing",
    "run_synth",
    "tool_versions",
]
