"""The host interface: an AXI4-Lite register file holding one layer descriptor, its checks,
and the status a SoC polls.

The register map, the fields and the checks of a START are the spec's
(:mod:`generators.regmap`, ``docs/core.md``): this is their hardware. A START with a
descriptor that breaks a rule (:func:`generators.regmap.check_descriptor`) does not start
anything: STATUS gets DONE and the code at once. A good one goes out on ``desc`` and the
core's ``done`` beat later sets DONE and its code. The keep counts against the candidates are
checked by the selection units (``KEEP_RANGE``, ``POLICY``).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import BASES, base_align
from generators.regmap import (ADDR_BITS, BASE_OFFSET, COMMANDS, COUNTER_BITS, COUNTERS,
                               DESCRIPTOR_REGS, ID_VALUE, OFFSETS, REGISTERS,
                               descriptor_fields, field)
from generators.status import Status

from .check import CoreComponent

__all__ = ["HostRegs", "axil_signature", "desc_layout"]


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
    """A checked layer descriptor, as the core's controller takes it: every
    :func:`~generators.regmap.descriptor_fields` at its register width (scale and threshold
    at their formats' widths, checked at START) and the base addresses."""
    narrow = {"scale": cfg.attn.scale_bits, "threshold": cfg.attn.prob.width}
    return data.StructLayout({
        **{f: unsigned(narrow.get(f, w)) for _, f, _, w in descriptor_fields()},
        **{b: unsigned(cfg.core.addr_bits) for b in BASES},
    })


class HostRegs(CoreComponent):
    """AXI4-Lite registers of one layer descriptor (see the module docstring).

    Members
    -------
    s_axil : ``In(axil_signature())``
    desc : ``Out(stream.Signature(desc_layout(cfg)))``: a checked descriptor per good START
    done : ``In(stream.Signature(Status))``: the core's status code at the end of a layer
    bytes_read, bytes_written, cycles : ``In(COUNTER_BITS)``: counters shown in RD, WR, CYC
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "s_axil": In(axil_signature()),
            "desc": Out(stream.Signature(desc_layout(cfg))),
            "done": In(stream.Signature(Status)),
            **{name: In(COUNTER_BITS) for name in COUNTERS.values()},
        }

    def elaborate(self, platform):
        m = Module()
        regs = {name: Signal(32, name=name.lower()) for name in DESCRIPTOR_REGS}
        bases = {b: Signal(64, name=f"base_{b}") for b in BASES}
        busy, done_flag, start = Signal(), Signal(), Signal()
        code = Signal(Status)
        self._writes(m, regs, bases, start, busy)
        status = {"busy": busy, "done": done_flag, "code": code}
        self._reads(m, regs, bases, status)

        # ---- the descriptor and its checks -------------------------------------------------
        d = Signal(desc_layout(self._cfg))
        fv = {f: regs[r][lsb:lsb + w] for r, f, lsb, w in descriptor_fields()}
        m.d.comb += [*[getattr(d, f).eq(v) for f, v in fv.items()],
                     *[getattr(d, b).eq(bases[b]) for b in BASES]]
        check = self._check(d, fv, bases)
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

    def _writes(self, m, regs, bases, start, busy):
        """AW and W together, then B; byte strobes honoured; START acts the cycle after the
        write, when CTRL's other bits are in place."""
        ax = self.s_axil
        take_w = ax.awvalid & ax.wvalid & ~ax.bvalid
        m.d.comb += [ax.awready.eq(take_w), ax.wready.eq(take_w)]
        targets = [(OFFSETS[name], reg) for name, reg in regs.items()]
        for k, b in enumerate(BASES):
            targets += [(BASE_OFFSET + 8 * k + 4 * half, bases[b][32 * half:32 * half + 32])
                        for half in range(2)]
        with m.If(take_w):
            m.d.sync += [ax.bvalid.eq(1), ax.bresp.eq(0)]
            for off, reg in targets:
                with m.If(ax.awaddr[2:] == off >> 2):
                    for byte in range(4):
                        with m.If(ax.wstrb[byte]):
                            m.d.sync += reg[8 * byte:8 * byte + 8].eq(
                                ax.wdata[8 * byte:8 * byte + 8])
            bit, _ = field("CTRL", "start")
            with m.If((ax.awaddr[2:] == OFFSETS["CTRL"] >> 2) & ax.wstrb[bit // 8]
                      & ax.wdata[bit]):
                m.d.sync += start.eq(~busy)
        with m.If(start):
            m.d.sync += start.eq(0)
        with m.If(ax.bvalid & ax.bready):
            m.d.sync += ax.bvalid.eq(0)

    def _reads(self, m, regs, bases, status):
        """One read at a time; unmapped offsets read 0; CTRL reads back all but START."""
        ax = self.s_axil

        def packed(register, values):
            word = Const(0, 32)
            for f, lsb, w in REGISTERS[register]:
                if f in values:
                    word = word | (values[f][:w].as_unsigned() << lsb)[:32]
            return word

        ctrl = {f: regs["CTRL"][lsb:lsb + w] for f, lsb, w in REGISTERS["CTRL"]
                if f not in COMMANDS}
        table = {OFFSETS["ID"]: Const(ID_VALUE, 32), OFFSETS["CTRL"]: packed("CTRL", ctrl),
                 OFFSETS["STATUS"]: packed("STATUS", status),
                 **{OFFSETS[n]: regs[n] for n in DESCRIPTOR_REGS if n != "CTRL"}}
        for reg, name in COUNTERS.items():
            value = getattr(self, name)
            table[OFFSETS[reg]], table[OFFSETS[reg] + 4] = value[:32], value[32:]
        for k, b in enumerate(BASES):
            table[BASE_OFFSET + 8 * k] = bases[b][:32]
            table[BASE_OFFSET + 8 * k + 4] = bases[b][32:]
        rdata = Signal(32)
        m.d.comb += rdata.eq(0)
        with m.Switch(ax.araddr[2:]):
            for off, val in table.items():
                with m.Case(off >> 2):
                    m.d.comb += rdata.eq(val)
        m.d.comb += ax.arready.eq(~ax.rvalid)
        with m.If(ax.arvalid & ~ax.rvalid):
            m.d.sync += [ax.rvalid.eq(1), ax.rdata.eq(rdata), ax.rresp.eq(0)]
        with m.If(ax.rvalid & ax.rready):
            m.d.sync += ax.rvalid.eq(0)

    def _check(self, d, fv, bases):
        """:func:`generators.regmap.check_descriptor` in gates: the first rule broken."""
        cfg = self._cfg
        c, a, t = cfg.core, cfg.attn, cfg.topk
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
        return Mux(align, Status.ALIGN, Mux(geometry, Status.GEOMETRY,
                                            Mux(params, Status.PARAMS,
                                                Mux(vkeep, Status.VALUE_KEEP, Status.OK))))
