"""The host interface: an AXI4-Lite register file holding one layer descriptor, its checks,
and the status a SoC polls.

Register map (32-bit registers, byte offsets; ``docs/core.md`` has the same table):

======  ==========  =========================================================================
offset  name        fields
======  ==========  =========================================================================
0x00    ID          read only: ``0x5A770001`` (SpAtten core, register map version 1)
0x04    CTRL        write: bit 0 START (1 starts the layer in the registers), bit 1 MODE
                    (0 summarization, 1 generation), bit 2 CLEAR (start of a sequence: zero
                    importance and masks), bit 3 AGE_NORM; reads back bits 1..3
0x08    STATUS      read only: bit 0 BUSY, bit 1 DONE (until the next START), bits 8..10
                    the status code of the last layer (``generators.status.Status``)
0x0C    LAYER       bits 0..7 layer index, bits 16..23 heads in the model
0x10    TOKENS      bits 0..15 positions n, bits 16..31 newest position (generation)
0x14    KEEP        bits 0..15 token_keep, bits 16..23 head_keep
0x18    VKEEP       bits 0..15 value_keep
0x1C    QUANT       bits 0..23 scale, bits 24..29 shift, bit 31 msb_only
0x20    THRESH      bits 0..15 threshold (raw probability)
0x24    POLICY      bits 0..15 sinks, bits 16..31 recent
0x40    Q_LO/HI     base addresses, 64 bits each (LO at the offset, HI 4 bytes above), in
0x48    KMSB        this order (``sim.golden.core.BASES``): Q, K MSB, K LSB, V MSB, V LSB,
0x50    KLSB        OUT, KEEPLIST, COUNTERS
0x58    VMSB
0x60    VLSB
0x68    OUT
0x70    KEEPLIST
0x78    COUNTERS
0x80    RD_LO/HI    read only: DRAM bytes read (48 bits)
0x88    WR_LO/HI    read only: DRAM bytes written (48 bits)
0x90    CYC_LO/HI   read only: cycles of the last layer (48 bits)
======  ==========  =========================================================================

A START with a descriptor that breaks a rule does not start anything: STATUS gets DONE and
the code at once (``ALIGN``: a base address not a multiple of its alignment,
``sim.golden.core.base_align``: a plane's row stride, the bus width for the keep list and
the counter record; or above ``core.addr_bits``; ``GEOMETRY``: ``n`` of 0 or above
``topk.capacity``, heads of 0 or above ``core.heads``, a layer at or above ``core.layers``,
newest not below ``n`` in generation; ``PARAMS``: scale or threshold out of their formats,
``age_norm`` outside generation; ``VALUE_KEEP``: ``value_keep > token_keep``). A good one
goes out on ``desc`` and the core's ``done`` beat later sets DONE and its code. The keep
counts against the candidates are checked by the selection units (``KEEP_RANGE``,
``POLICY``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.status import Status
from sim.golden.core import BASES, base_align

from .check import core_config

__all__ = ["HostRegs", "axil_signature", "desc_layout", "pack_register", "REG_ID", "ID_VALUE",
           "BASES", "BASE_OFFSET", "FIELDS", "OFFSETS"]

ID_VALUE = 0x5A770001
REG_ID = 0x00
OFFSETS = {"ID": 0x00, "CTRL": 0x04, "STATUS": 0x08, "LAYER": 0x0C, "TOKENS": 0x10,
           "KEEP": 0x14, "VKEEP": 0x18, "QUANT": 0x1C, "THRESH": 0x20, "POLICY": 0x24,
           "RD": 0x80, "WR": 0x88, "CYC": 0x90}
# The descriptor fields of each register: (field, lowest bit, width). The hardware and the
# testbench (pack_register) both read this table.
FIELDS = {
    "CTRL": (("mode", 1, 1), ("clear", 2, 1), ("age_norm", 3, 1)),
    "LAYER": (("layer", 0, 8), ("heads", 16, 8)),
    "TOKENS": (("n", 0, 16), ("newest", 16, 16)),
    "KEEP": (("token_keep", 0, 16), ("head_keep", 16, 8)),
    "VKEEP": (("value_keep", 0, 16),),
    "QUANT": (("scale", 0, 24), ("shift", 24, 6), ("msb_only", 31, 1)),
    "THRESH": (("threshold", 0, 16),),
    "POLICY": (("sinks", 0, 16), ("recent", 16, 16)),
}
BASE_OFFSET = 0x40
assert BASE_OFFSET + 8 * len(BASES) <= min(OFFSETS[r] for r in ("RD", "WR", "CYC"))
ADDR_BITS = 8



def pack_register(name: str, values: dict) -> int:
    """The 32-bit value of register ``name`` holding the descriptor fields ``values``."""
    word = 0
    for field, lsb, width in FIELDS[name]:
        v = values[field]
        if not 0 <= v < 1 << width:
            raise ValueError(f"{field} must fit {width} bits, not {v}")
        word |= v << lsb
    return word


def axil_signature() -> wiring.Signature:
    """AXI4-Lite manager port, 32-bit data, 8-bit addresses (``In(...)`` of it is the
    subordinate side, as :class:`HostRegs` has it)."""
    return wiring.Signature({
        "awaddr": Out(ADDR_BITS), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(ADDR_BITS), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def desc_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A checked layer descriptor, as the core's controller takes it: the fields of
    :data:`FIELDS` at their register widths (scale and threshold at their formats' widths,
    checked at START) and the base addresses."""
    narrow = {"scale": cfg.attn.scale_bits, "threshold": cfg.attn.prob.width}
    return data.StructLayout({
        **{f: unsigned(narrow.get(f, w)) for fs in FIELDS.values() for f, _, w in fs},
        **{b: unsigned(cfg.core.addr_bits) for b in BASES},
    })


class HostRegs(wiring.Component):
    """AXI4-Lite registers of one layer descriptor (see the module docstring).

    Members
    -------
    s_axil : ``In(axil_signature())``
    desc : ``Out(stream.Signature(desc_layout(cfg)))``: a checked descriptor per good START
    done : ``In(stream.Signature(unsigned(3)))``: the core's status code at the end of a layer
    bytes_read, bytes_written, cycles : ``In(48)``: counters shown in RD, WR, CYC
    """

    def __init__(self, cfg: SpAttenConfig):
        self._cfg = core_config(cfg)
        super().__init__({
            "s_axil": In(axil_signature()),
            "desc": Out(stream.Signature(desc_layout(cfg))),
            "done": In(stream.Signature(unsigned(3))),
            "bytes_read": In(48), "bytes_written": In(48), "cycles": In(48),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        c, a, t = cfg.core, cfg.attn, cfg.topk
        m = Module()
        ax = self.s_axil
        regs = {name: Signal(32, name=name.lower()) for name in
                ("CTRL", "LAYER", "TOKENS", "KEEP", "VKEEP", "QUANT", "THRESH", "POLICY")}
        bases = {b: Signal(64, name=f"base_{b}") for b in BASES}
        busy, done_flag = Signal(), Signal()
        code = Signal(3)
        start = Signal()

        # ---- writes: AW and W together, then B ---------------------------------------------
        take_w = ax.awvalid & ax.wvalid & ~ax.bvalid
        m.d.comb += [ax.awready.eq(take_w), ax.wready.eq(take_w)]
        with m.If(take_w):
            m.d.sync += [ax.bvalid.eq(1), ax.bresp.eq(0)]
            addr = ax.awaddr
            for name, reg in regs.items():
                with m.If(addr[2:] == OFFSETS[name] >> 2):
                    for byte in range(4):
                        with m.If(ax.wstrb[byte]):
                            m.d.sync += reg[8 * byte:8 * byte + 8].eq(
                                ax.wdata[8 * byte:8 * byte + 8])
            for k, b in enumerate(BASES):
                for half in range(2):
                    with m.If(addr[2:] == (BASE_OFFSET + 8 * k + 4 * half) >> 2):
                        for byte in range(4):
                            with m.If(ax.wstrb[byte]):
                                lo = 32 * half + 8 * byte
                                m.d.sync += bases[b][lo:lo + 8].eq(
                                    ax.wdata[8 * byte:8 * byte + 8])
            # START acts the cycle after the write, when CTRL's other bits are in place.
            with m.If((addr[2:] == OFFSETS["CTRL"] >> 2) & ax.wstrb[0] & ax.wdata[0]):
                m.d.sync += start.eq(~busy)
        with m.If(start):
            m.d.sync += start.eq(0)
        with m.If(ax.bvalid & ax.bready):
            m.d.sync += ax.bvalid.eq(0)

        # ---- reads ---------------------------------------------------------------------------
        rdata = Signal(32)
        raddr = ax.araddr[2:]
        status = Cat(busy, done_flag, Const(0, 6), code)
        table = {OFFSETS["ID"]: Const(ID_VALUE, 32), OFFSETS["CTRL"]: regs["CTRL"][1:4] << 1,
                 OFFSETS["STATUS"]: status,
                 **{OFFSETS[n]: regs[n] for n in ("LAYER", "TOKENS", "KEEP", "VKEEP", "QUANT",
                                                  "THRESH", "POLICY")},
                 OFFSETS["RD"]: self.bytes_read[:32], OFFSETS["RD"] + 4: self.bytes_read[32:],
                 OFFSETS["WR"]: self.bytes_written[:32],
                 OFFSETS["WR"] + 4: self.bytes_written[32:],
                 OFFSETS["CYC"]: self.cycles[:32], OFFSETS["CYC"] + 4: self.cycles[32:]}
        for k, b in enumerate(BASES):
            table[BASE_OFFSET + 8 * k] = bases[b][:32]
            table[BASE_OFFSET + 8 * k + 4] = bases[b][32:]
        m.d.comb += rdata.eq(0)
        with m.Switch(raddr):
            for off, val in table.items():
                with m.Case(off >> 2):
                    m.d.comb += rdata.eq(val)
        m.d.comb += ax.arready.eq(~ax.rvalid)
        with m.If(ax.arvalid & ~ax.rvalid):
            m.d.sync += [ax.rvalid.eq(1), ax.rdata.eq(rdata), ax.rresp.eq(0)]
        with m.If(ax.rvalid & ax.rready):
            m.d.sync += ax.rvalid.eq(0)

        # ---- the descriptor and its checks -------------------------------------------------
        d = Signal(desc_layout(cfg))
        fv = {f: regs[name][lsb:lsb + w] for name, fs in FIELDS.items() for f, lsb, w in fs}
        m.d.comb += [*[getattr(d, f).eq(v) for f, v in fv.items()],
                     *[getattr(d, b).eq(bases[b]) for b in BASES]]
        align = Const(0, 1)
        for b in BASES:
            v = bases[b]
            low = (base_align(cfg, b) - 1).bit_length()
            bad = (v[:low] != 0) if low else Const(0)
            if c.addr_bits < 64:
                bad = bad | (v[c.addr_bits:] != 0)
            align = align | bad
        geometry = ((d.n == 0) | (d.n > t.capacity) | (d.heads == 0) | (d.heads > c.heads)
                    | (d.layer >= c.layers) | (d.mode & (d.newest >= d.n)))
        params = ((fv["scale"] >> a.scale_bits != 0) | (fv["threshold"] > a.prob.max_raw)
                  | (d.age_norm & ~d.mode))
        vkeep = d.value_keep > d.token_keep
        check = Mux(align, Status.ALIGN, Mux(geometry, Status.GEOMETRY,
                                             Mux(params, Status.PARAMS,
                                                 Mux(vkeep, Status.VALUE_KEEP, Status.OK))))
        with m.If(start):
            m.d.sync += [done_flag.eq(0), code.eq(check)]
            with m.If(check == Status.OK):
                m.d.sync += [busy.eq(1), self.desc.valid.eq(1), self.desc.payload.eq(d)]
            with m.Else():
                m.d.sync += done_flag.eq(1)
        with m.If(self.desc.valid & self.desc.ready):
            m.d.sync += self.desc.valid.eq(0)
        m.d.comb += self.done.ready.eq(busy & ~self.desc.valid)
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += [busy.eq(0), done_flag.eq(1), code.eq(self.done.payload)]
        return m
