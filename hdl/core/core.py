"""The SpAtten core: the head pipeline, cascade token and head pruning decided in hardware,
and the DRAM traffic of only what survives, behind an AXI4-Lite host interface and one AXI4
manager port.

Spec: ``docs/core.md``; golden model :func:`sim.golden.core.summarize` and
:func:`sim.golden.core.decode_step`, DRAM layout :func:`sim.golden.core.row_addr` and
:func:`sim.golden.core.keeplist_image`.

Blocks (each verified on its own): :class:`~hdl.core.regs.HostRegs` (the descriptor of one
layer), :class:`~hdl.core.axi.Dma` (rows over AXI4), :class:`~hdl.core.select.TokenSelect`
(importance, kept-token masks, the token top-k engine), :class:`~hdl.core.heads.
HeadImportance` (head importance and head selection), :class:`~hdl.core.importance.
SlotAccumulator` (a layer's probability rows summed per kept slot) and
:class:`~hdl.attn.head.Head` (one query of one head per pass). The controller here runs a
layer per START:

1. *Clear* (CTRL.CLEAR): importance words written 0, head importance zeroed, every layer's
   masks marked empty.
2. *Select*: a check-only head selection, then the token selection (check-only too when the
   heads failed), then, when both passed, the head selection that stores its mask. A failed
   layer changes no state and reports its code (token errors first, as in the golden model).
   Summarization: candidates are the previous layer's kept tokens and heads (all at layer 0
   or when that layer has not run since CLEAR). Generation: the layer's own kept tokens of
   the previous step plus the newest position (every position if the layer has not run since
   CLEAR: a KV cache made elsewhere), within the previous layer's of this step.
   The kept positions are written to DRAM at KEEPLIST as they come (one bus beat per burst,
   after a header beat: :func:`sim.golden.core.keeplist_image`).
3. *Jobs*, one per kept head, in head order: the K MSB rows of the kept tokens are read into
   an on-chip buffer (and the LSB rows too for full-precision layers); every query (each kept
   token in summarization, the newest position in generation) is read once into a small
   prefetch FIFO and sent with all the keys; an MSB-only pass waits for its decision and, on
   ``refetch``, the K LSB rows are read (once per job) and the query is sent again at full
   precision. A V row's MSB plane is read the first time a kept list of the job names it, its
   LSB plane the first time a full-precision kept list names it (banked V buffers, one bank
   per prob·V row, serve a request beat in one cycle per bank conflict). Each output row is
   written to DRAM and its ``sum |out|`` goes to the head's importance.
4. *Merge*: the layer's slot sums are added to the importance of its kept tokens.
5. *Counters*: the layer's DRAM bytes read and written and its cycles are frozen and written
   to DRAM at COUNTERS (:func:`sim.golden.core.counters_image`, one bus beat per burst).
6. *Done*: the status code, and in RD, WR and CYC the frozen counters (a failed layer
   writes no record; its registers show what it counted before it stopped). A layer that
   saw an AXI4 response other than OKAY (SLVERR, DECERR) still runs to its end, every burst
   complete, and reports ``BUS``.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the head and core parts do not fit together, or a keep-list beat of ``topk.lanes``
    16-bit positions is wider than the bus, or the header (32 bits + ``core.heads``) is.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import ConfigError, SpAttenConfig
from generators.dram import (COUNTER_INFO, COUNTER_WORDS, READ_PLANES, counters_bytes,
                             plane_bits, row_bytes, row_stride)
from generators.numerics import ceil_log2
from generators.status import Status

from ..attn.head import Head
from .axi import MAX_OUTSTANDING, Dma, axi4_signature
from .check import core_config
from .heads import HeadImportance
from .importance import SlotAccumulator
from .regs import HostRegs, axil_signature
from .select import TokenSelect

__all__ = ["SpAttenCore", "KINDS", "QUERY_FIFO_DEPTH", "PASS_FIFO_DEPTH"]

# Read kinds: which buffer a returning row lands in.
KINDS = READ_PLANES
Q, KMSB, KLSB, VMSB, VLSB = range(len(KINDS))
# Queries read ahead of the pass that uses them.
QUERY_FIFO_DEPTH = 2
# Passes sent to the head whose V requests or outputs are still to come.
PASS_FIFO_DEPTH = 16


def _check(cfg: SpAttenConfig) -> SpAttenConfig:
    cfg = core_config(cfg)
    bus = 8 * cfg.core.bus_bytes
    if 16 * cfg.topk.lanes > bus:
        raise ConfigError(f"topk.lanes ({cfg.topk.lanes}) 16-bit keep-list positions must fit "
                          f"one bus beat ({bus} bits)")
    if 32 + cfg.core.heads > bus:
        raise ConfigError(f"the keep-list header (32 bits + core.heads = {cfg.core.heads}) "
                          f"must fit one bus beat ({bus} bits)")
    if cfg.topk.capacity > 1 << 16:
        raise ConfigError(f"topk.capacity must be at most 65536 (16-bit positions), not "
                          f"{cfg.topk.capacity}")
    return cfg


class _Req:
    """One requester of the DMA's read port (``valid`` held until ``grant``)."""

    def __init__(self, cfg, name):
        self.valid = Signal(name=f"{name}_valid")
        self.addr = Signal(cfg.core.addr_bits, name=f"{name}_addr")
        self.kind = Signal(3, name=f"{name}_kind")
        self.slot = Signal(cfg.topk.index_bits, name=f"{name}_slot")
        self.grant = Signal(name=f"{name}_grant")


class _SlotReader:
    """A copy of the keep list (slot → position), ``P`` positions per word, one read port:
    present ``slot`` with ``en``; ``pos`` is valid the next cycle and held while ``en`` is 0."""

    def __init__(self, m, name, cfg, w_addr, w_data, w_en):
        P, IB = cfg.topk.lanes, cfg.topk.index_bits
        mem = Memory(shape=P * IB, depth=cfg.topk.rows, init=[])
        m.submodules[name] = mem
        wp, self.port = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(w_data), wp.en.eq(w_en)]
        self.slot = Signal(IB, name=f"{name}_slot")
        self.en = Signal(name=f"{name}_en")
        lane = Signal(range(P), name=f"{name}_lane")
        lb = ceil_log2(P)
        m.d.comb += [self.port.addr.eq(self.slot >> lb), self.port.en.eq(self.en)]
        if lb:
            with m.If(self.en):
                m.d.sync += lane.eq(self.slot[:lb])
        self.pos = self.port.data.word_select(lane, IB)


def _command(m, name, unit, fields, code, then):
    """FSM states ``name`` (one ``cmd`` beat to ``unit`` with ``fields`` set) and
    ``name_W`` (wait for its ``status`` beat, keep its code in ``code``, go to ``then``)."""
    with m.State(name):
        m.d.comb += [unit.cmd.valid.eq(1), *fields]
        with m.If(unit.cmd.ready):
            m.next = f"{name}_W"
    with m.State(f"{name}_W"):
        with m.If(unit.status.valid):
            m.d.sync += code.eq(unit.status.payload.code)
            m.next = then


class SpAttenCore(wiring.Component):
    """The SpAtten accelerator core (see the module docstring).

    Members
    -------
    s_axil : ``In(regs.axil_signature())``: the host's registers (``docs/core.md``)
    m_axi : ``Out(axi.axi4_signature(cfg))``: DRAM
    busy : ``Out(1)``: a layer is running
    """

    def __init__(self, cfg: SpAttenConfig):
        self._cfg = _check(cfg)
        super().__init__({"s_axil": In(axil_signature()),
                          "m_axi": Out(axi4_signature(cfg)),
                          "busy": Out(1)})

    @property
    def cfg(self) -> SpAttenConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        c, a, t = cfg.core, cfg.attn, cfg.topk
        m = Module()
        m.submodules.regs = regs = HostRegs(cfg)
        m.submodules.dma = dma = Dma(cfg)
        m.submodules.select = sel = TokenSelect(cfg)
        m.submodules.heads = hi = HeadImportance(cfg)
        m.submodules.slots = acc = SlotAccumulator(cfg)
        m.submodules.head = head = Head(cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        wiring.connect(m, dma.m_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, head.p, acc.p)
        wiring.connect(m, acc.sums, sel.sums)

        D, IB, CAP = a.head_dim, t.index_bits, t.capacity
        P, KPC, R = t.lanes, a.keys_per_cycle, a.pv_rows
        BUS = 8 * c.bus_bytes
        bits = {k: plane_bits(cfg, name) for k, name in enumerate(KINDS)}
        beats = {k: row_bytes(cfg, b) // c.bus_bytes for k, b in bits.items()}
        out_beats = row_bytes(cfg, a.out.width) // c.bus_bytes
        hb = max(1, (c.heads - 1).bit_length())
        lb = max(1, (c.layers - 1).bit_length())

        # ---- the descriptor of the running layer -----------------------------------------
        d = Signal.like(regs.desc.payload)

        def row_address(kind_or_bits, b, h, pos):
            """``b + (h * capacity + pos) * stride`` (``sim.golden.core.row_addr``)."""
            sh = ceil_log2(row_stride(cfg, kind_or_bits))
            return (b + ((h * CAP + pos) << sh))[:c.addr_bits]

        # ---- reads: requesters → DMA, tags in order, rows assembled and dispatched --------
        v_req, k_req, q_req = _Req(cfg, "vrd"), _Req(cfg, "krd"), _Req(cfg, "qrd")
        reqs = [v_req, k_req, q_req]   # priority order: keep prob·V fed first
        m.submodules.tags = tags = SyncFIFO(width=3 + IB, depth=MAX_OUTSTANDING)
        rc = dma.rcmd
        any_req = Cat(r.valid for r in reqs).any()
        m.d.comb += rc.valid.eq(any_req & tags.w_rdy)
        sel_addr, sel_kind, sel_slot = Signal(c.addr_bits), Signal(3), Signal(IB)
        with m.If(v_req.valid):
            m.d.comb += [sel_addr.eq(v_req.addr), sel_kind.eq(v_req.kind),
                         sel_slot.eq(v_req.slot)]
        with m.Elif(k_req.valid):
            m.d.comb += [sel_addr.eq(k_req.addr), sel_kind.eq(k_req.kind),
                         sel_slot.eq(k_req.slot)]
        with m.Else():
            m.d.comb += [sel_addr.eq(q_req.addr), sel_kind.eq(q_req.kind),
                         sel_slot.eq(q_req.slot)]
        beats_of = Const(0, 9)
        for k, n in beats.items():
            beats_of = Mux(sel_kind == k, n, beats_of)
        take_rc = rc.valid & rc.ready
        m.d.comb += [rc.payload.addr.eq(sel_addr), rc.payload.beats.eq(beats_of),
                     tags.w_en.eq(take_rc), tags.w_data.eq(Cat(sel_kind, sel_slot)),
                     v_req.grant.eq(take_rc & v_req.valid),
                     k_req.grant.eq(take_rc & ~v_req.valid & k_req.valid),
                     q_req.grant.eq(take_rc & ~v_req.valid & ~k_req.valid)]

        maxb = max(beats.values())
        row = Signal(maxb * BUS)
        bi = Signal(range(maxb))
        rd = dma.rdata
        m.d.comb += rd.ready.eq(tags.r_rdy)
        full_row = Cat(*[Mux(bi == j, rd.payload.data, row[j * BUS:(j + 1) * BUS])
                         for j in range(maxb)])
        got = rd.valid & rd.ready
        landed = Signal()
        m.d.comb += landed.eq(got & rd.payload.last)
        with m.If(got):
            m.d.sync += row.eq(full_row)
            m.d.sync += bi.eq(Mux(rd.payload.last, 0, bi + 1))
        m.d.comb += tags.r_en.eq(landed)
        r_kind, r_slot = tags.r_data[:3], tags.r_data[3:]

        # K buffers: KPC rows per word (one head k beat), written a row at a time.
        kbuf = {}
        kw = ceil_log2(KPC)
        for kind in (KMSB, KLSB):
            rw = D * bits[kind]
            mem = Memory(shape=KPC * rw, depth=-(-CAP // KPC), init=[])
            m.submodules[f"k{KINDS[kind]}"] = mem
            wp = mem.write_port(granularity=rw)
            lane_en = Const(1, 1) if KPC == 1 else (1 << r_slot[:kw])
            m.d.comb += [wp.addr.eq(r_slot >> kw), wp.data.eq(Cat(*[full_row[:rw]] * KPC)),
                         wp.en.eq(Mux(landed & (r_kind == kind), lane_en, 0))]
            kbuf[kind] = mem.read_port()
        # V buffers: one bank per prob·V row (slot mod R), one row per word.
        vw = ceil_log2(R)
        vbank = {}
        for kind in (VMSB, VLSB):
            rw = D * bits[kind]
            ports = []
            for b in range(R):
                mem = Memory(shape=rw, depth=-(-CAP // R), init=[])
                m.submodules[f"v{KINDS[kind]}{b}"] = mem
                wp = mem.write_port()
                hit = landed & (r_kind == kind)
                if R > 1:
                    hit &= r_slot[:vw] == b
                m.d.comb += [wp.addr.eq(r_slot >> vw), wp.data.eq(full_row[:rw]),
                             wp.en.eq(hit)]
                ports.append(mem.read_port())
            vbank[kind] = ports
        # Queries: read ahead into a FIFO (row and position).
        qrow = D * a.q_bits
        m.submodules.qfifo = qf = SyncFIFOBuffered(width=qrow + IB,
                                                   depth=QUERY_FIFO_DEPTH + 1)
        m.d.comb += [qf.w_data.eq(Cat(full_row[:qrow], r_slot)),
                     qf.w_en.eq(landed & (r_kind == Q))]
        k_out = Signal(range(MAX_OUTSTANDING + 2))     # K rows in flight
        v_out = Signal(range(MAX_OUTSTANDING + 2))     # V rows in flight
        k_in = landed & ((r_kind == KMSB) | (r_kind == KLSB))
        v_in = landed & ((r_kind == VMSB) | (r_kind == VLSB))
        m.d.sync += [k_out.eq(k_out + k_req.grant - k_in), v_out.eq(v_out + v_req.grant - v_in)]

        # ---- the keep list: three copies (K loads, query reads, V reads) ------------------
        kp = sel.keep
        k_word = Signal(range(t.rows + 1))
        keep_take = kp.valid & kp.ready
        idx_bits = kp.payload.index.as_value()
        readers = [_SlotReader(m, f"keeplist_{n}", cfg, k_word, idx_bits, keep_take)
                   for n in ("k", "q", "v")]
        ka, qa, va = readers

        # ---- layer-wide state --------------------------------------------------------------
        valid_l = Signal(c.layers)          # layer's masks written since CLEAR
        hmask = Signal(c.heads)              # kept heads of this layer
        hrem = Signal(c.heads)               # heads whose job is still to start
        hcode, tcode, code = Signal(Status), Signal(Status), Signal(Status)
        cyc = Signal(48)
        rd0, wr0 = Signal(48), Signal(48)
        outs = Signal(32)                    # output rows written in this layer
        nq = Signal(t.count_bits)            # queries per job
        layer_prev = (d.layer - 1)[:lb]
        prev_ok = (d.layer != 0) & valid_l.bit_select(layer_prev, 1)
        own_ok = valid_l.bit_select(d.layer, 1)
        # the counters of the record, frozen when it is written (the registers show them)
        frozen = Signal()
        f_rd, f_wr, f_cyc = Signal(48), Signal(48), Signal(48)
        counting = [dma.bytes_read - rd0, dma.bytes_written - wr0, cyc]
        # an AXI4 response other than OKAY in this layer: the layer ends with BUS
        bus_err = Signal()
        ax = self.m_axi
        with m.If((ax.rvalid & ax.rready & (ax.rresp != 0))
                  | (ax.bvalid & ax.bready & (ax.bresp != 0))):
            m.d.sync += bus_err.eq(1)
        m.d.comb += [regs.bytes_read.eq(Mux(frozen, f_rd, counting[0])),
                     regs.bytes_written.eq(Mux(frozen, f_wr, counting[1])),
                     regs.cycles.eq(Mux(frozen, f_cyc, counting[2]))]

        # ---- the job: K loads, query reads, passes ----------------------------------------
        job_start, job_done = Signal(), Signal()
        jh = Signal(hb)                       # the job's head
        first = Signal()                      # the next pass pushed is the job's first
        kc = d.token_keep[:t.count_bits]      # keys per pass
        nkb = Signal(range(-(-CAP // KPC) + 1))
        m.d.comb += nkb.eq((kc + KPC - 1) >> kw)
        # K row sweeps (kind KMSB or KLSB over slots 0 .. kc-1)
        sw_run, sw_kind = Signal(), Signal(3)
        sw_s = Signal(t.count_bits)           # next slot to read from the keep list
        sw_hold, sw_slot = Signal(), Signal(IB)
        sw_adv = ~sw_hold | k_req.grant
        m.d.comb += [k_req.valid.eq(sw_hold), k_req.kind.eq(sw_kind), k_req.slot.eq(sw_slot),
                     k_req.addr.eq(Mux(sw_kind == KMSB,
                                       row_address(a.msb_bits, d.kmsb, jh, ka.pos),
                                       row_address(a.lsb_bits, d.klsb, jh, ka.pos))),
                     ka.slot.eq(sw_s), ka.en.eq(sw_adv & sw_run & (sw_s < kc))]
        with m.If(sw_adv):
            m.d.sync += [sw_hold.eq(sw_run & (sw_s < kc)), sw_slot.eq(sw_s)]
            with m.If(sw_run & (sw_s < kc)):
                m.d.sync += sw_s.eq(sw_s + 1)
        sw_done = sw_run & (sw_s == kc) & ~sw_hold & (k_out == 0)

        def sweep(kind):
            m.d.sync += [sw_run.eq(1), sw_kind.eq(kind), sw_s.eq(0)]

        # Query reads: queries 0 .. nq-1 of the job (position from the keep list, or the
        # newest position in generation), at most QUERY_FIFO_DEPTH ahead of the passes.
        q_run = Signal()
        q_s = Signal(t.count_bits)
        q_ahead = Signal(range(QUERY_FIFO_DEPTH + 1))
        q_hold = Signal()
        q_adv = ~q_hold | q_req.grant
        q_more = q_run & (q_s < nq) & (q_ahead < QUERY_FIFO_DEPTH)
        pos_q = Mux(d.mode, d.newest[:IB], qa.pos)
        m.d.comb += [q_req.valid.eq(q_hold), q_req.kind.eq(Q), q_req.slot.eq(pos_q),
                     q_req.addr.eq(row_address(a.q_bits, d.q, jh, pos_q)),
                     qa.slot.eq(q_s), qa.en.eq(q_adv & q_more)]
        q_pop = Signal()
        m.d.sync += q_ahead.eq(q_ahead + (q_adv & q_more) - q_pop)
        with m.If(q_adv):
            m.d.sync += q_hold.eq(q_more)
            with m.If(q_more):
                m.d.sync += q_s.eq(q_s + 1)

        # Decisions: counted, the last one's refetch bit kept.
        decs, sent = Signal(16), Signal(16)
        dec_refetch = Signal()
        m.d.comb += head.dec.ready.eq(1)
        with m.If(head.dec.valid):
            m.d.sync += [decs.eq(decs + 1), dec_refetch.eq(head.dec.payload.refetch)]

        # Passes in flight: to the V server (precision, head, first) and the output writer.
        pass_w = IB + 1 + hb + 1
        m.submodules.passf = passf = SyncFIFOBuffered(width=pass_w, depth=PASS_FIFO_DEPTH)
        m.submodules.outf = outf = SyncFIFOBuffered(width=IB + hb, depth=PASS_FIFO_DEPTH)

        qreg = Signal(qrow)
        qpos = Signal(IB)
        full = Signal()
        klsb_loaded = Signal()
        done_q = Signal(t.count_bits)
        kb = Signal(range(-(-CAP // KPC) + 1))
        kv, k_last = Signal(), Signal()
        hq, hk = head.q, head.k
        m.d.comb += [hq.payload.q.eq(qreg), hq.payload.scale.eq(d.scale),
                     hq.payload.shift.eq(d.shift), hq.payload.meta.keep.eq(d.value_keep),
                     hq.payload.meta.threshold.eq(d.threshold),
                     hq.payload.meta.msb_only.eq(~full),
                     hk.payload.msb.eq(kbuf[KMSB].data), hk.payload.lsb.eq(kbuf[KLSB].data),
                     hk.payload.count.eq(Mux(k_last, kc - ((nkb - 1) << kw), KPC)),
                     hk.payload.last.eq(k_last), hk.valid.eq(kv)]
        k_en = Signal()                     # (a read port's enable is 1 unless driven)
        for p in (kbuf[KMSB], kbuf[KLSB]):
            m.d.comb += [p.addr.eq(kb), p.en.eq(k_en)]
        k_adv = ~kv | hk.ready

        with m.FSM(name="job"):
            with m.State("IDLE"):
                with m.If(job_start):
                    m.d.sync += [klsb_loaded.eq(0), first.eq(1), done_q.eq(0)]
                    sweep(KMSB)
                    m.next = "KMSB"
            with m.State("KMSB"):
                with m.If(sw_done):
                    m.d.sync += sw_run.eq(0)
                    with m.If(~d.msb_only):
                        sweep(KLSB)
                        m.next = "KLSB"
                    with m.Else():
                        m.d.sync += [q_run.eq(1), q_s.eq(0)]
                        m.next = "POP"
            with m.State("KLSB"):
                with m.If(sw_done):
                    m.d.sync += [sw_run.eq(0), klsb_loaded.eq(1), q_run.eq(1), q_s.eq(0)]
                    m.next = "POP"
            with m.State("POP"):
                with m.If(done_q == nq):
                    m.d.sync += q_run.eq(0)
                    m.d.comb += job_done.eq(1)
                    m.next = "IDLE"
                with m.Elif(qf.r_rdy):
                    m.d.comb += [qf.r_en.eq(1), q_pop.eq(1)]
                    m.d.sync += [qreg.eq(qf.r_data[:qrow]), qpos.eq(qf.r_data[qrow:]),
                                 full.eq(~d.msb_only)]
                    m.next = "Q"
            with m.State("Q"):
                # kb is 0 here: word 0 is read while the query beat waits
                m.d.comb += [hq.valid.eq(1), k_en.eq(1)]
                with m.If(hq.ready):
                    m.d.sync += [kv.eq(1), k_last.eq(nkb == 1), kb.eq(1)]
                    m.next = "K"
            with m.State("K"):
                with m.If(k_adv):
                    m.d.comb += k_en.eq(1)
                    m.d.sync += [kv.eq(kb < nkb), k_last.eq(kb == nkb - 1), kb.eq(kb + 1)]
                    with m.If(kv & k_last):
                        m.d.sync += [kv.eq(0), kb.eq(0), sent.eq(sent + 1)]
                        m.next = "PUSH"
                        with m.If(~full):
                            m.next = "DEC"
            with m.State("DEC"):
                with m.If(decs == sent):
                    with m.If(dec_refetch):
                        m.d.sync += full.eq(1)
                        with m.If(klsb_loaded):
                            m.next = "Q"
                        with m.Else():
                            sweep(KLSB)
                            m.next = "REFETCH"
                    with m.Else():
                        m.next = "PUSH"
            with m.State("REFETCH"):
                with m.If(sw_done):
                    m.d.sync += [sw_run.eq(0), klsb_loaded.eq(1)]
                    m.next = "Q"
            with m.State("PUSH"):
                m.d.comb += [passf.w_data.eq(Cat(qpos, full, jh, first)),
                             outf.w_data.eq(Cat(qpos, jh))]
                with m.If(passf.w_rdy & outf.w_rdy):
                    m.d.comb += [passf.w_en.eq(1), outf.w_en.eq(1)]
                    m.d.sync += [first.eq(0), done_q.eq(done_q + 1)]
                    m.next = "POP"

        # ---- the V server: one head vreq beat → V rows fetched if new → one v beat ---------
        # Fast path (every row of the beat already in the buffers, no two in one bank): the
        # banks are read in the cycle the beat is taken and the v beat goes out the next, so
        # back-to-back beats stream at one per cycle. Otherwise the beat is latched, its new
        # rows are fetched (NEED, PICK, ISSUE, WAIT) and gathered bank by bank (GATHER).
        vr, vo = head.vreq, head.v
        in_pass, v_full = Signal(), Signal()
        vh = Signal(hb)
        v_idx = Signal.like(vr.payload.index)
        v_cnt = Signal.like(vr.payload.count)
        v_last = Signal()
        vm_ld, vl_ld = Signal(CAP), Signal(CAP)
        need_m, need_l = Signal(R), Signal(R)
        pend = Signal(R)
        jsel = Signal(range(max(R, 2)))     # (a 0-bit signal lints as [-1:0] at R = 1)
        srv = [Signal(R, name=f"srv{b}") for b in range(R)]   # lanes bank b read last
        b_addr = [Signal(max(1, ceil_log2(-(-CAP // R))), name=f"vaddr{b}") for b in range(R)]
        b_en = [Signal(name=f"ven{b}") for b in range(R)]
        for b in range(R):
            for kind in (VMSB, VLSB):
                m.d.comb += [vbank[kind][b].addr.eq(b_addr[b]), vbank[kind][b].en.eq(b_en[b])]
        gm = Signal.like(vo.payload)        # lanes gathered before the last bank reads
        for j in range(R):                  # the v beat: last reads straight from the banks
            hit_m, hit_l = gm.msb[j], gm.lsb[j]
            for b in range(R):
                hit_m = Mux(srv[b][j], vbank[VMSB][b].data, hit_m)
                hit_l = Mux(srv[b][j], vbank[VLSB][b].data, hit_l)
            m.d.comb += [vo.payload.msb[j].eq(hit_m), vo.payload.lsb[j].eq(hit_l)]
        m.d.comb += va.slot.eq(v_idx[jsel])
        pf_full, pf_head, pf_first = (passf.r_data[IB], passf.r_data[IB + 1:IB + 1 + hb],
                                      passf.r_data[IB + 1 + hb])
        v_pos = va.pos
        v_kind = Signal(3)
        m.d.comb += [v_req.kind.eq(v_kind), v_req.slot.eq(v_idx[jsel]),
                     v_req.addr.eq(Mux(v_kind == VMSB,
                                       row_address(a.msb_bits, d.vmsb, vh, v_pos),
                                       row_address(a.lsb_bits, d.vlsb, vh, v_pos)))]
        # capture: the banks' data of last cycle's reads into their lanes
        for j in range(R):
            for b in range(R):
                with m.If(srv[b][j]):
                    m.d.sync += [gm.msb[j].eq(vbank[VMSB][b].data),
                                 gm.lsb[j].eq(vbank[VLSB][b].data)]

        def bank_of(x):
            return x[:vw] if R > 1 else Const(0, 1)

        def take_beat(pass_open):
            """Take the next vreq beat if there is one (``pass_open``: it belongs to the pass
            being served); the fast path reads the banks now."""
            iv = vr.payload
            can = vr.valid & (pass_open | passf.r_rdy)
            first_n = ~pass_open & pf_first
            full_n = Mux(pass_open, v_full, pf_full)
            live = [j < iv.count for j in range(R)]
            needs = Const(0, 1)
            for j in range(R):
                m_ok = ~first_n & vm_ld.bit_select(iv.index[j], 1)
                l_ok = ~first_n & vl_ld.bit_select(iv.index[j], 1)
                needs = needs | (live[j] & (~m_ok | (full_n & ~l_ok)))
            clash = Const(0, 1)
            for j in range(R):
                for k in range(j + 1, R):
                    clash = clash | (live[j] & live[k]
                                     & (bank_of(iv.index[j]) == bank_of(iv.index[k])))
            fast = ~needs & ~clash & (v_out == 0)
            m.d.sync += [s.eq(0) for s in srv]
            with m.If(can):
                m.d.comb += vr.ready.eq(1)
                m.d.sync += [v_idx.eq(iv.index), v_cnt.eq(iv.count), v_last.eq(iv.last)]
                with m.If(~pass_open):
                    m.d.comb += passf.r_en.eq(1)
                    m.d.sync += [in_pass.eq(1), v_full.eq(pf_full), vh.eq(pf_head)]
                    with m.If(pf_first):
                        m.d.sync += [vm_ld.eq(0), vl_ld.eq(0)]
                with m.If(fast):
                    for b in range(R):
                        addr, one = Const(0, 1), Const(0, 1)
                        for j in reversed(range(R)):
                            hit = live[j] & (bank_of(iv.index[j]) == b)
                            addr = Mux(hit, iv.index[j] >> vw, addr)
                            one = one | hit
                        m.d.comb += [b_addr[b].eq(addr), b_en[b].eq(one)]
                        m.d.sync += srv[b].eq(Cat(*[live[j] & (bank_of(iv.index[j]) == b)
                                                    for j in range(R)]))
                    m.next = "SEND"
                with m.Else():
                    m.next = "NEED"
            with m.Else():
                m.next = "IDLE"

        v_idle = Signal()
        with m.FSM(name="vserve"):
            with m.State("IDLE"):
                m.d.comb += v_idle.eq(~in_pass)
                take_beat(in_pass)
            with m.State("NEED"):
                for j in range(R):
                    live = j < v_cnt
                    m.d.sync += [need_m[j].eq(live & ~vm_ld.bit_select(v_idx[j], 1)),
                                 need_l[j].eq(live & v_full & ~vl_ld.bit_select(v_idx[j], 1))]
                m.next = "PICK"
            with m.State("PICK"):
                needs = need_m | need_l
                pick = Const(0, range(R))
                for j in reversed(range(R)):
                    pick = Mux(needs[j], j, pick)
                with m.If(needs == 0):
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += jsel.eq(pick)
                    m.d.comb += [va.slot.eq(v_idx[pick]), va.en.eq(1)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                # one read request per cycle: the lane's MSB row, then its LSB row; as the
                # lane's last request goes, the next lane's position is read
                cur_m, cur_l = need_m.bit_select(jsel, 1), need_l.bit_select(jsel, 1)
                with m.If(cur_m):
                    m.d.comb += [v_req.valid.eq(1), v_kind.eq(VMSB)]
                    with m.If(v_req.grant):
                        # an OR with a shifted one: a bit_select assignment of a
                        # capacity-wide register becomes a capacity-way case in synthesis
                        m.d.sync += [need_m.bit_select(jsel, 1).eq(0),
                                     vm_ld.eq(vm_ld | (Const(1, CAP) << v_idx[jsel]))]
                with m.Elif(cur_l):
                    m.d.comb += [v_req.valid.eq(1), v_kind.eq(VLSB)]
                    with m.If(v_req.grant):
                        m.d.sync += [need_l.bit_select(jsel, 1).eq(0),
                                     vl_ld.eq(vl_ld | (Const(1, CAP) << v_idx[jsel]))]
                lane_done = Mux(cur_m, v_req.grant & ~cur_l, Mux(cur_l, v_req.grant, 1))
                rest = (need_m | need_l) & ~(Const(1, R) << jsel)[:R]
                nxt = Const(0, range(R))
                for j in reversed(range(R)):
                    nxt = Mux(rest[j], j, nxt)
                with m.If(lane_done):
                    with m.If(rest == 0):
                        m.next = "WAIT"
                    with m.Else():
                        m.d.sync += jsel.eq(nxt)
                        m.d.comb += [va.slot.eq(v_idx[nxt]), va.en.eq(1)]
            with m.State("WAIT"):
                with m.If(v_out == 0):
                    m.d.sync += pend.eq(Cat(*[j < v_cnt for j in range(R)]))
                    m.next = "GATHER"
            with m.State("GATHER"):
                served = []
                for b in range(R):
                    hit = [pend[j] & (bank_of(v_idx[j]) == b) for j in range(R)]
                    one = Signal(R, name=f"gsel{b}")
                    taken = Const(0, 1)
                    for j in range(R):
                        m.d.comb += one[j].eq(hit[j] & ~taken)
                        taken = taken | hit[j]
                    addr = Const(0, 1)
                    for j in reversed(range(R)):
                        addr = Mux(one[j], v_idx[j] >> vw, addr)
                    m.d.comb += [b_addr[b].eq(addr), b_en[b].eq(one.any())]
                    m.d.sync += srv[b].eq(one)
                    served.append(one)
                left = pend & ~Cat(*[Cat(*[s[j] for s in served]).any() for j in range(R)])
                m.d.sync += pend.eq(left)
                with m.If(left == 0):
                    m.next = "SEND"
            with m.State("SEND"):
                # the banks hold the last reads (enables low) until the beat is taken
                m.d.comb += vo.valid.eq(1)
                with m.If(vo.ready):
                    with m.If(v_last):
                        m.d.sync += in_pass.eq(0)
                    take_beat(~v_last)

        # ---- outputs: head.o → DRAM (one row) and the head's importance --------------------
        ho = head.o
        o_busy = Signal()
        orow = Signal(out_beats * BUS)
        o_pos, o_head = Signal(IB), Signal(hb)
        ob = Signal(range(out_beats + 1))
        o_cmd = Signal()
        take_o = ho.valid & ~o_busy & outf.r_rdy & hi.o.ready
        m.d.comb += [hi.o.valid.eq(ho.valid & ~o_busy & outf.r_rdy),
                     hi.o.payload.head.eq(outf.r_data[IB:]), hi.o.payload.data.eq(ho.payload.data),
                     ho.ready.eq(~o_busy & outf.r_rdy & hi.o.ready), outf.r_en.eq(take_o)]
        with m.If(take_o):
            m.d.sync += [o_busy.eq(1), o_cmd.eq(1), ob.eq(0),
                         orow.eq(ho.payload.data.as_value()), o_pos.eq(outf.r_data[:IB]),
                         o_head.eq(outf.r_data[IB:])]

        # ---- DMA writes: the keep list (body, header) or an output row ----------------------
        wc, wd = dma.wcmd, dma.wdata
        kl_state = Signal(2)              # 0 collect, 1 command, 2 data
        kl_buf = Signal(BUS)
        kl_fill = Signal(range(BUS // 16 + 1))
        kl_beat = Signal(range(t.rows + 2))
        kl_end = Signal()
        per_beat = BUS // 16
        lane16 = Cat(*[Cat(kp.payload.index[j], Const(0, 16 - IB)) for j in range(P)])
        hdr_go, hdr_cmd, hdr_busy = Signal(), Signal(), Signal()
        hcount = Signal(8)
        hdr_data = Cat(d.token_keep[:16], hcount, Const(0, 8), hmask)
        # the counter record (sim.golden.core.counters_image): one beat per burst
        rec_beats = counters_bytes(cfg) // c.bus_bytes
        values = {"layer": d.layer, "mode": d.mode, "tokens": d.token_keep, "heads": hcount,
                  "written": Const(1)}
        info = Const(0, 64)
        for f, lsb, w in COUNTER_INFO:
            info = info | values[f][:w].shift_left(lsb)
        rec = Cat(*[Cat(x, Const(0, 16)) for x in (f_rd, f_wr, f_cyc)], info)
        assert len(rec) == 64 * COUNTER_WORDS
        rec = Cat(rec, Const(0, rec_beats * BUS - len(rec)))
        cnt_go, cnt_cmd, cnt_busy = Signal(), Signal(), Signal()
        cb = Signal(range(max(rec_beats, 2)))
        with m.If(kl_state == 0):
            m.d.comb += kp.ready.eq(1)
            with m.If(keep_take):
                fill = kl_fill + kp.payload.count
                m.d.sync += [kl_buf.word_select(kl_fill >> ceil_log2(P), 16 * P).eq(lane16),
                             kl_fill.eq(fill), k_word.eq(k_word + 1)]
                with m.If((fill == per_beat) | kp.payload.last):
                    m.d.sync += [kl_state.eq(1), kl_end.eq(kp.payload.last)]
        with m.If(kl_state == 1):
            m.d.comb += [wc.valid.eq(1), wc.payload.beats.eq(1),
                         wc.payload.addr.eq(d.keeplist + ((kl_beat + 1) << ceil_log2(c.bus_bytes)))]
            with m.If(wc.ready):
                m.d.sync += kl_state.eq(2)
        with m.Elif(kl_state == 2):
            m.d.comb += [wd.valid.eq(1), wd.payload.data.eq(kl_buf), wd.payload.last.eq(1)]
            with m.If(wd.ready):
                m.d.sync += [kl_state.eq(0), kl_buf.eq(0), kl_fill.eq(0),
                             kl_beat.eq(kl_beat + 1)]
        with m.Elif(hdr_busy):
            with m.If(hdr_cmd):
                m.d.comb += [wc.valid.eq(1), wc.payload.beats.eq(1),
                             wc.payload.addr.eq(d.keeplist)]
                with m.If(wc.ready):
                    m.d.sync += hdr_cmd.eq(0)
            with m.Else():
                m.d.comb += [wd.valid.eq(1), wd.payload.data.eq(hdr_data),
                             wd.payload.last.eq(1)]
                with m.If(wd.ready):
                    m.d.sync += hdr_busy.eq(0)
        with m.Elif(cnt_busy):
            with m.If(cnt_cmd):
                m.d.comb += [wc.valid.eq(1), wc.payload.beats.eq(1),
                             wc.payload.addr.eq(d.counters + (cb << ceil_log2(c.bus_bytes)))]
                with m.If(wc.ready):
                    m.d.sync += cnt_cmd.eq(0)
            with m.Else():
                m.d.comb += [wd.valid.eq(1), wd.payload.last.eq(1),
                             wd.payload.data.eq(rec.word_select(cb, BUS))]
                with m.If(wd.ready):
                    m.d.sync += [cb.eq(cb + 1), cnt_cmd.eq(1)]
                    with m.If(cb == rec_beats - 1):
                        m.d.sync += [cnt_busy.eq(0), cb.eq(0)]
        with m.Elif(o_busy):
            with m.If(o_cmd):
                m.d.comb += [wc.valid.eq(1), wc.payload.beats.eq(out_beats),
                             wc.payload.addr.eq(row_address(a.out.width, d.out, o_head, o_pos))]
                with m.If(wc.ready):
                    m.d.sync += o_cmd.eq(0)
            with m.Else():
                m.d.comb += [wd.valid.eq(1), wd.payload.last.eq(ob == out_beats - 1),
                             wd.payload.data.eq(orow.word_select(ob, BUS))]
                with m.If(wd.ready):
                    m.d.sync += ob.eq(ob + 1)
                    with m.If(ob == out_beats - 1):
                        m.d.sync += [o_busy.eq(0), outs.eq(outs + 1)]
        with m.If(hdr_go):
            m.d.sync += [hdr_busy.eq(1), hdr_cmd.eq(1)]
        with m.If(cnt_go):
            m.d.sync += [cnt_busy.eq(1), cnt_cmd.eq(1), cb.eq(0), frozen.eq(1),
                         f_rd.eq(counting[0]), f_wr.eq(counting[1]), f_cyc.eq(counting[2])]

        # ---- the layer ---------------------------------------------------------------------
        W = t.rows
        cw = Signal(range(W + 1))
        hcmd, tcmd = hi.cmd.payload, sel.cmd.payload
        first_h = Const(0, hb)
        for h in reversed(range(c.heads)):
            first_h = Mux(hrem[h], h, first_h)
        m.d.comb += [hi.keep.ready.eq(1), hi.status.ready.eq(1), sel.status.ready.eq(1)]
        # head selection: summarization from the previous layer; generation from this
        # layer's own mask of the last step, within the previous layer's of this step
        # keep counts above what the units can hold are clamped to one more (still too many)
        hkeep = Mux(d.head_keep > c.heads, c.heads + 1, d.head_keep)
        tkeep = Mux(d.token_keep > CAP, CAP + 1, d.token_keep)
        m.d.comb += [hcmd.n.eq(d.heads), hcmd.keep.eq(hkeep), hcmd.dst.eq(d.layer),
                     hcmd.src.eq(Mux(d.mode, d.layer, layer_prev)),
                     hcmd.all.eq(Mux(d.mode, ~own_ok, ~prev_ok)),
                     hcmd.has_upper.eq(d.mode & prev_ok), hcmd.upper.eq(layer_prev)]
        m.d.comb += [tcmd.n.eq(d.n), tcmd.keep.eq(tkeep),
                     tcmd.newest.eq(Mux(d.mode, d.newest, d.n - 1)),
                     tcmd.sinks.eq(Mux(d.mode, d.sinks, 0)),
                     tcmd.recent.eq(Mux(d.mode, d.recent, 0)),
                     tcmd.age_norm.eq(d.age_norm), tcmd.dst.eq(d.layer),
                     tcmd.all.eq(Mux(d.mode, ~own_ok, ~prev_ok)),
                     tcmd.src.eq(Mux(d.mode, d.layer, layer_prev)),
                     tcmd.add_newest.eq(d.mode),
                     tcmd.has_upper.eq(d.mode & prev_ok), tcmd.upper.eq(layer_prev),
                     tcmd.nowrite.eq(hcode != Status.OK)]
        with m.FSM(name="layer"):
            with m.State("IDLE"):
                m.d.comb += regs.desc.ready.eq(1)
                with m.If(regs.desc.valid):
                    m.d.sync += [d.eq(regs.desc.payload), cyc.eq(0), outs.eq(0), frozen.eq(0),
                                 bus_err.eq(0),
                                 rd0.eq(dma.bytes_read), wr0.eq(dma.bytes_written),
                                 k_word.eq(0), kl_beat.eq(0), cw.eq(0), self.busy.eq(1)]
                    with m.If(regs.desc.payload.clear):
                        m.next = "CLEAR"
                    with m.Else():
                        m.next = "HDRY"
            with m.State("CLEAR"):
                m.d.comb += [sel.imp_in.valid.eq(1), sel.imp_in.payload.addr.eq(cw),
                             sel.imp_in.payload.data.eq(0), hi.clear.eq(1)]
                m.d.sync += valid_l.eq(0)
                with m.If(sel.imp_in.ready):
                    m.d.sync += cw.eq(cw + 1)
                    with m.If(cw == W - 1):
                        m.next = "HDRY"
            _command(m, "HDRY", hi, [hcmd.store.eq(0)], hcode, "TSEL")
            _command(m, "TSEL", sel, [tcmd.merge.eq(0)], tcode, "CHECK")
            with m.State("CHECK"):
                with m.If(kl_state == 0):
                    with m.If(tcode != Status.OK):
                        m.d.sync += code.eq(tcode)
                        m.next = "DONE"
                    with m.Elif(hcode != Status.OK):
                        m.d.sync += code.eq(hcode)
                        m.next = "DONE"
                    with m.Else():
                        m.next = "HSTORE"
            with m.State("HSTORE"):
                m.d.comb += [hi.cmd.valid.eq(1), hcmd.store.eq(1)]
                with m.If(hi.cmd.ready):
                    m.next = "HSTORE_W"
            with m.State("HSTORE_W"):
                with m.If(hi.keep.valid):
                    m.d.sync += [hmask.eq(hi.keep.payload.mask), hrem.eq(hi.keep.payload.mask),
                                 hcount.eq(hi.keep.payload.count)]
                with m.If(hi.status.valid):
                    m.d.sync += [valid_l.bit_select(d.layer, 1).eq(1),
                                 nq.eq(Mux(d.mode, 1, d.token_keep))]
                    m.d.comb += hdr_go.eq(1)
                    m.next = "JOBS"
            with m.State("JOBS"):
                with m.If(~hdr_busy):
                    with m.If(hrem == 0):
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.sync += [jh.eq(first_h), hrem.bit_select(first_h, 1).eq(0)]
                        m.d.comb += job_start.eq(1)
                        m.next = "JOB"
            with m.State("JOB"):
                with m.If(job_done):
                    m.next = "JOBS"
            with m.State("DRAIN"):
                with m.If((outs == hcount * nq) & ~dma.busy & v_idle & ~passf.r_rdy):
                    m.next = "DRAIN_SLOTS"
            with m.State("DRAIN_SLOTS"):
                m.d.comb += [acc.drain.valid.eq(1), acc.drain.payload.eq(d.token_keep)]
                with m.If(acc.drain.ready):
                    m.next = "MERGE"
            # a merge always succeeds: its code is OK
            _command(m, "MERGE", sel, [tcmd.merge.eq(1), tcmd.src.eq(d.layer)], code,
                     "COUNT")
            with m.State("COUNT"):
                m.d.comb += cnt_go.eq(1)
                m.next = "COUNT_W"
            with m.State("COUNT_W"):
                with m.If(~cnt_busy & ~dma.busy):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [regs.done.valid.eq(1), regs.done.payload.eq(
                    Mux((code == Status.OK) & bus_err, Status.BUS, code))]
                with m.If(regs.done.ready):
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
        with m.If(self.busy):
            m.d.sync += cyc.eq(cyc + 1)
        return m
