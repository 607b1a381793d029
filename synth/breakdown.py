"""Area breakdowns: a block's parts synthesized one by one, and their sums.

- :func:`area_breakdown` (flat): the head and its parts each synthesized whole; each part's
  share of the head, and the glue as the difference.
- :func:`hier_breakdown` (hierarchical): each part of :func:`hier_parts` on its own, the block
  with its parts as black boxes (the glue row), and the whole as the sum (:func:`sum_rows`);
  paths between parts are not timed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from generators.config import SpAttenConfig

from .cache import run_synth_block
from .flow import ecp5_over

__all__ = ["HEAD_PARTS", "SIZE_METRIC", "ADDITIVE", "COLUMNS", "GLUE", "BREAKDOWN_BLOCKS",
           "copies", "with_shares", "area_breakdown", "hier_parts", "sum_rows",
           "hier_breakdown"]

# The head pipeline's parts, synthesized one by one for the area breakdown.
HEAD_PARTS = ("qk", "softmax", "topk", "pv")
# The blocks that have a breakdown.
BREAKDOWN_BLOCKS = ("head", "core")
# The size column of each target that the breakdown's shares are computed from.
SIZE_METRIC = {"cmos": "transistors", "asic": "area_um2", "ice40": "lut", "ecp5": "lut",
               "xc7": "lut"}
# Columns that add up over copies of a block (a breakdown counts the top-k engine n times).
ADDITIVE = ("transistors", "gates", "area_um2", "sequential_area_um2", "nand2_eq", "ff",
            "lut", "carry", "bram", "dsp", "memory_bits")
# The columns a table of each target shows.
COLUMNS = {
    "cmos": ["transistors", "gates", "ff", "memory_bits", "memory_macros", "area_excludes"],
    "asic": ["area_um2", "sequential_area_um2", "nand2_eq", "ff", "critical_path_ns",
             "fmax_mhz", "memory_bits", "memory_macros", "area_excludes"],
    "ice40": ["lut", "carry", "ff", "bram", "fmax_mhz", "device", "note"],
    "ecp5": ["lut", "carry", "ff", "bram", "dsp", "fmax_mhz", "device", "note"],
    "xc7": ["lut", "carry", "ff", "bram", "dsp", "device"],
}
# What the glue row of a hierarchical breakdown holds.
GLUE = {"head": "FIFOs, forks, adapters", "core": "controller, K/V buffers, FIFOs"}


def copies(row: dict, n: int) -> dict:
    """``row`` (one synthesized instance) counted ``n`` times, labelled ``block × n``."""
    if n == 1:
        return row
    out = {**row, **{c: row[c] * n for c in ADDITIVE if isinstance(row.get(c), (int, float))},
           "block": f"{row['block']} × {n}"}
    if row.get("memory_macros"):
        out["memory_macros"] = f"{n} × ({row['memory_macros']})"
    return out


def with_shares(rows: list[dict], target: str, total) -> list[dict]:
    """``rows`` with a ``share`` column: each one's size metric over ``total``."""
    metric = SIZE_METRIC[target]
    return [{**r, "share": f"{100 * r[metric] / total:.1f} %"
             if total and r.get(metric) is not None else "-"} for r in rows]


def area_breakdown(rows: list[dict], target: str, engines: int = 1) -> list[dict]:
    """The flat head breakdown: each part's share of the ``head`` row, and a row for the glue
    (the head minus its parts: FIFOs, forks and adapters). The head has ``engines`` top-k
    engines (``attn.topk_engines``): the ``topk`` row, one engine synthesized, counts
    ``engines`` times (:func:`copies`)."""
    metric = SIZE_METRIC[target]
    rows = [copies(r, engines) if r["block"] == "topk" else r for r in rows]
    by = {r["block"].split(" ×")[0]: r for r in rows}
    total = by["head"].get(metric)
    out = with_shares(rows, target, total)
    sizes = [by[b].get(metric) for b in HEAD_PARTS if b in by]
    if total is not None and None not in sizes and len(sizes) == len(HEAD_PARTS):
        glue = total - sum(sizes)
        out.insert(len(HEAD_PARTS), {"block": "glue (head - parts)",
                                     "config": rows[0]["config"], "target": target,
                                     metric: round(glue, 1),
                                     "share": f"{100 * glue / total:.1f} %"})
    return out


def hier_parts(cfg: SpAttenConfig, block: str) -> list[tuple[str, tuple[str, ...]]]:
    """The parts of ``block`` that hierarchical synthesis measures on their own: (the block
    that synthesizes the part, the submodule names of its instances in ``block``)."""
    if block == "head":
        engines = tuple(f"topk{i}" for i in range(cfg.attn.topk_engines))
        return [(p, engines if p == "topk" else (p,)) for p in HEAD_PARTS]
    if block == "core":
        return [("head", ("head",)), ("select", ("select",)), ("heads", ("heads",)),
                ("importance", ("slots",)), ("dma", ("dma",)), ("regs", ("regs",))]
    raise ValueError(f"block must be one of {', '.join(BREAKDOWN_BLOCKS)} for a "
                     f"hierarchical breakdown, not {block!r}")


def sum_rows(rows: list[dict], block: str, target: str, config: str) -> dict:
    """The whole of a hierarchical breakdown: the additive columns summed, Fmax the slowest
    part's (paths between parts are not timed)."""
    total = {"block": block, "config": config, "target": target}
    for c in ("cells", *ADDITIVE):
        vals = [r.get(c) for r in rows]
        if all(isinstance(v, (int, float)) for v in vals):
            total[c] = round(sum(vals), 1) if any(isinstance(v, float) for v in vals) \
                else sum(vals)
    fmax = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz") is not None]
    timed = len(fmax) == len(rows)
    total["fmax_mhz"] = min(fmax) if timed else None
    total["critical_path_ns"] = (max(r["critical_path_ns"] for r in rows) if timed else None)
    total["note"] = ("sum of the parts above, each synthesized on its own; Fmax: the slowest "
                     "part (paths between parts not timed)" if timed else
                     "sum of the parts above, each synthesized on its own; no Fmax: "
                     + ", ".join(r["block"] for r in rows if r.get("fmax_mhz") is None)
                     + " not timed")
    devices = {r.get("device") for r in rows} - {None}
    if len(devices) == 1:
        total["device"] = devices.pop()
    if target == "ecp5" and all(isinstance(total.get(c), int) for c in ("lut", "carry")):
        over = ecp5_over(total)
        total["note"] += ("; as one design it does not fit the LFE5U-85F (" + ", ".join(over)
                          + ")" if over else "; as one design it fits the LFE5U-85F by "
                          "resources (not placed and routed as one)")
    return total


def hier_breakdown(cfg: SpAttenConfig, block: str, target: str, out: Path, liberty=None,
                   memory: str = "macro", *, expand=("head",),
                   progress: Callable[[str], None] | None = None,
                   synth=run_synth_block) -> list[dict]:
    """Hierarchical synthesis of ``block``: each part of :func:`hier_parts` on its own (the
    parts named in ``expand`` hierarchically, in turn), then ``block`` with its parts as black
    boxes (the glue row), then the whole as their sum (:func:`sum_rows`). A top-k engine
    synthesized once counts once per instance (``topk × n``). ``synth`` runs one block
    (:func:`~synth.cache.run_synth_block`'s signature)."""
    say = progress or (lambda _line: None)
    rows, leaves = [], []
    for part, subs in hier_parts(cfg, block):
        if part in expand:
            sub_rows = hier_breakdown(cfg, part, target, out, liberty, memory, expand=(),
                                      progress=progress, synth=synth)
            rows += sub_rows
            leaves += sub_rows[:-1]
            continue
        say(f"synthesizing {part} [{cfg.name}] for {target}")
        row = copies(synth(cfg, part, target, Path(out) / part / cfg.tag, liberty, memory,
                           progress=progress), len(subs))
        rows.append(row)
        leaves.append(row)
    say(f"synthesizing {block} [{cfg.name}] for {target}, its parts black-boxed")
    glue = synth(cfg, block, target, Path(out) / block / cfg.tag / "glue", liberty, memory,
                 blackbox=tuple(b for _, subs in hier_parts(cfg, block) for b in subs),
                 progress=progress)
    glue["block"] = f"{block} glue ({GLUE[block]})"
    rows.append(glue)
    leaves.append(glue)
    total = sum_rows(leaves, block, target, cfg.name)
    return with_shares(rows + [total], target, total.get(SIZE_METRIC[target]))
