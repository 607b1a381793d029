"""The DRAM layout the core and its host share (``docs/core.md``, DRAM layout).

One definition for the hardware (``hdl.core``), the golden model (``sim.golden.core``), the
stimulus and the testbenches. NumPy only.

- *Planes* (:data:`PLANES`) are arrays of rows: the queries, the K and V MSB and LSB planes
  and the outputs. Row ``pos`` of head ``h`` of a plane at ``base`` is at
  ``base + (h * topk.capacity + pos) * stride`` (:func:`row_addr`); a row is ``D`` packed
  elements padded to whole bus beats (:func:`row_bytes`), at a power-of-two stride of at
  most 4 KB (:func:`row_stride`), so no row crosses a 4 KB page and one row is one burst.
- The *keep list* a layer writes at KEEPLIST: a header beat (:data:`KEEPLIST_HEADER`), then
  the kept positions as :data:`POSITION_BITS`-bit little-endian words, padded to whole beats.
- The *counter record* at COUNTERS: :data:`COUNTER_WORDS` 64-bit words
  (:data:`COUNTER_RECORD`, the last one packed from :data:`COUNTER_INFO`), padded to beats.
"""

from __future__ import annotations

import numpy as np

from .config import SpAttenConfig

__all__ = ["PLANES", "READ_PLANES", "BASES", "POSITION_BITS", "KEEPLIST_HEADER",
           "COUNTER_WORDS", "COUNTER_RECORD", "COUNTER_INFO", "PAGE_BYTES", "plane_bits",
           "row_bytes", "row_stride", "row_addr", "base_align", "pack_row", "unpack_row",
           "pack_fields", "keeplist_header", "keeplist_image", "keeplist_bytes",
           "counters_bytes", "counters_image"]

# The planes of rows, in the order of the descriptor's base registers; the core reads the
# first five (its read kinds) and writes the last.
PLANES = ("q", "kmsb", "klsb", "vmsb", "vlsb", "out")
READ_PLANES = PLANES[:5]
# Every base address of a layer descriptor, in register order (``generators.regmap``).
BASES = (*PLANES, "keeplist", "counters")
PAGE_BYTES = 4096
# A kept position in the keep list.
POSITION_BITS = 16
# The keep-list header beat: (field, lowest bit, width); ``None``: ``core.heads`` bits.
KEEPLIST_HEADER = (("tokens", 0, 16), ("heads", 16, 8), ("mask", 32, None))
COUNTER_WORDS = 4
# The 64-bit words of a counter record, in order.
COUNTER_RECORD = ("bytes_read", "bytes_written", "cycles", "info")
# The info word of a counter record: (field, lowest bit, width).
COUNTER_INFO = (("layer", 0, 8), ("mode", 8, 1), ("tokens", 16, 16), ("heads", 32, 8),
                ("written", 63, 1))
assert len(COUNTER_RECORD) == COUNTER_WORDS


def plane_bits(cfg: SpAttenConfig, name: str) -> int:
    """Bits per element of the rows of plane ``name`` (one of :data:`PLANES`)."""
    a = cfg.attn
    bits = {"q": a.q_bits, "kmsb": a.msb_bits, "klsb": a.lsb_bits, "vmsb": a.msb_bits,
            "vlsb": a.lsb_bits, "out": a.out.width}
    if name not in bits:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}, not {name!r}")
    return bits[name]


def _bits(cfg: SpAttenConfig, plane_or_bits) -> int:
    return plane_bits(cfg, plane_or_bits) if isinstance(plane_or_bits, str) else plane_or_bits


def row_bytes(cfg: SpAttenConfig, plane_or_bits) -> int:
    """Bytes of one DRAM row of ``D`` elements (a plane's name, or bits per element): packed,
    padded to whole bus beats."""
    bus = cfg.core.bus_bytes
    return -(-cfg.attn.head_dim * _bits(cfg, plane_or_bits) // (8 * bus)) * bus


def row_stride(cfg: SpAttenConfig, plane_or_bits) -> int:
    """Distance in bytes between consecutive rows of a plane: the power of two at or above
    :func:`row_bytes` (at most a 4 KB page, so a row never crosses one)."""
    rb = row_bytes(cfg, plane_or_bits)
    stride = 1 << (rb - 1).bit_length()
    if stride > PAGE_BYTES:
        raise ValueError(f"a row of D = {cfg.attn.head_dim} elements of "
                         f"{_bits(cfg, plane_or_bits)} bits needs {rb} bytes, more than one "
                         f"{PAGE_BYTES}-byte page")
    return stride


def row_addr(cfg: SpAttenConfig, base: int, plane_or_bits, head: int, pos: int) -> int:
    """Byte address of row ``pos`` of head ``head`` in a plane at ``base``: every head owns
    ``topk.capacity`` rows, so the layout does not change as a KV cache grows."""
    return base + (head * cfg.topk.capacity + pos) * row_stride(cfg, plane_or_bits)


def base_align(cfg: SpAttenConfig, name: str) -> int:
    """The alignment in bytes of descriptor base ``name`` (one of :data:`BASES`): a plane's
    row stride, so that no row crosses a 4 KB page (one row is one AXI4 burst); the bus width
    for the keep list and the counter record, which are written one beat per burst."""
    if name not in BASES:
        raise ValueError(f"base must be one of {', '.join(BASES)}, not {name!r}")
    return row_stride(cfg, name) if name in PLANES else cfg.core.bus_bytes


def pack_row(cfg: SpAttenConfig, values, plane_or_bits) -> bytes:
    """One DRAM row: ``D`` integers (two's complement), element 0 in the least significant
    bits of the first byte, padded with zeros to :func:`row_bytes`."""
    bits = _bits(cfg, plane_or_bits)
    word = 0
    for i, v in enumerate(np.asarray(values, dtype=np.int64).tolist()):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word.to_bytes(row_bytes(cfg, bits), "little")


def unpack_row(cfg: SpAttenConfig, blob: bytes, plane_or_bits, *, signed: bool) -> np.ndarray:
    """The inverse of :func:`pack_row`."""
    bits = _bits(cfg, plane_or_bits)
    word = int.from_bytes(blob, "little")
    mask, out = (1 << bits) - 1, []
    for i in range(cfg.attn.head_dim):
        v = (word >> (i * bits)) & mask
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return np.array(out, dtype=np.int64)


def pack_fields(table, values: dict, what: str) -> int:
    """``values`` packed by ``table`` (``(field, lowest bit, width)``); ``ValueError`` naming
    ``what`` when one does not fit."""
    word = 0
    for name, lsb, width in table:
        v = int(values[name])
        if not 0 <= v < 1 << width:
            raise ValueError(f"{what} field {name} must fit {width} bits, not {v}")
        word |= v << lsb
    return word


def keeplist_header(cfg: SpAttenConfig) -> tuple[tuple[str, int, int], ...]:
    """:data:`KEEPLIST_HEADER` with the mask's width (``core.heads``) filled in."""
    return tuple((f, lsb, cfg.core.heads if w is None else w) for f, lsb, w in KEEPLIST_HEADER)


def keeplist_image(cfg: SpAttenConfig, tokens, heads) -> bytes:
    """What a layer writes at its KEEPLIST base: the header beat (kept token count, kept
    head count, kept head mask), then the kept positions, padded to whole bus beats."""
    bus = cfg.core.bus_bytes
    tokens, heads = np.asarray(tokens).tolist(), np.asarray(heads).tolist()
    head = pack_fields(keeplist_header(cfg), {"tokens": len(tokens), "heads": len(heads),
                                              "mask": sum(1 << h for h in heads)},
                       "keep-list header")
    size = POSITION_BITS // 8
    body = b"".join(int(t).to_bytes(size, "little") for t in tokens)
    return head.to_bytes(bus, "little") + body + bytes(-len(body) % bus)


def keeplist_bytes(cfg: SpAttenConfig, kept: int) -> int:
    """Bytes a layer keeping ``kept`` tokens writes at KEEPLIST."""
    bus = cfg.core.bus_bytes
    return bus + -(-(POSITION_BITS // 8) * kept // bus) * bus


def counters_bytes(cfg: SpAttenConfig) -> int:
    """Bytes of a counter record at COUNTERS: :data:`COUNTER_WORDS` words of 8 bytes, padded
    to whole beats."""
    bus = cfg.core.bus_bytes
    return -(-8 * COUNTER_WORDS // bus) * bus


def counters_image(cfg: SpAttenConfig, *, bytes_read: int, bytes_written: int, cycles: int,
                   layer: int, generation: bool, tokens: int, heads: int) -> bytes:
    """The counter record a layer that ran writes at its COUNTERS base, after its outputs
    and its merge: the words of :data:`COUNTER_RECORD` (``bytes_written`` counts the output
    rows and the keep list, not the record itself; ``cycles`` from START to the record's
    write; the RD, WR and CYC registers show the same three values), the info word packed by
    :data:`COUNTER_INFO`, 64-bit little-endian, padded to whole bus beats."""
    info = pack_fields(COUNTER_INFO, {"layer": layer, "mode": int(generation),
                                      "tokens": tokens, "heads": heads, "written": 1},
                       "counter record info")
    words = {"bytes_read": bytes_read, "bytes_written": bytes_written, "cycles": cycles,
             "info": info}
    text = pack_fields(tuple((w, 64 * i, 64) for i, w in enumerate(COUNTER_RECORD)), words,
                       "counter record").to_bytes(8 * COUNTER_WORDS, "little")
    return text + bytes(counters_bytes(cfg) - len(text))
