"""Parsers of synthesis reports into frozen dataclasses.

Only machine-readable or fixed-format outputs are read (no scraping of Yosys' text `stat`):

* Yosys ``stat -json`` (optionally with ``-width``, ``-tech cmos`` or ``-liberty``) ->
  :class:`AreaReport`. Yosys 0.70 has a top-level ``design`` block; Yosys 0.23 has none and
  no ``area``, so the top module's entry is used instead (toolchain.md P11).
* nextpnr ``--report`` JSON -> :class:`NextpnrReport` (achieved Fmax per clock, utilization).
* OpenSTA ``report_checks`` text -> :class:`StaReport` (worst reg->reg path).
* Liberty text -> :class:`LibertyInfo` (cell areas, flip-flop / latch cells, NAND2 reference).

:data:`CELL_CLASSES` maps each target to the cell-name prefixes of its LUTs, flip-flops,
latches, block RAMs, DSPs, carry cells and LUT RAMs. Numbers are comparable only within one
Yosys version, hence :attr:`AreaReport.yosys` (the ``creator`` string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "CELL_CLASSES",
    "AreaReport",
    "LibertyCell",
    "LibertyInfo",
    "NextpnrReport",
    "StaReport",
    "classify_cells",
]


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


_CLASSES = ("lut", "ff", "latch", "carry", "bram", "dsp", "lutram")

CELL_CLASSES: Mapping[str, Mapping[str, tuple[str, ...]]] = _frozen({
    # Yosys' internal fine-grained gates after `dfflegalize` + `abc -g cmos2`.
    "cmos": _frozen({
        "lut": (), "ff": ("$_DFF", "$_SDFF", "$_ALDFF"), "latch": ("$_DLATCH", "$_SR_"),
        "carry": (), "bram": (), "dsp": (), "lutram": (),
    }),
    # Standard cells: flip-flops and latches are told apart by their liberty `ff`/`latch`
    # groups (LibertyInfo), not by name, because every library names them differently.
    "asic": _frozen({c: () for c in _CLASSES}),
    "ice40": _frozen({
        "lut": ("SB_LUT4",), "ff": ("SB_DFF",), "latch": (), "carry": ("SB_CARRY",),
        "bram": ("SB_RAM40_4K", "SB_SPRAM256KA"), "dsp": ("SB_MAC16",), "lutram": (),
    }),
    "ecp5": _frozen({
        "lut": ("LUT4",), "ff": ("TRELLIS_FF",), "latch": (), "carry": ("CCU2C",),
        "bram": ("DP16KD", "PDPW16KD"), "dsp": ("MULT18X18D", "ALU54B"),
        "lutram": ("TRELLIS_DPR16X4",),
    }),
    "xc7": _frozen({
        "lut": ("LUT",), "ff": ("FDRE", "FDSE", "FDCE", "FDPE"), "latch": ("LDCE", "LDPE"),
        "carry": ("CARRY4",), "bram": ("RAMB18E1", "RAMB36E1"), "dsp": ("DSP48E1",),
        "lutram": ("RAM16X", "RAM32X", "RAM32M", "RAM64X", "RAM64M", "RAM128X", "RAM256X",
                   "SRL16E", "SRLC32E"),
    }),
})

# Coarse RTL cells (after `proc`) holding state; with `stat -width` they read `$dff_9` etc.
_RTL_FF = frozenset({"$dff", "$dffe", "$adff", "$adffe", "$sdff", "$sdffe", "$sdffce",
                     "$aldff", "$aldffe", "$dffsr", "$dffsre"})
_RTL_LATCH = frozenset({"$dlatch", "$adlatch", "$dlatchsr"})


def _bits(cells: Mapping[str, int], coarse: frozenset[str], fine: tuple[str, ...]) -> int:
    total = 0
    for cell, n in cells.items():
        base, _, width = cell.rpartition("_")
        if base in coarse and width.isdigit():
            total += n * int(width)
        elif cell in coarse:
            raise ValueError(f"bit count needs `stat -width` statistics, not bare {cell!r} cells")
        elif cell.startswith(fine):
            total += n
    return total


@dataclass(frozen=True)
class AreaReport:
    """One Yosys ``stat -json`` result for the (flattened) top module.

    ``area`` and ``sequential_area`` are in liberty area units (µm² by convention) and present
    only with ``stat -liberty`` on Yosys >= 0.40. ``transistors`` is present only with
    ``stat -tech cmos``; Yosys appends ``+`` when some cells have no estimate
    (``transistors_partial``).
    """

    yosys: str                      # "creator": compare numbers only within one Yosys version
    cells: Mapping[str, int]        # cell type -> count
    num_cells: int
    port_bits: int | None
    memory_bits: int | None
    transistors: int | None
    transistors_partial: bool
    area: float | None
    sequential_area: float | None

    @classmethod
    def from_stat_json(cls, text: str, *, top: str | None = None) -> AreaReport:
        """Parse the text written by ``tee -q -o FILE stat -json``.

        ``top`` selects the module when the JSON has no ``design`` block (Yosys < 0.40); if it
        is not given, the JSON must then hold exactly one module.
        """
        stat = json.loads(text)
        if not isinstance(stat, dict) or "creator" not in stat:
            raise ValueError("stat JSON must be an object with a 'creator' key, not "
                             f"{type(stat).__name__} {str(stat)[:60]!r}")
        design = stat.get("design")
        if design is None:
            modules = stat.get("modules", {})
            if top is not None and f"\\{top}" in modules:
                design = modules[f"\\{top}"]
            elif len(modules) == 1:
                (design,) = modules.values()
            else:
                raise ValueError("stat JSON without a 'design' block must name the top module "
                                 f"or hold one module, not {sorted(modules)}")
        raw = design.get("estimated_num_transistors")
        area = design.get("area")
        seq = design.get("sequential_area")
        return cls(
            yosys=stat["creator"],
            cells=_frozen({str(k): int(v) for k, v in design["num_cells_by_type"].items()}),
            num_cells=int(design["num_cells"]),
            port_bits=None if "num_port_bits" not in design else int(design["num_port_bits"]),
            memory_bits=(None if "num_memory_bits" not in design
                         else int(design["num_memory_bits"])),
            transistors=None if raw is None else int(str(raw).rstrip("+")),
            transistors_partial=raw is not None and str(raw).endswith("+"),
            area=None if area is None else float(area),
            sequential_area=None if seq is None else float(seq),
        )

    def count(self, *prefixes: str) -> int:
        """Cells whose type starts with any of ``prefixes``, e.g. ``count("SB_LUT4")``."""
        return sum(n for cell, n in self.cells.items() if cell.startswith(prefixes))

    @property
    def register_bits(self) -> int:
        """Flip-flop bits of an RTL-level ``stat -width`` (``$dff_9`` counts 9); fine-grained
        ``$_DFF*``/``$_SDFF*``/``$_ALDFF*`` cells count 1 each."""
        return _bits(self.cells, _RTL_FF, ("$_DFF", "$_SDFF", "$_ALDFF"))

    @property
    def latch_bits(self) -> int:
        """Latch bits of an RTL-level ``stat -width``; ``$_DLATCH*``/``$_SR_*`` count 1 each."""
        return _bits(self.cells, _RTL_LATCH, ("$_DLATCH", "$_SR_"))

    @property
    def short_version(self) -> str:
        """``"Yosys 0.70 (git sha1 28ba3cb92)"`` from the full creator string."""
        return _short_yosys(self.yosys)


def _short_yosys(creator: str) -> str:
    head = creator.split(",")[0].strip()
    return head + ")" if head.count("(") > head.count(")") else head


def classify_cells(target: str, cells: Mapping[str, int],
                   liberty: LibertyInfo | None = None) -> dict[str, int]:
    """Count ``cells`` per class (lut, ff, latch, carry, bram, dsp, lutram) for ``target``.

    For ``asic`` the flip-flops and latches are read from ``liberty``; the other classes are 0.
    """
    if target not in CELL_CLASSES:
        raise ValueError(f"target must be one of {', '.join(CELL_CLASSES)}, not {target!r}")
    counts = {c: sum(n for cell, n in cells.items() if cell.startswith(p))
              for c, p in CELL_CLASSES[target].items()}
    if target == "asic":
        if liberty is None:
            raise ValueError("classify_cells('asic', ...) needs the LibertyInfo of the library")
        for cell, n in cells.items():
            kind = liberty.cells[cell].kind if cell in liberty.cells else None
            if kind is not None:
                counts[kind] += n
    return counts


@dataclass(frozen=True)
class NextpnrReport:
    """nextpnr ``--report`` JSON: achieved Fmax (MHz) per clock and bel utilization."""

    fmax: Mapping[str, float]                    # clock net -> achieved MHz
    constraint: Mapping[str, float]              # clock net -> requested MHz
    utilization: Mapping[str, tuple[int, int]]   # bel type -> (used, available)

    @classmethod
    def from_json(cls, text: str) -> NextpnrReport:
        report = json.loads(text)
        fmax = report.get("fmax", {})
        return cls(
            fmax=_frozen({k: float(v["achieved"]) for k, v in fmax.items()}),
            constraint=_frozen({k: float(v["constraint"]) for k, v in fmax.items()
                                if "constraint" in v}),
            utilization=_frozen({k: (int(v["used"]), int(v["available"]))
                                 for k, v in report.get("utilization", {}).items()}),
        )

    def clock_fmax(self, hint: str = "clk") -> tuple[str, float] | None:
        """The slowest clock whose name contains ``hint`` (nextpnr renames nets, e.g.
        ``clk$SB_IO_IN_$glb_clk``); if no name contains it, the slowest clock of all.
        None when the design has no clocked path."""
        named = {k: v for k, v in self.fmax.items() if hint.lower() in k.lower()}
        pool = named or dict(self.fmax)
        if not pool:
            return None
        name = min(pool, key=pool.__getitem__)
        return name, pool[name]

    def used(self, bel: str) -> int | None:
        return self.utilization[bel][0] if bel in self.utilization else None

    def available(self, bel: str) -> int | None:
        return self.utilization[bel][1] if bel in self.utilization else None


_NUM = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_ARRIVAL = re.compile(rf"^\s*{_NUM}\s+data arrival time\s*$", re.M)
_SETUP = re.compile(rf"^\s*{_NUM}\s+{_NUM}\s+library setup time\s*$", re.M)
_SLACK = re.compile(rf"^\s*{_NUM}\s+slack\b", re.M)
_POINT = re.compile(r"^(Startpoint|Endpoint):\s*(\S+)", re.M)


@dataclass(frozen=True)
class StaReport:
    """Worst path of OpenSTA ``report_checks -path_delay max -digits 3`` (times in ns, as set
    by ``set_cmd_units -time ns``). All fields are None when OpenSTA found no path."""

    arrival_ns: float | None        # data arrival time at the capturing flop
    setup_ns: float | None          # library setup time of the capturing flop
    slack_ns: float | None
    startpoint: str | None
    endpoint: str | None

    @classmethod
    def from_text(cls, text: str) -> StaReport:
        arrival, setup, slack = _ARRIVAL.search(text), _SETUP.search(text), _SLACK.search(text)
        if arrival is None or setup is None:
            if "No paths found" in text:
                return cls(None, None, None, None, None)
            raise ValueError("OpenSTA report must contain 'data arrival time' and 'library setup "
                             "time' lines or 'No paths found', not neither")
        points = dict(_POINT.findall(text))
        return cls(
            arrival_ns=float(arrival.group(1)),
            setup_ns=-float(setup.group(1)),    # printed as a negative delay on the required side
            slack_ns=None if slack is None else float(slack.group(1)),
            startpoint=points.get("Startpoint"),
            endpoint=points.get("Endpoint"),
        )

    @property
    def critical_path_ns(self) -> float | None:
        """Arrival plus setup: the shortest period at which the worst path still meets setup."""
        if self.arrival_ns is None or self.setup_ns is None:
            return None
        return self.arrival_ns + self.setup_ns

    @property
    def fmax_mhz(self) -> float | None:
        path = self.critical_path_ns
        return None if path is None or path <= 0 else 1000.0 / path


@dataclass(frozen=True)
class LibertyCell:
    name: str
    area: float | None
    kind: str | None                # "ff", "latch" or None (combinational)


_CELL = re.compile(r"^\s*cell\s*\(\s*\"?([^\s\")]+)\"?\s*\)\s*\{", re.M)
_AREA = re.compile(rf"\barea\s*:\s*{_NUM}")
_FF = re.compile(r"^\s*ff(?:_bank)?\s*\(", re.M)
_LATCH = re.compile(r"^\s*latch(?:_bank)?\s*\(", re.M)
_NAND2 = re.compile(r"^nand2(?!b)", re.I)
_INV = re.compile(r"^inv(?:x?\d|_\d)", re.I)


def _base(name: str) -> str:
    return name.rsplit("__", 1)[-1]     # sky130_fd_sc_hd__nand2_1 -> nand2_1


@dataclass(frozen=True)
class LibertyInfo:
    """Cell areas and sequential kinds read from a liberty file.

    Cells are taken as the text from one ``cell (NAME) {`` header to the next, which holds for
    liberty files that list their cells one after another (all common ones do).
    """

    name: str
    cells: Mapping[str, LibertyCell]

    @classmethod
    def from_text(cls, text: str) -> LibertyInfo:
        lib = re.search(r"\blibrary\s*\(\s*\"?([^\s\")]+)\"?\s*\)", text)
        heads = list(_CELL.finditer(text))
        if lib is None or not heads:
            raise ValueError("liberty text must contain a library (...) group with cells, "
                             "not none")
        cells = {}
        for head, nxt in zip(heads, [*heads[1:], None], strict=True):
            body = text[head.end():len(text) if nxt is None else nxt.start()]
            area = _AREA.search(body)
            kind = "ff" if _FF.search(body) else "latch" if _LATCH.search(body) else None
            name = head.group(1)
            cells[name] = LibertyCell(name, None if area is None else float(area.group(1)), kind)
        return cls(name=lib.group(1), cells=_frozen(cells))

    def _smallest(self, pattern: re.Pattern) -> LibertyCell | None:
        found = [c for c in self.cells.values()
                 if pattern.match(_base(c.name)) and c.area is not None and c.kind is None]
        return min(found, key=lambda c: (c.area, c.name)) if found else None

    @property
    def nand2(self) -> LibertyCell | None:
        """The smallest two-input NAND (``NAND2X1``, ``nand2_1``; not ``nand2b``), the unit of
        NAND2-equivalent gate counts; None if the library has none."""
        return self._smallest(_NAND2)

    @property
    def inverter(self) -> LibertyCell | None:
        """The smallest inverter (``INVX1``, ``inv_1``), used as ABC's driving cell."""
        return self._smallest(_INV)
