"""AXI4 manager port and the core's DMA: row reads and row writes as streams.

The core moves whole *rows* (``docs/core.md``, DRAM layout): a row is ``beats`` bus beats
at a bus-aligned address that never crosses a 4 KB boundary (rows sit at a power-of-two
stride of at most 4 KB), so one row is one INCR burst.

- :func:`axi4_signature`: the AXI4 manager interface (Verilog ports ``m_axi__araddr`` …, the
  names cocotbext-axi's ``AxiBus.from_prefix(dut, "m_axi_")`` finds).
- :class:`Dma`: ``rcmd`` (address, beats) → one AR burst; the R beats come back on
  ``rdata`` in order (``last`` on a row's final beat). ``wcmd`` (address, beats) → one AW
  burst; its W beats are taken from ``wdata`` (``last`` must mark the row's final beat,
  exactly ``beats`` beats). Every AXI channel is back-pressured end to end: ``rready`` is
  ``rdata.ready``, ``wvalid`` is ``wdata.valid``. One ID (0), so reads and writes each
  complete in order.
- Counters: bytes read and written (every beat counts ``bus_bytes``), outstanding bursts;
  ``error`` is sticky: bit 0 a read response other than OKAY, bit 1 a write response other
  than OKAY, bit 2 a command that breaks the row rule (misaligned address, 0 beats or a
  4 KB crossing). Such a command is dropped; after a dropped write command the ``wdata``
  stream is out of step. The core never issues one: its descriptor checks
  (``generators.dram.base_align``) keep every row inside a page. The core reports error
  responses itself (status ``BUS``), from the AXI ports.

Ref: AMBA AXI4 (ARM IHI 0022): INCR bursts of at most 256 beats never cross 4 KB; a manager
may not make ``valid`` wait for ``ready``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.numerics import ceil_log2

__all__ = ["axi4_signature", "row_cmd_layout", "beat_layout", "Dma", "MAX_ROW_BEATS",
           "MAX_OUTSTANDING"]

# One row is one burst of at most 256 beats (AXI4 INCR) and 4 KB.
MAX_ROW_BEATS = 256
# Bursts in flight per direction; more only hide more DRAM latency.
MAX_OUTSTANDING = 16
ID_BITS = 4
RESP_OKAY = 0
BURST_INCR = 1


def axi4_signature(cfg: SpAttenConfig) -> wiring.Signature:
    """The AXI4 manager port (flipped for a subordinate)."""
    a, d = cfg.core.addr_bits, 8 * cfg.core.bus_bytes
    return wiring.Signature({
        "awid": Out(ID_BITS), "awaddr": Out(a), "awlen": Out(8), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(d), "wstrb": Out(d // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(ID_BITS), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "arid": Out(ID_BITS), "araddr": Out(a), "arlen": Out(8), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(ID_BITS), "rdata": In(d), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    })


def row_cmd_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A row transfer: byte ``addr`` (bus-aligned) and ``beats`` (1..256)."""
    return data.StructLayout({"addr": unsigned(cfg.core.addr_bits),
                              "beats": unsigned(ceil_log2(MAX_ROW_BEATS + 1))})


def beat_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """One bus beat of a row; ``last`` marks the row's final beat."""
    return data.StructLayout({"data": unsigned(8 * cfg.core.bus_bytes), "last": unsigned(1)})


def _row_ok(cfg: SpAttenConfig, addr, beats):
    """The row rule: bus-aligned, 1..256 beats, inside one 4 KB page."""
    bus = cfg.core.bus_bytes
    align = ceil_log2(bus)
    end = addr[:12] + (beats << align)  # offset in the page plus the row's bytes
    ok = (beats != 0) & (beats <= MAX_ROW_BEATS) & (end <= 4096)
    if align:
        ok &= addr[:align] == 0
    return ok


class _Outstanding:
    """Counter of bursts in flight: up on ``issue``, down on ``done``."""

    def __init__(self, m, name, issue, done):
        self.count = Signal(range(MAX_OUTSTANDING + 1), name=f"{name}_outstanding")
        self.full = self.count == MAX_OUTSTANDING
        with m.If(issue & ~done):
            m.d.sync += self.count.eq(self.count + 1)
        with m.Elif(done & ~issue):
            m.d.sync += self.count.eq(self.count - 1)


class Dma(wiring.Component):
    """Row reads and writes over one AXI4 manager port (see the module docstring).

    Raises
    ------
    TypeError
        if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.

    Members
    -------
    rcmd : ``In(stream.Signature(row_cmd_layout(cfg)))``
    rdata : ``Out(stream.Signature(beat_layout(cfg)))``
    wcmd : ``In(stream.Signature(row_cmd_layout(cfg)))``
    wdata : ``In(stream.Signature(beat_layout(cfg)))``
    m_axi : ``Out(axi4_signature(cfg))``
    bytes_read, bytes_written : ``Out(48)`` running byte counts
    busy : ``Out(1)``: a burst is in flight
    error : ``Out(3)``: sticky error bits
    """

    def __init__(self, cfg: SpAttenConfig):
        if not isinstance(cfg, SpAttenConfig):
            raise TypeError(f"cfg must be a SpAttenConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "rcmd": In(stream.Signature(row_cmd_layout(cfg))),
            "rdata": Out(stream.Signature(beat_layout(cfg))),
            "wcmd": In(stream.Signature(row_cmd_layout(cfg))),
            "wdata": In(stream.Signature(beat_layout(cfg))),
            "m_axi": Out(axi4_signature(cfg)),
            "bytes_read": Out(48),
            "bytes_written": Out(48),
            "busy": Out(1),
            "error": Out(3),
        })

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        ax = self.m_axi
        bus = cfg.core.bus_bytes
        size = Const(ceil_log2(bus), 3)

        # ---- reads: rcmd -> AR, R -> rdata --------------------------------------------
        rok = _row_ok(cfg, self.rcmd.payload.addr, self.rcmd.payload.beats)
        r_last_taken = ax.rvalid & ax.rready & ax.rlast
        ar_taken = ax.arvalid & ax.arready
        rout = _Outstanding(m, "r", ar_taken, r_last_taken)
        m.d.comb += [
            ax.arid.eq(0), ax.araddr.eq(self.rcmd.payload.addr),
            ax.arlen.eq(self.rcmd.payload.beats - 1), ax.arsize.eq(size),
            ax.arburst.eq(BURST_INCR),
            ax.arvalid.eq(self.rcmd.valid & rok & ~rout.full),
            # A bad command is dropped at once; a good one waits for AR.
            self.rcmd.ready.eq(Mux(rok, ax.arready & ~rout.full, 1)),
            self.rdata.payload.data.eq(ax.rdata), self.rdata.payload.last.eq(ax.rlast),
            self.rdata.valid.eq(ax.rvalid), ax.rready.eq(self.rdata.ready),
        ]

        # ---- writes: wcmd -> AW, wdata -> W, B counted -----------------------------------
        wok = _row_ok(cfg, self.wcmd.payload.addr, self.wcmd.payload.beats)
        aw_taken = ax.awvalid & ax.awready
        b_taken = ax.bvalid & ax.bready
        wout = _Outstanding(m, "w", aw_taken, b_taken)
        # W beats may only go for bursts whose AW has been issued (simpler for the
        # subordinate and keeps wdata from running ahead of a dropped command).
        w_credit = Signal(range(MAX_OUTSTANDING + 1))
        w_row_end = ax.wvalid & ax.wready & ax.wlast
        with m.If(aw_taken & ~w_row_end):
            m.d.sync += w_credit.eq(w_credit + 1)
        with m.Elif(w_row_end & ~aw_taken):
            m.d.sync += w_credit.eq(w_credit - 1)
        m.d.comb += [
            ax.awid.eq(0), ax.awaddr.eq(self.wcmd.payload.addr),
            ax.awlen.eq(self.wcmd.payload.beats - 1), ax.awsize.eq(size),
            ax.awburst.eq(BURST_INCR),
            ax.awvalid.eq(self.wcmd.valid & wok & ~wout.full),
            self.wcmd.ready.eq(Mux(wok, ax.awready & ~wout.full, 1)),
            ax.wdata.eq(self.wdata.payload.data), ax.wlast.eq(self.wdata.payload.last),
            ax.wstrb.eq((1 << bus) - 1),
            ax.wvalid.eq(self.wdata.valid & (w_credit != 0)),
            self.wdata.ready.eq(ax.wready & (w_credit != 0)),
            ax.bready.eq(1),
        ]

        # ---- counters and status -----------------------------------------------------
        with m.If(ax.rvalid & ax.rready):
            m.d.sync += self.bytes_read.eq(self.bytes_read + bus)
        with m.If(ax.wvalid & ax.wready):
            m.d.sync += self.bytes_written.eq(self.bytes_written + bus)
        m.d.comb += self.busy.eq((rout.count != 0) | (wout.count != 0))
        with m.If(ax.rvalid & ax.rready & (ax.rresp != RESP_OKAY)):
            m.d.sync += self.error[0].eq(1)
        with m.If(b_taken & (ax.bresp != RESP_OKAY)):
            m.d.sync += self.error[1].eq(1)
        with m.If((self.rcmd.valid & ~rok) | (self.wcmd.valid & ~wok)):
            m.d.sync += self.error[2].eq(1)
        return m

