"""The V server: the head pipeline's V requests answered from on-chip V banks, each row
read from DRAM the first time the job needs it.

Spec: ``docs/core.md`` (DRAM traffic, the controller step 4): a V row's MSB plane is read
the first time a kept list of the job names it, its LSB plane the first time a
full-precision kept list does (per-job loaded bits); the rows sit in ``pv_rows`` banks
(slot mod ``pv_rows``), so a request beat is gathered in one cycle per bank conflict.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import plane_bits
from generators.numerics import ceil_log2

from ..attn.layouts import value_layout, vreq_layout
from .axi import MAX_OUTSTANDING
from .check import CoreComponent
from .layouts import (ReadKind, head_bits, pass_layout, read_req_layout, row_address, row_layout,
                      slot_port_signature)
from .regs import desc_layout

__all__ = ["VServer"]


class VServer(CoreComponent):
    """``vreq`` beats → V rows fetched if new (``req`` → ``rows``) → ``v`` beats, per pass of
    ``passes``.

    Behaviour: the first ``vreq`` beat of a pass takes the pass's entry from ``passes``
    (its head, whether it is full precision, whether it is the job's first: then the
    loaded bits are cleared). A beat names ``count`` kept slots; a slot's V MSB row is
    needed if the job has not loaded it, its LSB row too for a full-precision pass.

    - Fast path: nothing needed, no two slots in one bank and no V row in flight: the banks
      are read in the cycle the beat is taken and its ``v`` beat is valid the next cycle,
      so back-to-back beats stream at one per cycle.
    - Otherwise the beat is latched (NEED), each needed slot's position is read from the
      keep list (``keep``) and its rows are requested on ``req``, one per cycle while taken
      at once (PICK, ISSUE); once every V row has landed (WAIT) the beat is gathered, one
      cycle per slot sharing a bank (GATHER), and sent (SEND).

    ``v`` holds its beat (the banks' last reads) until taken. Rows landing on ``rows`` are
    always accepted and written into bank ``slot mod pv_rows`` of their plane. ``idle`` is
    high when no pass is being served or waiting on ``passes``.

    Members
    -------
    passes : ``In(stream.Signature(layouts.pass_layout(cfg)))``: the accepted passes
    vreq : ``In(stream.Signature(attn.layouts.vreq_layout(cfg)))``: from the head
    v : ``Out(stream.Signature(attn.layouts.value_layout(cfg)))``: to the head
    req : ``Out(stream.Signature(layouts.read_req_layout(cfg)))``: V row reads
    rows : ``In(stream.Signature(layouts.row_layout(cfg), always_ready=True))``: landed V rows
    keep : ``Out(layouts.slot_port_signature(cfg))``: the keep list (slot → position)
    desc : ``In(regs.desc_layout(cfg))``: the running layer (the ``vmsb`` and ``vlsb`` bases)
    idle : ``Out(1)``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "passes": In(stream.Signature(pass_layout(cfg))),
            "vreq": In(stream.Signature(vreq_layout(cfg))),
            "v": Out(stream.Signature(value_layout(cfg))),
            "req": Out(stream.Signature(read_req_layout(cfg))),
            "rows": In(stream.Signature(row_layout(cfg), always_ready=True)),
            "keep": Out(slot_port_signature(cfg)),
            "desc": In(desc_layout(cfg)),
            "idle": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        s = _VState(self._cfg, self.vreq.payload)
        banks = self._banks(m, s)
        self._beat(m, s, banks)
        self._requests(m, s)
        with m.FSM(name="vserve"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~s.in_pass & ~self.passes.valid)
                self._take_beat(m, s, s.in_pass)
            self._fetch_states(m, s)
            self._gather_state(m, s)
            with m.State("SEND"):
                # the banks hold the last reads (enables low) until the beat is taken
                m.d.comb += self.v.valid.eq(1)
                with m.If(self.v.ready):
                    with m.If(s.last):
                        m.d.sync += s.in_pass.eq(0)
                    self._take_beat(m, s, ~s.last)
        return m

    def _bank_of(self, x):
        return x[:ceil_log2(self._cfg.attn.pv_rows)] if self._cfg.attn.pv_rows > 1 else Const(0, 1)

    def _banks(self, m, s):
        """One memory per bank and plane, written by landing rows, read at ``s.b_addr``;
        returns ``{kind: [read ports]}``. Counts the V rows in flight."""
        cfg = self._cfg
        a, t = cfg.attn, cfg.topk
        R, vw = a.pv_rows, ceil_log2(a.pv_rows)
        rows = self.rows.payload
        banks = {}
        for kind in (ReadKind.VMSB, ReadKind.VLSB):
            rw = a.head_dim * plane_bits(cfg, kind.name.lower())
            ports = []
            for b in range(R):
                mem = Memory(shape=rw, depth=-(-t.capacity // R), init=[])
                m.submodules[f"v{kind.name.lower()}{b}"] = mem
                wp = mem.write_port()
                hit = self.rows.valid & (rows.kind == kind)
                if R > 1:
                    hit &= rows.slot[:vw] == b
                m.d.comb += [wp.addr.eq(rows.slot >> vw), wp.data.eq(rows.data[:rw]),
                             wp.en.eq(hit)]
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(s.b_addr[b]), rp.en.eq(s.b_en[b])]
                ports.append(rp)
            banks[kind] = ports
        grant = self.req.valid & self.req.ready
        m.d.sync += s.pending.eq(s.pending + grant - self.rows.valid)
        return banks

    def _beat(self, m, s, banks):
        """The ``v`` beat: lanes read by the banks last cycle straight from the banks, the
        others from the lanes gathered before (which capture every bank read)."""
        R = self._cfg.attn.pv_rows
        vo = self.v
        msb, lsb = banks[ReadKind.VMSB], banks[ReadKind.VLSB]
        for j in range(R):
            hit_m, hit_l = s.gm.msb[j], s.gm.lsb[j]
            for b in range(R):
                hit_m = Mux(s.srv[b][j], msb[b].data, hit_m)
                hit_l = Mux(s.srv[b][j], lsb[b].data, hit_l)
            m.d.comb += [vo.payload.msb[j].eq(hit_m), vo.payload.lsb[j].eq(hit_l)]
        for j in range(R):
            for b in range(R):
                with m.If(s.srv[b][j]):
                    m.d.sync += [s.gm.msb[j].eq(msb[b].data), s.gm.lsb[j].eq(lsb[b].data)]

    def _requests(self, m, s):
        """The read request of lane ``jsel`` (valid in ISSUE) and its keep-list read."""
        cfg = self._cfg
        a, d, req = cfg.attn, self.desc, self.req
        pos = self.keep.pos
        m.d.comb += [self.keep.slot.eq(s.idx[s.jsel]),
                     req.payload.kind.eq(s.kind), req.payload.slot.eq(s.idx[s.jsel]),
                     req.payload.addr.eq(Mux(
                         s.kind == ReadKind.VMSB,
                         row_address(cfg, a.msb_bits, d.vmsb, s.head, pos),
                         row_address(cfg, a.lsb_bits, d.vlsb, s.head, pos)))]

    def _take_beat(self, m, s, pass_open):
        """Take the next ``vreq`` beat if there is one (``pass_open``: it belongs to the pass
        being served, else it opens the next pass); the fast path reads the banks now."""
        R, vw = self._cfg.attn.pv_rows, ceil_log2(self._cfg.attn.pv_rows)
        vr, pf = self.vreq, self.passes
        iv = vr.payload
        can = vr.valid & (pass_open | pf.valid)
        first_n = ~pass_open & pf.payload.first
        full_n = Mux(pass_open, s.full, pf.payload.full)
        live = [j < iv.count for j in range(R)]
        needs = Const(0, 1)
        for j in range(R):
            m_ok = ~first_n & s.m_loaded.bit_select(iv.index[j], 1)
            l_ok = ~first_n & s.l_loaded.bit_select(iv.index[j], 1)
            needs = needs | (live[j] & (~m_ok | (full_n & ~l_ok)))
        clash = Const(0, 1)
        for j in range(R):
            for k in range(j + 1, R):
                clash = clash | (live[j] & live[k]
                                 & (self._bank_of(iv.index[j]) == self._bank_of(iv.index[k])))
        fast = ~needs & ~clash & (s.pending == 0)
        m.d.sync += [x.eq(0) for x in s.srv]
        with m.If(can):
            m.d.comb += vr.ready.eq(1)
            m.d.sync += [s.idx.eq(iv.index), s.cnt.eq(iv.count), s.last.eq(iv.last)]
            with m.If(~pass_open):
                m.d.comb += pf.ready.eq(1)
                m.d.sync += [s.in_pass.eq(1), s.full.eq(pf.payload.full),
                             s.head.eq(pf.payload.head)]
                with m.If(pf.payload.first):
                    m.d.sync += [s.m_loaded.eq(0), s.l_loaded.eq(0)]
            with m.If(fast):
                for b in range(R):
                    addr, one = Const(0, 1), Const(0, 1)
                    for j in reversed(range(R)):
                        hit = live[j] & (self._bank_of(iv.index[j]) == b)
                        addr = Mux(hit, iv.index[j] >> vw, addr)
                        one = one | hit
                    m.d.comb += [s.b_addr[b].eq(addr), s.b_en[b].eq(one)]
                    m.d.sync += s.srv[b].eq(Cat(*[live[j] & (self._bank_of(iv.index[j]) == b)
                                                  for j in range(R)]))
                m.next = "SEND"
            with m.Else():
                m.next = "NEED"
        with m.Else():
            m.next = "IDLE"

    def _fetch_states(self, m, s):
        """NEED (which rows each lane needs), PICK (the first lane), ISSUE (its requests,
        MSB row then LSB row, one per cycle), WAIT (every V row landed)."""
        R, CAP = self._cfg.attn.pv_rows, self._cfg.topk.capacity
        req, keep = self.req, self.keep
        grant = req.valid & req.ready

        def first_of(bits):
            pick = Const(0, range(R))
            for j in reversed(range(R)):
                pick = Mux(bits[j], j, pick)
            return pick

        with m.State("NEED"):
            for j in range(R):
                live = j < s.cnt
                m.d.sync += [s.need_m[j].eq(live & ~s.m_loaded.bit_select(s.idx[j], 1)),
                             s.need_l[j].eq(live & s.full & ~s.l_loaded.bit_select(s.idx[j], 1))]
            m.next = "PICK"
        with m.State("PICK"):
            needs = s.need_m | s.need_l
            with m.If(needs == 0):
                m.next = "WAIT"
            with m.Else():
                m.d.sync += s.jsel.eq(first_of(needs))
                m.d.comb += [keep.slot.eq(s.idx[first_of(needs)]), keep.en.eq(1)]
                m.next = "ISSUE"
        with m.State("ISSUE"):
            # one read request per cycle: the lane's MSB row, then its LSB row; as the
            # lane's last request goes, the next lane's position is read
            cur_m, cur_l = s.need_m.bit_select(s.jsel, 1), s.need_l.bit_select(s.jsel, 1)
            with m.If(cur_m):
                m.d.comb += [req.valid.eq(1), s.kind.eq(ReadKind.VMSB)]
                with m.If(grant):
                    # an OR with a shifted one: a bit_select assignment of a
                    # capacity-wide register becomes a capacity-way case in synthesis
                    m.d.sync += [s.need_m.bit_select(s.jsel, 1).eq(0),
                                 s.m_loaded.eq(s.m_loaded | (Const(1, CAP) << s.idx[s.jsel]))]
            with m.Elif(cur_l):
                m.d.comb += [req.valid.eq(1), s.kind.eq(ReadKind.VLSB)]
                with m.If(grant):
                    m.d.sync += [s.need_l.bit_select(s.jsel, 1).eq(0),
                                 s.l_loaded.eq(s.l_loaded | (Const(1, CAP) << s.idx[s.jsel]))]
            lane_done = Mux(cur_m, grant & ~cur_l, Mux(cur_l, grant, 1))
            rest = (s.need_m | s.need_l) & ~(Const(1, R) << s.jsel)[:R]
            with m.If(lane_done):
                with m.If(rest == 0):
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += s.jsel.eq(first_of(rest))
                    m.d.comb += [keep.slot.eq(s.idx[first_of(rest)]), keep.en.eq(1)]
        with m.State("WAIT"):
            with m.If(s.pending == 0):
                m.d.sync += s.pend.eq(Cat(*[j < s.cnt for j in range(R)]))
                m.next = "GATHER"

    def _gather_state(self, m, s):
        """GATHER: every bank reads the first pending lane it holds; done when none is left."""
        R, vw = self._cfg.attn.pv_rows, ceil_log2(self._cfg.attn.pv_rows)
        with m.State("GATHER"):
            served = []
            for b in range(R):
                hit = [s.pend[j] & (self._bank_of(s.idx[j]) == b) for j in range(R)]
                one = Signal(R, name=f"gsel{b}")
                taken = Const(0, 1)
                for j in range(R):
                    m.d.comb += one[j].eq(hit[j] & ~taken)
                    taken = taken | hit[j]
                addr = Const(0, 1)
                for j in reversed(range(R)):
                    addr = Mux(one[j], s.idx[j] >> vw, addr)
                m.d.comb += [s.b_addr[b].eq(addr), s.b_en[b].eq(one.any())]
                m.d.sync += s.srv[b].eq(one)
                served.append(one)
            left = s.pend & ~Cat(*[Cat(*[x[j] for x in served]).any() for j in range(R)])
            m.d.sync += s.pend.eq(left)
            with m.If(left == 0):
                m.next = "SEND"


class _VState:
    """The V server's registers and bank controls."""

    def __init__(self, cfg, vreq):
        R, CAP = cfg.attn.pv_rows, cfg.topk.capacity
        self.in_pass = Signal(name="in_pass")          # a pass is being served
        self.full = Signal(name="v_full")              # ... at full precision
        self.head = Signal(head_bits(cfg), name="v_head")
        self.idx = Signal.like(vreq.index, name="v_idx")   # the beat being served
        self.cnt = Signal.like(vreq.count, name="v_cnt")
        self.last = Signal(name="v_last")
        self.m_loaded = Signal(CAP, name="vm_ld")      # the job's V MSB rows loaded
        self.l_loaded = Signal(CAP, name="vl_ld")      # the job's V LSB rows loaded
        self.need_m, self.need_l = Signal(R, name="need_m"), Signal(R, name="need_l")
        self.pend = Signal(R, name="pend")             # lanes still to gather
        self.jsel = Signal(range(max(R, 2)), name="jsel")  # (0 bits lints as [-1:0])
        self.kind = Signal(ReadKind, name="v_kind")
        self.pending = Signal(range(MAX_OUTSTANDING + 2), name="v_pending")  # rows in flight
        self.srv = [Signal(R, name=f"srv{b}") for b in range(R)]   # lanes bank b read last
        self.b_addr = [Signal(max(1, ceil_log2(-(-CAP // R))), name=f"vaddr{b}")
                       for b in range(R)]
        self.b_en = [Signal(name=f"ven{b}") for b in range(R)]
        self.gm = Signal(value_layout(cfg), name="v_gathered")  # lanes gathered before
