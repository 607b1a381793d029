"""What a testbench run recorded, as lines and tables for people (``spatten sim``, the
demo)."""

from __future__ import annotations

from .bench.common import md_table

__all__ = ["UNITS", "run_lines", "CORE_COLUMNS", "core_lines", "stall_plan"]

# The unit of work each block's testbench counts.
UNITS = {"topk": "packets", "dma": "rows", "regs": "descriptors", "core": "layers"}
CORE_COLUMNS = ["layer", "step", "mode", "tokens", "heads", "queries", "refetched", "rd",
                "wr", "cycles"]


def stall_plan(packets: int, settings: list[str]) -> str:
    """``TB_STALLS`` that spreads ``packets`` in all over the stall ``settings`` (``in:out``),
    the first ones taking the remainder; settings left with none are dropped."""
    if packets < 1:
        raise ValueError(f"--packets must be at least 1, not {packets}")
    n = len(settings)
    counts = [packets // n + (i < packets % n) for i in range(n)]
    return ",".join(f"{s}:{c}" for s, c in zip(settings, counts) if c)


def run_lines(block: str, result: dict) -> list[str]:
    """One line per stall setting of a block's random run."""
    unit = UNITS.get(block, "passes")
    lines = []
    for x in result.get("runs", []):
        if block == "dma":
            extra = (f"read beats {x['read_beats']}, RAM after writes "
                     f"{'as expected' if x['ram_ok'] else 'WRONG'}, byte counters "
                     f"{'right' if x['counters_ok'] else 'WRONG'}")
        elif block == "regs":
            lines.append(f"{x['descriptors']} descriptors, {x['good']} started, status codes "
                         f"{sorted(set(x['codes']))}")
            continue
        elif unit == "packets":
            extra = f"matched {x['matched']}"
        else:
            extra = (f"queries {x['queries']} ({x['refetched']} refetched), beats checked "
                     + ", ".join(f"{k} {v}" for k, v in sorted(x["beats"].items())))
        lines.append(f"stall in/out {x['stall'][0]:.1f}/{x['stall'][1]:.1f}: {unit} "
                     f"{x[unit]}, {extra}, cycles {x['cycles']}, mismatches {x['mismatches']}")
        if x.get("first"):
            lines.append(f"  {x['first']}")
    return lines


def core_lines(result: dict) -> list[str]:
    """The core's layers, per AXI pause setting: a line and a table."""
    lines = []
    for x in result.get("runs", []):
        lines.append(f"AXI pauses {x['stall'][1]:.1f}: {len(x['layers'])} good layers (mode 0 "
                     f"summarization, 1 decode step), status codes {x['codes']}")
        lines.append(md_table(x["layers"], CORE_COLUMNS))
    return lines
