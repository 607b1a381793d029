"""Black-box SRAM macros for the ``memory="macro"`` mode of the ``cmos`` and ``asic`` targets.

There is no SRAM compiler, so a memory is not built from gates: ``scripts/sram_macro_map.v``
turns each inferred memory with one synchronous write port and one synchronous,
non-transparent, reset-free read port on one clock into a ``SPATTEN_SRAM`` cell (declared as a
black box by ``scripts/sram_macro_bb.v``), with the read data register inside. Other memories
are left to Yosys' ``memory_map`` (flip-flops). This module reads what happened and prepares
the netlist for OpenSTA:

* :meth:`MemoryMap.from_dump` parses the ``dump t:$mem_v2 t:SPATTEN_SRAM`` that the scripts
  write right after the mapping (RTLIL text) into macros and memories left to flip-flops;
* :func:`rename_macros` gives every ``SPATTEN_SRAM #(...)`` instance of a ``write_verilog``
  netlist a cell name of its own shape, ``SRAM_<depth>x<width>_1R1W`` (``_BWE`` with one write
  enable per data bit), because a liberty cell has fixed pins;
* :func:`liberty_text` writes those cells as a liberty library with the timing model below.

STA model of a macro (a registered black box, area 0): every input pin (``RE``, ``RADDR``,
``WE``, ``WADDR``, ``WDATA``) has setup and hold checks against the rising edge of ``CLK`` of
:data:`SRAM_SETUP_NS` / :data:`SRAM_HOLD_NS` and a capacitance of :data:`SRAM_PIN_CAP_PF`;
``RDATA`` switches :data:`SRAM_CLK_TO_Q_NS` after the edge with a transition of
:data:`SRAM_OUT_TRANSITION_NS`. OpenSTA counts such a cell among ``all_registers``, so paths
register -> macro inputs and macro outputs -> register are timed with the logic delay only
(no SRAM access time).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MACRO_CELL",
    "SRAM_CLK_TO_Q_NS",
    "SRAM_HOLD_NS",
    "SRAM_OUT_TRANSITION_NS",
    "SRAM_PIN_CAP_PF",
    "SRAM_SETUP_NS",
    "MemoryMap",
    "SramMacro",
    "liberty_text",
    "rename_macros",
]

MACRO_CELL = "SPATTEN_SRAM"          # generic cell made by scripts/sram_macro_map.v
MIN_MACRO_DEPTH = 16                 # fewer words stay flip-flops (a FIFO's register file)
SRAM_CLK_TO_Q_NS = 0.0
SRAM_SETUP_NS = 0.0
SRAM_HOLD_NS = 0.0
SRAM_OUT_TRANSITION_NS = 0.1         # like a small standard cell driving a light load
SRAM_PIN_CAP_PF = 0.01               # about one OSU 0.18 um flip-flop D input


@dataclass(frozen=True, order=True)
class SramMacro:
    """The shape of one macro: ``depth`` words of ``width`` bits, ``abits`` address bits;
    ``bwe``: one write enable per data bit (else one for the word)."""

    depth: int
    width: int
    abits: int
    bwe: bool = False

    @property
    def cell(self) -> str:
        """Liberty / netlist cell name, e.g. ``SRAM_128x192_1R1W``."""
        return f"SRAM_{self.depth}x{self.width}_1R1W" + ("_BWE" if self.bwe else "")

    @property
    def shape(self) -> str:
        """Short description, e.g. ``128x192 1R1W`` (``128x192 1R1W bit-write``)."""
        return f"{self.depth}x{self.width} 1R1W" + (" bit-write" if self.bwe else "")

    @property
    def bits(self) -> int:
        return self.depth * self.width


def _const(value: str) -> int:
    """An integer from RTLIL (``16``, ``1'0``, ``32'000...10000``) or Verilog (``32'd16``,
    ``1'h0``) constant text."""
    value = value.strip().replace("_", "")
    if "'" not in value:
        return int(value)
    _, _, digits = value.partition("'")
    digits = digits.lstrip("s")
    base = {"b": 2, "d": 10, "h": 16, "o": 8}.get(digits[:1].lower())
    return int(digits[1:], base) if base is not None else int(digits, 2)


_DUMP_CELL = re.compile(r"^\s*cell\s+(\S+)\s+(\S+)\s*$")
_DUMP_PARAM = re.compile(r"^\s*parameter\s+(?:signed\s+|real\s+)*\\(\w+)\s+(.*?)\s*$")


@dataclass(frozen=True)
class MemoryMap:
    """Memories after the macro mapping: ``macros`` (one per macro instance) and
    ``flop_memories`` ((depth, width) of every memory left to ``memory_map``)."""

    macros: tuple[SramMacro, ...]
    flop_memories: tuple[tuple[int, int], ...]

    @classmethod
    def from_dump(cls, text: str) -> MemoryMap:
        """Parse the RTLIL of ``dump t:$mem_v2 t:SPATTEN_SRAM`` (empty text: no memories)."""
        macros, flops = [], []
        cell, params = None, {}

        def close() -> None:
            try:
                if cell in (MACRO_CELL, f"\\{MACRO_CELL}"):
                    macros.append(SramMacro(_const(params["DEPTH"]), _const(params["WIDTH"]),
                                            _const(params["ABITS"]),
                                            bool(_const(params.get("BWE", "0")))))
                elif cell == "$mem_v2":
                    flops.append((_const(params["SIZE"]), _const(params["WIDTH"])))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"memory dump: cell {cell} lacks a readable parameter: "
                                 f"{exc!r}") from exc

        for line in text.splitlines():
            if (head := _DUMP_CELL.match(line)) is not None:
                cell, params = head.group(1), {}
            elif cell is not None and (param := _DUMP_PARAM.match(line)) is not None:
                params[param.group(1)] = param.group(2)
            elif cell is not None and line.strip() == "end":
                close()
                cell = None
        if cell is not None:
            raise ValueError(f"memory dump: cell {cell} has no 'end'")
        return cls(tuple(sorted(macros)), tuple(sorted(flops)))

    @property
    def mapping(self) -> str:
        """``memory_mapping`` of the macro mode: "macro" unless memories were left to
        flip-flops ("macro+flip-flops", or "flip-flops" when no macro was made)."""
        if not self.flop_memories:
            return "macro"
        return "macro+flip-flops" if self.macros else "flip-flops"

    @property
    def summary(self) -> str | None:
        """``"1 × 128x192 1R1W"`` (shapes by count, comma-separated); None without macros."""
        if not self.macros:
            return None
        return ", ".join(f"{n} × {shape.shape}"
                         for shape, n in sorted(Counter(self.macros).items()))

    @property
    def macro_bits(self) -> int:
        return sum(m.bits for m in self.macros)


_PARAM = r"\s*\.\w+\s*\([^()]*\)\s*"
_INSTANCE = re.compile(
    rf"\b{MACRO_CELL}\s*#\((?P<params>(?:{_PARAM},)*{_PARAM})\)(?P<rest>\s*(?:\\\S+|[A-Za-z_]"
    r"[\w$]*)\s*\()")
_NAMED = re.compile(r"\.(\w+)\s*\(([^()]*)\)")


def rename_macros(netlist: str) -> tuple[str, tuple[SramMacro, ...]]:
    """Replace every ``SPATTEN_SRAM #(...) name (`` of a ``write_verilog`` netlist by
    ``SRAM_<d>x<w>_1R1W name (``; returns the new text and the macro of each instance."""
    found = []

    def swap(match: re.Match) -> str:
        params = {k.upper(): v for k, v in _NAMED.findall(match.group("params"))}
        try:
            macro = SramMacro(_const(params["DEPTH"]), _const(params["WIDTH"]),
                              _const(params["ABITS"]), bool(_const(params.get("BWE", "0"))))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"netlist: {MACRO_CELL} instance without readable DEPTH/WIDTH/"
                             f"ABITS: {match.group(0)[:200]!r}") from exc
        found.append(macro)
        return macro.cell + " " + match.group("rest").lstrip()

    text = _INSTANCE.sub(swap, netlist)
    if re.search(rf"\b{MACRO_CELL}\b", text):
        raise ValueError(f"netlist: a {MACRO_CELL} instance has an unexpected form")
    return text, tuple(found)


def _checks(indent: str) -> str:
    lines = []
    for kind, value in (("setup_rising", SRAM_SETUP_NS), ("hold_rising", SRAM_HOLD_NS)):
        lines += [f'{indent}timing () {{',
                  f'{indent}  related_pin : "CLK";',
                  f'{indent}  timing_type : {kind};',
                  f'{indent}  rise_constraint (scalar) {{ values ("{value:g}"); }}',
                  f'{indent}  fall_constraint (scalar) {{ values ("{value:g}"); }}',
                  f'{indent}}}']
    return "\n".join(lines)


def _pin(name: str, width: int, output: bool = False) -> str:
    group = f"bus ({name}) {{\n      bus_type : sram_bus_{width};" if width > 1 \
        else f"pin ({name}) {{"
    if output:
        body = "\n".join([
            "      direction : output;",
            "      timing () {",
            '        related_pin : "CLK";',
            "        timing_type : rising_edge;",
            f'        cell_rise (scalar) {{ values ("{SRAM_CLK_TO_Q_NS:g}"); }}',
            f'        cell_fall (scalar) {{ values ("{SRAM_CLK_TO_Q_NS:g}"); }}',
            f'        rise_transition (scalar) {{ values ("{SRAM_OUT_TRANSITION_NS:g}"); }}',
            f'        fall_transition (scalar) {{ values ("{SRAM_OUT_TRANSITION_NS:g}"); }}',
            "      }"])
    else:
        body = (f"      direction : input;\n      capacitance : {SRAM_PIN_CAP_PF:g};\n"
                + _checks("      "))
    return f"    {group}\n{body}\n    }}"


def liberty_text(macros: Iterable[SramMacro]) -> str:
    """A liberty library with one cell per distinct macro shape (see the module docstring)."""
    shapes = sorted(set(macros))
    widths = sorted({w for m in shapes for w in (m.width, m.abits) if w > 1})
    out = [
        "/* SRAM macros as registered black boxes for OpenSTA; written by synth/macro.py. */",
        "library (spatten_sram) {",
        "  delay_model : table_lookup;",
        '  time_unit : "1ns";',
        '  voltage_unit : "1V";',
        '  current_unit : "1uA";',
        '  pulling_resistance_unit : "1kohm";',
        '  leakage_power_unit : "1nW";',
        "  capacitive_load_unit (1,pf);",
        *(f"  {k}_pct_{e} : {v};" for k, v in (
            ("slew_upper_threshold", 80), ("slew_lower_threshold", 20),
            ("input_threshold", 50), ("output_threshold", 50)) for e in ("rise", "fall")),
    ]
    for w in widths:
        out.append(f"  type (sram_bus_{w}) {{ base_type : array; data_type : bit; "
                   f"bit_width : {w}; bit_from : {w - 1}; bit_to : 0; downto : true; }}")
    for m in shapes:
        out += [f"  cell ({m.cell}) {{",
                "    area : 0;",
                "    dont_use : true;",
                "    dont_touch : true;",
                "    pin (CLK) {",
                "      direction : input;",
                "      clock : true;",
                f"      capacitance : {SRAM_PIN_CAP_PF:g};",
                "    }",
                _pin("RE", 1),
                _pin("RADDR", m.abits),
                _pin("RDATA", m.width, output=True),
                _pin("WE", m.width if m.bwe else 1),
                _pin("WADDR", m.abits),
                _pin("WDATA", m.width),
                "  }"]
    out.append("}")
    return "\n".join(out) + "\n"
