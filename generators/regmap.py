"""The core's host interface: its AXI4-Lite register map and the checks a START applies.

One definition for the hardware (``hdl.core.regs``), the golden model, the stimulus
(``sim.core_stim``) and the testbenches. Pure Python (no NumPy, no Amaranth).

32-bit registers at byte offsets (``docs/core.md`` has the same table):

======  ==========  =========================================================================
offset  name        fields (:data:`REGISTERS`)
======  ==========  =========================================================================
0x00    ID          read only: :data:`ID_VALUE` (SpAtten core, register map version 1)
0x04    CTRL        write: START (1 starts the layer in the registers), MODE (0 summarization,
                    1 generation), CLEAR (start of a sequence: zero importance and masks),
                    AGE_NORM; reads back all but START
0x08    STATUS      read only: BUSY, DONE (until the next START), CODE (the status of the last
                    layer, :class:`generators.status.Status`)
0x0C    LAYER       layer index, heads in the model
0x10    TOKENS      positions n, newest position (generation)
0x14    KEEP        token_keep, head_keep
0x18    VKEEP       value_keep
0x1C    QUANT       scale, shift, msb_only
0x20    THRESH      threshold (raw probability)
0x24    POLICY      sinks, recent
0x40..  bases       64-bit base addresses (LO at the offset, HI 4 bytes above) in the order
                    of :data:`generators.dram.BASES`, from :data:`BASE_OFFSET`
0x80    RD_LO/HI    read only: DRAM bytes read (:data:`COUNTER_BITS` bits)
0x88    WR_LO/HI    read only: DRAM bytes written
0x90    CYC_LO/HI   read only: cycles of the last layer
======  ==========  =========================================================================

A START whose descriptor breaks a rule (:func:`check_descriptor`) starts nothing: STATUS gets
DONE and the code at once.
"""

from __future__ import annotations

from .config import SpAttenConfig
from .dram import BASES, base_align, pack_fields
from .status import STATUS_BITS, Status

__all__ = ["ID_VALUE", "ADDR_BITS", "OFFSETS", "REGISTERS", "DESCRIPTOR_REGS", "BASE_OFFSET",
           "COUNTERS", "COUNTER_BITS", "field", "descriptor_fields", "pack_register",
           "unpack_register", "register_writes", "check_descriptor", "COMMANDS"]

ID_VALUE = 0x5A770001
ADDR_BITS = 8                 # AXI4-Lite address bits
COUNTER_BITS = 48             # RD, WR and CYC

OFFSETS = {"ID": 0x00, "CTRL": 0x04, "STATUS": 0x08, "LAYER": 0x0C, "TOKENS": 0x10,
           "KEEP": 0x14, "VKEEP": 0x18, "QUANT": 0x1C, "THRESH": 0x20, "POLICY": 0x24,
           "RD": 0x80, "WR": 0x88, "CYC": 0x90}
# The fields of each register with fields: (field, lowest bit, width).
REGISTERS = {
    "CTRL": (("start", 0, 1), ("mode", 1, 1), ("clear", 2, 1), ("age_norm", 3, 1)),
    "STATUS": (("busy", 0, 1), ("done", 1, 1), ("code", 8, STATUS_BITS)),
    "LAYER": (("layer", 0, 8), ("heads", 16, 8)),
    "TOKENS": (("n", 0, 16), ("newest", 16, 16)),
    "KEEP": (("token_keep", 0, 16), ("head_keep", 16, 8)),
    "VKEEP": (("value_keep", 0, 16),),
    "QUANT": (("scale", 0, 24), ("shift", 24, 6), ("msb_only", 31, 1)),
    "THRESH": (("threshold", 0, 16),),
    "POLICY": (("sinks", 0, 16), ("recent", 16, 16)),
}
# The registers that hold a layer descriptor (with the bases); START is a command, not a
# descriptor field.
DESCRIPTOR_REGS = ("CTRL", "LAYER", "TOKENS", "KEEP", "VKEEP", "QUANT", "THRESH", "POLICY")
COMMANDS = ("start",)
BASE_OFFSET = 0x40
# The read-only counters (64-bit LO/HI pairs), the core's names for them.
COUNTERS = {"RD": "bytes_read", "WR": "bytes_written", "CYC": "cycles"}
assert BASE_OFFSET + 8 * len(BASES) <= min(OFFSETS[r] for r in COUNTERS)


def field(register: str, name: str) -> tuple[int, int]:
    """``(lowest bit, width)`` of field ``name`` of ``register``."""
    for f, lsb, width in REGISTERS[register]:
        if f == name:
            return lsb, width
    raise KeyError(f"register {register} has no field {name!r}")


def descriptor_fields() -> tuple[tuple[str, str, int, int], ...]:
    """Every descriptor field: ``(register, field, lowest bit, width)``."""
    return tuple((r, f, lsb, w) for r in DESCRIPTOR_REGS for f, lsb, w in REGISTERS[r]
                 if f not in COMMANDS)


def pack_register(name: str, values: dict) -> int:
    """The 32-bit value of register ``name`` holding ``values`` (fields it lacks are 0)."""
    table = REGISTERS[name]
    return pack_fields(table, {f: values.get(f, 0) for f, _, _ in table}, name)


def unpack_register(name: str, word: int) -> dict:
    """The fields of register ``name`` in the 32-bit ``word``."""
    return {f: (word >> lsb) & ((1 << w) - 1) for f, lsb, w in REGISTERS[name]}


def register_writes(d: dict) -> list[tuple[int, int]]:
    """``(offset, value)`` writes that load descriptor ``d`` (its fields and bases), CTRL
    with START last."""
    w = [(OFFSETS[name], pack_register(name, d)) for name in DESCRIPTOR_REGS if name != "CTRL"]
    for i, b in enumerate(BASES):
        w += [(BASE_OFFSET + 8 * i, d[b] & 0xFFFFFFFF), (BASE_OFFSET + 8 * i + 4, d[b] >> 32)]
    w.append((OFFSETS["CTRL"], pack_register("CTRL", {**d, "start": 1})))
    return w


def check_descriptor(cfg: SpAttenConfig, d: dict) -> Status:
    """The checks of a layer descriptor at START, in order: ``ALIGN`` (a base address not a
    multiple of :func:`generators.dram.base_align` or not below ``2**core.addr_bits``),
    ``GEOMETRY`` (``n`` of 0 or above ``topk.capacity``, heads of 0 or above ``core.heads``,
    ``layer >= core.layers``, ``newest >= n`` in generation), ``PARAMS`` (``scale`` wider than
    ``attn.scale_bits``, ``threshold`` above the largest probability, ``age_norm`` outside
    generation), ``VALUE_KEEP`` (``value_keep > token_keep``); else ``OK``. The keep counts
    against the candidates are checked later, by the selection (``KEEP_RANGE``, ``POLICY``).
    ``d`` holds the :func:`descriptor_fields` and the base addresses (:data:`BASES`)."""
    c, a, t = cfg.core, cfg.attn, cfg.topk
    if any(d[b] % base_align(cfg, b) or d[b] >> c.addr_bits for b in BASES):
        return Status.ALIGN
    if not 1 <= d["n"] <= t.capacity or not 1 <= d["heads"] <= c.heads \
            or d["layer"] >= c.layers or (d["mode"] and d["newest"] >= d["n"]):
        return Status.GEOMETRY
    if d["scale"] >> a.scale_bits or d["threshold"] > a.prob.max_raw \
            or (d["age_norm"] and not d["mode"]):
        return Status.PARAMS
    if d["value_keep"] > d["token_keep"]:
        return Status.VALUE_KEEP
    return Status.OK
