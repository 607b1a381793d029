"""The layer controller: one START runs one layer, from its descriptor to its status code.

Spec: ``docs/core.md`` (The controller): clear, select (check-only head selection, token
selection, then the head selection that stores its mask), the keep-list header, one job per
kept head, the merge of the slot sums, the counter record, done. Golden model
:func:`sim.golden.core.layer_step`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.regmap import COUNTER_BITS
from generators.status import Status

from .check import CoreComponent
from .heads import head_cmd_layout, head_keep_layout
from .layouts import (counter_record_layout, head_bits, job_layout, keeplist_header_layout,
                      queries_per_job)
from .regs import desc_layout
from .select import imp_word_layout, select_cmd_layout, status_layout

__all__ = ["LayerController"]


class LayerController(CoreComponent):
    """A layer per ``desc`` beat, ended by a ``done`` beat with its status code.

    Behaviour (the states of its FSM):

    1. IDLE: take ``desc``; the descriptor is held on ``params`` for the whole layer;
       ``busy`` rises and ``cycles`` counts from 0.
    2. CLEAR (``desc.clear``): one zero word per cycle on ``imp`` (every importance word),
       ``head_clear`` high, every layer's masks count as empty.
    3. HDRY, TSEL: a check-only head selection on ``head_cmd``, then the token selection on
       ``token_cmd`` (check-only too when the heads failed), each waited for on its status
       stream. CHECK: once ``keeplist_busy`` is low, a failed layer goes to DONE with the
       token code, else the head code; HSTORE: the head selection that stores its mask
       (its ``head_keep`` beat gives the kept heads).
    4. HEADER: the keep-list header on ``header`` (taken once written); JOBS, JOB: one
       ``job`` beat per kept head in head order, each waited for on ``job_done``.
    5. DRAIN: every output row written (``row_written`` counted up to kept heads × queries),
       the DMA idle and ``vserve_idle``; then the slot count on ``drain`` and the merge
       command on ``token_cmd``.
    6. COUNT: the counters are frozen (``bytes_read``, ``bytes_written``, ``cycles`` show
       the frozen values from then on); RECORD: the counter record on ``record`` (taken once
       written); COUNT_W: the DMA idle; DONE: ``done`` with the code (``BUS`` if the layer
       ran and ``bus_error`` was seen).

    Every status and ``head_keep`` beat is taken at once. ``bytes_read`` and
    ``bytes_written`` count the DMA's bytes since the layer's START.

    Members
    -------
    desc : ``In(stream.Signature(regs.desc_layout(cfg)))``: from the host registers
    done : ``Out(stream.Signature(Status))``: to the host registers
    bytes_read, bytes_written, cycles : ``Out(COUNTER_BITS)``: to the host registers
    dram_read, dram_written : ``In(COUNTER_BITS)``: the DMA's running byte counts
    dram_busy : ``In(1)``: a DMA burst is in flight
    bus_error : ``In(1)``: an AXI4 response other than OKAY in this cycle
    params : ``Out(regs.desc_layout(cfg))``: the running layer's descriptor
    busy : ``Out(1)``: a layer is running
    head_cmd : ``Out(stream.Signature(heads.head_cmd_layout(cfg)))``
    head_keep : ``In(stream.Signature(heads.head_keep_layout(cfg), always_ready=True))``
    head_status : ``In(stream.Signature(select.status_layout(cfg), always_ready=True))``
    head_clear : ``Out(1)``
    token_cmd : ``Out(stream.Signature(select.select_cmd_layout(cfg)))``
    token_status : ``In(stream.Signature(select.status_layout(cfg), always_ready=True))``
    imp : ``Out(stream.Signature(select.imp_word_layout(cfg)))``: importance words (CLEAR)
    drain : ``Out(stream.Signature(unsigned(topk.count_bits)))``: the slot accumulator's
        drain
    job, job_done : ``Out(stream.Signature(layouts.job_layout(cfg)))``,
        ``In(stream.Signature(layouts.job_layout(cfg)))``: a job to run, a job done
    header : ``Out(stream.Signature(layouts.keeplist_header_layout(cfg)))``
    record : ``Out(stream.Signature(layouts.counter_record_layout()))``
    keeplist_busy, vserve_idle, row_written : ``In(1)``: from the writer, the V server and
        the output path
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        status = stream.Signature(status_layout(cfg), always_ready=True)
        return {
            "desc": In(stream.Signature(desc_layout(cfg))),
            "done": Out(stream.Signature(Status)),
            "bytes_read": Out(COUNTER_BITS), "bytes_written": Out(COUNTER_BITS),
            "cycles": Out(COUNTER_BITS),
            "dram_read": In(COUNTER_BITS), "dram_written": In(COUNTER_BITS),
            "dram_busy": In(1), "bus_error": In(1),
            "params": Out(desc_layout(cfg)),
            "busy": Out(1),
            "head_cmd": Out(stream.Signature(head_cmd_layout(cfg))),
            "head_keep": In(stream.Signature(head_keep_layout(cfg), always_ready=True)),
            "head_status": In(status),
            "head_clear": Out(1),
            "token_cmd": Out(stream.Signature(select_cmd_layout(cfg))),
            "token_status": In(status),
            "imp": Out(stream.Signature(imp_word_layout(cfg))),
            "drain": Out(stream.Signature(unsigned(cfg.topk.count_bits))),
            "job": Out(stream.Signature(job_layout(cfg))),
            "job_done": In(stream.Signature(job_layout(cfg))),
            "header": Out(stream.Signature(keeplist_header_layout(cfg))),
            "record": Out(stream.Signature(counter_record_layout())),
            "keeplist_busy": In(1), "vserve_idle": In(1), "row_written": In(1),
        }

    def elaborate(self, platform):
        m = Module()
        s = _LayerState(self._cfg)
        self._counters(m, s)
        self._commands(m, s)
        d = self.params
        m.d.comb += [self.header.payload.tokens.eq(d.token_keep),
                     self.header.payload.heads.eq(s.hcount),
                     self.header.payload.mask.eq(s.hmask)]
        with m.If(self.row_written):
            m.d.sync += s.outs.eq(s.outs + 1)
        with m.FSM(name="layer"):
            self._select_states(m, s)
            self._run_states(m, s)
        with m.If(self.busy):
            m.d.sync += s.cyc.eq(s.cyc + 1)
        return m

    def _counters(self, m, s):
        """The byte counts since START, the cycles, their frozen copies and the bus error."""
        counting = s.counting = [self.dram_read - s.rd0, self.dram_written - s.wr0, s.cyc]
        with m.If(self.bus_error):
            m.d.sync += s.bus_err.eq(1)
        m.d.comb += [self.bytes_read.eq(Mux(s.frozen, s.f_rd, counting[0])),
                     self.bytes_written.eq(Mux(s.frozen, s.f_wr, counting[1])),
                     self.cycles.eq(Mux(s.frozen, s.f_cyc, counting[2]))]
        rec, info = self.record.payload, self.record.payload.info
        m.d.comb += [rec.bytes_read.eq(s.f_rd), rec.bytes_written.eq(s.f_wr),
                     rec.cycles.eq(s.f_cyc),
                     info.layer.eq(self.params.layer), info.mode.eq(self.params.mode),
                     info.tokens.eq(self.params.token_keep), info.heads.eq(s.hcount),
                     info.written.eq(1)]

    def _commands(self, m, s):
        """The selection commands' fields. Summarization selects from the previous layer;
        generation from this layer's own mask of the last step, within the previous
        layer's of this step. Keep counts above what the units can hold are clamped to one
        more (still too many)."""
        cfg = self._cfg
        c, cap = cfg.core, cfg.topk.capacity
        d = self.params
        lb = max(1, (c.layers - 1).bit_length())
        prev = (d.layer - 1)[:lb]
        prev_ok = (d.layer != 0) & s.valid_l.bit_select(prev, 1)
        own_ok = s.valid_l.bit_select(d.layer, 1)
        hcmd, tcmd = self.head_cmd.payload, self.token_cmd.payload
        hkeep = Mux(d.head_keep > c.heads, c.heads + 1, d.head_keep)
        tkeep = Mux(d.token_keep > cap, cap + 1, d.token_keep)
        m.d.comb += [hcmd.n.eq(d.heads), hcmd.keep.eq(hkeep), hcmd.dst.eq(d.layer),
                     hcmd.src.eq(Mux(d.mode, d.layer, prev)),
                     hcmd.all.eq(Mux(d.mode, ~own_ok, ~prev_ok)),
                     hcmd.has_upper.eq(d.mode & prev_ok), hcmd.upper.eq(prev)]
        m.d.comb += [tcmd.n.eq(d.n), tcmd.keep.eq(tkeep),
                     tcmd.newest.eq(Mux(d.mode, d.newest, d.n - 1)),
                     tcmd.sinks.eq(Mux(d.mode, d.sinks, 0)),
                     tcmd.recent.eq(Mux(d.mode, d.recent, 0)),
                     tcmd.age_norm.eq(d.age_norm), tcmd.dst.eq(d.layer),
                     tcmd.all.eq(Mux(d.mode, ~own_ok, ~prev_ok)),
                     tcmd.src.eq(Mux(d.mode, d.layer, prev)),
                     tcmd.add_newest.eq(d.mode),
                     tcmd.has_upper.eq(d.mode & prev_ok), tcmd.upper.eq(prev),
                     tcmd.nowrite.eq(s.hcode != Status.OK)]

    def _command(self, m, name, cmd, status, fields, code, then):
        """States ``name`` (one ``cmd`` beat with ``fields`` set) and ``name_W`` (wait for
        its ``status`` beat, keep its code in ``code``, go to ``then``)."""
        with m.State(name):
            m.d.comb += [cmd.valid.eq(1), *fields]
            with m.If(cmd.ready):
                m.next = f"{name}_W"
        with m.State(f"{name}_W"):
            with m.If(status.valid):
                m.d.sync += code.eq(status.payload.code)
                m.next = then

    def _select_states(self, m, s):
        """IDLE, CLEAR, HDRY, TSEL, CHECK, HSTORE."""
        cfg = self._cfg
        words = cfg.topk.rows
        d, hcmd, tcmd = self.params, self.head_cmd.payload, self.token_cmd.payload
        with m.State("IDLE"):
            m.d.comb += self.desc.ready.eq(1)
            with m.If(self.desc.valid):
                m.d.sync += [d.eq(self.desc.payload), s.cyc.eq(0), s.outs.eq(0),
                             s.frozen.eq(0), s.bus_err.eq(0),
                             s.rd0.eq(self.dram_read), s.wr0.eq(self.dram_written),
                             s.cw.eq(0), self.busy.eq(1)]
                with m.If(self.desc.payload.clear):
                    m.next = "CLEAR"
                with m.Else():
                    m.next = "HDRY"
        with m.State("CLEAR"):
            m.d.comb += [self.imp.valid.eq(1), self.imp.payload.addr.eq(s.cw),
                         self.imp.payload.data.eq(0), self.head_clear.eq(1)]
            m.d.sync += s.valid_l.eq(0)
            with m.If(self.imp.ready):
                m.d.sync += s.cw.eq(s.cw + 1)
                with m.If(s.cw == words - 1):
                    m.next = "HDRY"
        self._command(m, "HDRY", self.head_cmd, self.head_status, [hcmd.store.eq(0)],
                      s.hcode, "TSEL")
        self._command(m, "TSEL", self.token_cmd, self.token_status, [tcmd.merge.eq(0)],
                      s.tcode, "CHECK")
        with m.State("CHECK"):
            with m.If(~self.keeplist_busy):
                with m.If(s.tcode != Status.OK):
                    m.d.sync += s.code.eq(s.tcode)
                    m.next = "DONE"
                with m.Elif(s.hcode != Status.OK):
                    m.d.sync += s.code.eq(s.hcode)
                    m.next = "DONE"
                with m.Else():
                    m.next = "HSTORE"
        with m.State("HSTORE"):
            m.d.comb += [self.head_cmd.valid.eq(1), hcmd.store.eq(1)]
            with m.If(self.head_cmd.ready):
                m.next = "HSTORE_W"
        with m.State("HSTORE_W"):
            with m.If(self.head_keep.valid):
                m.d.sync += [s.hmask.eq(self.head_keep.payload.mask),
                             s.hrem.eq(self.head_keep.payload.mask),
                             s.hcount.eq(self.head_keep.payload.count)]
            with m.If(self.head_status.valid):
                m.d.sync += s.valid_l.bit_select(d.layer, 1).eq(1)
                m.next = "HEADER"

    def _run_states(self, m, s):
        """HEADER, JOBS, JOB, DRAIN, DRAIN_SLOTS, MERGE, COUNT, RECORD, COUNT_W, DONE."""
        cfg = self._cfg
        d, tcmd = self.params, self.token_cmd.payload
        nq = Signal(cfg.topk.count_bits)
        m.d.comb += nq.eq(queries_per_job(cfg, d))
        first_h = Const(0, head_bits(cfg))
        for h in reversed(range(cfg.core.heads)):
            first_h = Mux(s.hrem[h], h, first_h)
        with m.State("HEADER"):
            m.d.comb += self.header.valid.eq(1)
            with m.If(self.header.ready):
                m.next = "JOBS"
        with m.State("JOBS"):
            with m.If(s.hrem == 0):
                m.next = "DRAIN"
            with m.Else():
                m.d.comb += [self.job.valid.eq(1), self.job.payload.head.eq(first_h)]
                with m.If(self.job.ready):
                    m.d.sync += s.hrem.bit_select(first_h, 1).eq(0)
                    m.next = "JOB"
        with m.State("JOB"):
            m.d.comb += self.job_done.ready.eq(1)
            with m.If(self.job_done.valid):
                m.next = "JOBS"
        with m.State("DRAIN"):
            with m.If((s.outs == s.hcount * nq) & ~self.dram_busy & self.vserve_idle):
                m.next = "DRAIN_SLOTS"
        with m.State("DRAIN_SLOTS"):
            m.d.comb += [self.drain.valid.eq(1), self.drain.payload.eq(d.token_keep)]
            with m.If(self.drain.ready):
                m.next = "MERGE"
        # a merge always succeeds: its code is OK
        self._command(m, "MERGE", self.token_cmd, self.token_status,
                      [tcmd.merge.eq(1), tcmd.src.eq(d.layer)], s.code, "COUNT")
        with m.State("COUNT"):
            m.d.sync += [s.frozen.eq(1), s.f_rd.eq(s.counting[0]), s.f_wr.eq(s.counting[1]),
                         s.f_cyc.eq(s.counting[2])]
            m.next = "RECORD"
        with m.State("RECORD"):
            m.d.comb += self.record.valid.eq(1)
            with m.If(self.record.ready):
                m.next = "COUNT_W"
        with m.State("COUNT_W"):
            with m.If(~self.dram_busy):
                m.next = "DONE"
        with m.State("DONE"):
            m.d.comb += [self.done.valid.eq(1), self.done.payload.eq(
                Mux((s.code == Status.OK) & s.bus_err, Status.BUS, s.code))]
            with m.If(self.done.ready):
                m.d.sync += self.busy.eq(0)
                m.next = "IDLE"


class _LayerState:
    """The layer-wide registers."""

    def __init__(self, cfg):
        c, t = cfg.core, cfg.topk
        self.valid_l = Signal(c.layers, name="valid_l")   # layer's masks written since CLEAR
        self.hmask = Signal(c.heads, name="hmask")        # kept heads of this layer
        self.hrem = Signal(c.heads, name="hrem")          # heads whose job is still to start
        self.hcount = Signal(8, name="hcount")            # kept heads
        self.hcode = Signal(Status, name="hcode")
        self.tcode = Signal(Status, name="tcode")
        self.code = Signal(Status, name="code")
        self.cyc = Signal(COUNTER_BITS, name="cyc")
        self.rd0 = Signal(COUNTER_BITS, name="rd0")       # the DMA's counts at START
        self.wr0 = Signal(COUNTER_BITS, name="wr0")
        self.outs = Signal(32, name="outs")               # output rows written
        self.cw = Signal(range(t.rows + 1), name="cw")    # importance word cleared next
        self.frozen = Signal(name="frozen")               # the counters of the record
        self.f_rd = Signal(COUNTER_BITS, name="f_rd")
        self.f_wr = Signal(COUNTER_BITS, name="f_wr")
        self.f_cyc = Signal(COUNTER_BITS, name="f_cyc")
        self.bus_err = Signal(name="bus_err")             # a non-OKAY response this layer
        self.counting = None                              # RD, WR, CYC since START
