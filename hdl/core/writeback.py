"""The core's DMA writes: the keep list (its body as the positions come, then its header),
the output rows and the counter record, on one write port.

Spec: ``docs/core.md`` (the controller, steps 3 and 6), the layouts of
:mod:`generators.dram`: the keep list at KEEPLIST (:func:`~generators.dram.keeplist_image`:
a header beat, then :data:`~generators.dram.POSITION_BITS`-bit positions, each bus beat its
own one-beat burst) and the counter record at COUNTERS
(:func:`~generators.dram.counters_image`, one bus beat per burst).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import POSITION_BITS, counters_bytes, row_bytes
from generators.numerics import ceil_log2

from ..topk.layouts import out_layout as topk_out_layout
from .axi import beat_layout, row_cmd_layout
from .check import CoreComponent
from .layouts import counter_record_layout, keeplist_header_layout, write_row_layout
from .regs import desc_layout

__all__ = ["WriteBack"]


class WriteBack(CoreComponent):
    """``keep``, ``header``, ``record``, ``rows`` → DMA ``wcmd`` and ``wdata``.

    Behaviour: kept positions from ``keep`` (always taken while no keep-list beat is being
    written) are packed, :data:`~generators.dram.POSITION_BITS` bits each, into a bus beat;
    a full beat, or the list's last, is written at KEEPLIST + (beat + 1) × bus bytes (one
    command, then one data beat), and the next list starts again at beat 0. A ``header``
    beat is written at KEEPLIST, a ``record`` at COUNTERS (one burst per bus beat), a row of
    ``rows`` at its address in one burst. Each is taken (``ready``) with its last data beat.

    The write port goes, each cycle, to the first of: the keep-list beat, the header, the
    record, the row. A source keeps the port from its command to its last data beat only
    while no earlier source asks for it, so the controller sends them in phases (the keep
    list during selection, ``keeplist_busy`` low before the header, the header before the
    rows, the record after them): commands and data beats then stay in order. Zero latency
    from a source's ``valid`` to its command.

    Members
    -------
    keep : ``In(stream.Signature(topk.layouts.out_layout(cfg.select_topk)))``: kept
        positions (``index``, ``count``, ``last``)
    header : ``In(stream.Signature(layouts.keeplist_header_layout(cfg)))``
    record : ``In(stream.Signature(layouts.counter_record_layout()))``
    rows : ``In(stream.Signature(layouts.write_row_layout(cfg)))``: output rows
    wcmd : ``Out(stream.Signature(axi.row_cmd_layout(cfg)))``: to the DMA
    wdata : ``Out(stream.Signature(axi.beat_layout(cfg)))``: to the DMA
    desc : ``In(regs.desc_layout(cfg))``: the running layer (the ``keeplist`` and
        ``counters`` bases)
    keeplist_busy : ``Out(1)``: a keep-list beat is being written
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "keep": In(stream.Signature(topk_out_layout(cfg.select_topk))),
            "header": In(stream.Signature(keeplist_header_layout(cfg))),
            "record": In(stream.Signature(counter_record_layout())),
            "rows": In(stream.Signature(write_row_layout(cfg))),
            "wcmd": Out(stream.Signature(row_cmd_layout(cfg))),
            "wdata": Out(stream.Signature(beat_layout(cfg))),
            "desc": In(desc_layout(cfg)),
            "keeplist_busy": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        kl_state = Signal(range(3), name="kl_state")     # 0 collect, 1 command, 2 data
        kl_buf, kl_beat = self._collect(m, kl_state)
        m.d.comb += self.keeplist_busy.eq(kl_state != 0)
        with m.If(kl_state == 1):
            self._command(m, self.desc.keeplist + ((kl_beat + 1) << self._beat_shift), 1)
            with m.If(self.wcmd.ready):
                m.d.sync += kl_state.eq(2)
        with m.Elif(kl_state == 2):
            self._data(m, kl_buf, 1)
            with m.If(self.wdata.ready):
                m.d.sync += [kl_state.eq(0), kl_buf.eq(0)]
        with m.Elif(self.header.valid):
            self._header(m)
        with m.Elif(self.record.valid):
            self._record(m)
        with m.Elif(self.rows.valid):
            self._row(m)
        return m

    @property
    def _beat_shift(self) -> int:
        return ceil_log2(self._cfg.core.bus_bytes)

    def _command(self, m, addr, beats):
        m.d.comb += [self.wcmd.valid.eq(1), self.wcmd.payload.addr.eq(addr),
                     self.wcmd.payload.beats.eq(beats)]

    def _data(self, m, value, last):
        m.d.comb += [self.wdata.valid.eq(1), self.wdata.payload.data.eq(value),
                     self.wdata.payload.last.eq(last)]

    def _collect(self, m, kl_state):
        """Keep-list positions packed into a beat buffer, ``topk.lanes`` per taken beat;
        returns the buffer and the beat number."""
        cfg = self._cfg
        bus, lanes = 8 * cfg.core.bus_bytes, cfg.topk.lanes
        per_beat = bus // POSITION_BITS
        group = data.ArrayLayout(unsigned(POSITION_BITS), lanes)
        buf = Signal(data.ArrayLayout(group, per_beat // lanes), name="kl_buf")
        fill = Signal(range(per_beat + 1), name="kl_fill")
        beat = Signal(range(cfg.topk.rows + 2), name="kl_beat")
        end = Signal(name="kl_end")                      # the beat is the list's last
        kp = self.keep
        with m.If(kl_state == 0):
            m.d.comb += kp.ready.eq(1)
            with m.If(kp.valid):
                nxt = fill + kp.payload.count
                slot = buf[fill >> ceil_log2(lanes)]
                m.d.sync += [*[slot[j].eq(kp.payload.index[j]) for j in range(lanes)],
                             fill.eq(nxt)]
                with m.If((nxt == per_beat) | kp.payload.last):
                    m.d.sync += [kl_state.eq(1), end.eq(kp.payload.last)]
        with m.If((kl_state == 2) & self.wdata.ready):
            m.d.sync += [fill.eq(0), beat.eq(beat + 1)]
            with m.If(end):
                m.d.sync += beat.eq(0)
        return buf, beat

    def _header(self, m):
        """The header beat at KEEPLIST: a command, then the beat."""
        sent = Signal(name="hdr_sent")                 # its command has been taken
        with m.If(~sent):
            self._command(m, self.desc.keeplist, 1)
            with m.If(self.wcmd.ready):
                m.d.sync += sent.eq(1)
        with m.Else():
            self._data(m, self.header.payload, 1)
            with m.If(self.wdata.ready):
                m.d.comb += self.header.ready.eq(1)
                m.d.sync += sent.eq(0)

    def _record(self, m):
        """The counter record at COUNTERS: a command and a beat per bus beat."""
        cfg = self._cfg
        bus = 8 * cfg.core.bus_bytes
        beats = counters_bytes(cfg) // cfg.core.bus_bytes
        rec = Signal(beats * bus, name="rec_beats")    # the record, padded to whole beats
        cb = Signal(range(max(beats, 2)), name="rec_beat")
        sent = Signal(name="rec_sent")
        m.d.comb += rec.eq(self.record.payload)
        with m.If(~sent):
            self._command(m, self.desc.counters + (cb << self._beat_shift), 1)
            with m.If(self.wcmd.ready):
                m.d.sync += sent.eq(1)
        with m.Else():
            self._data(m, rec.word_select(cb, bus), 1)
            with m.If(self.wdata.ready):
                m.d.sync += [cb.eq(cb + 1), sent.eq(0)]
                with m.If(cb == beats - 1):
                    m.d.comb += self.record.ready.eq(1)
                    m.d.sync += cb.eq(0)

    def _row(self, m):
        """An output row: one command of the row's beats, then the beats."""
        cfg = self._cfg
        bus = 8 * cfg.core.bus_bytes
        beats = row_bytes(cfg, "out") // cfg.core.bus_bytes
        ob = Signal(range(beats + 1), name="row_beat")
        sent = Signal(name="row_sent")
        with m.If(~sent):
            self._command(m, self.rows.payload.addr, beats)
            with m.If(self.wcmd.ready):
                m.d.sync += sent.eq(1)
        with m.Else():
            self._data(m, self.rows.payload.data.word_select(ob, bus), ob == beats - 1)
            with m.If(self.wdata.ready):
                m.d.sync += ob.eq(ob + 1)
                with m.If(ob == beats - 1):
                    m.d.comb += self.rows.ready.eq(1)
                    m.d.sync += [ob.eq(0), sent.eq(0)]
