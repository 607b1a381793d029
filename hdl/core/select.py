"""Cascade token selection: importance and per-layer kept-token masks → the top-k engine →
the new mask and the keep list.

Spec: ``docs/core.md`` (Selection); golden model :func:`sim.golden.select.select` with the
candidates, protection and scores of :func:`sim.golden.core.layer_step` (which
:func:`sim.golden.core.summarize` and :func:`sim.golden.core.decode_step` run).

State: the token importance ``imp`` (``topk.capacity`` accumulators of ``core.imp_bits``,
``P = topk.lanes`` per memory word, loaded through ``imp_in``) and one kept-token mask per
layer (``core.layers`` × ``capacity`` bits, ``P`` per word).

One ``cmd`` beat selects for one layer over positions ``0 .. n-1``:

1. *Scores pass* (``ceil(n / P)`` cycles): word ``w`` of ``imp`` and of the masks is read and
   every position ``p`` of it becomes a top-k score: ``2**imp_bits`` if protected
   (``p < sinks`` or ``p > newest - recent``), else ``imp[p]`` or, with ``age_norm``,
   ``(imp[p] * R[newest - p + 1] + 2**(B-1)) >> B`` (``R``: the age reciprocal ROM, banked by
   age mod ``P`` so one word reads ``P`` entries), for a *candidate*; ``-1`` for any other
   position (below every candidate, so never kept while ``keep`` is at most the candidate
   count). Candidates: ``all`` (every position below ``n``), or mask ``src`` plus, with
   ``add_newest``, position ``newest``; with ``has_upper``, only those also in mask
   ``upper``. Protection applies to candidates only.
2. *Check*: ``age_norm`` needs ``n = newest + 1`` (generation: ages are 1 and up; else
   ``PARAMS``); ``keep`` must be in ``1 .. candidates`` (else ``KEEP_RANGE``) and at least
   the protected count (else ``POLICY``). On an error the engine's output is drained, no mask
   changes and no keep list goes out.
3. *Write pass*: the engine's kept indices (in order) go out on ``keep`` and are merged into
   mask ``dst`` word by word (every word is rewritten, positions from ``n`` on as 0). With
   ``nowrite`` the pass only checks: the engine's output is drained, nothing is written and
   no keep list goes out, but ``status`` has the code a real pass would have.
4. One ``status`` beat: the code (:class:`generators.status.Status`) and the candidate count.

A command with ``merge = 1`` instead adds a layer's slot sums (``sums``, from
:class:`hdl.core.importance.SlotAccumulator`, in slot order) into ``imp`` at the positions of
mask ``src`` (the layer's kept tokens, whose ``s``-th set bit is slot ``s``), saturating at
``2**imp_bits - 1``, for positions ``0 .. n-1``; the ``sums`` stream must hold exactly the
mask's set bits (plus an empty beat when there are none). Two cycles per word plus one per
``sums`` beat; its ``status`` beat counts the slots merged.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the config's head or core parts do not fit together (``cfg.check_core()``).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.status import Status
from generators.tables import age_recip_table

from ..common.arith import popcount, prefix_sums
from .check import CoreComponent, status_state
from .importance import sums_layout
from ..topk import TopK
from ..topk.layouts import out_layout as topk_out_layout

__all__ = ["TokenSelect", "select_cmd_layout", "imp_word_layout", "status_layout"]



def select_cmd_layout(cfg: SpAttenConfig) -> data.StructLayout:
    c, t = cfg.core, cfg.topk
    lb = max(1, (c.layers - 1).bit_length())
    return data.StructLayout({
        "n": unsigned(t.count_bits),          # positions 0..n-1 (1..capacity)
        "keep": unsigned(t.count_bits),
        "newest": unsigned(t.index_bits),
        "sinks": unsigned(t.count_bits),
        "recent": unsigned(t.count_bits),
        "age_norm": unsigned(1),
        "all": unsigned(1),                   # every position below n is a candidate
        "src": unsigned(lb),
        "add_newest": unsigned(1),
        "has_upper": unsigned(1),
        "upper": unsigned(lb),
        "dst": unsigned(lb),
        "merge": unsigned(1),                 # MERGE instead of select (see the docstring)
        "nowrite": unsigned(1),               # check only: no keep list, no mask change
    })


def imp_word_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A write of one importance word: ``P`` accumulators at word address ``addr``."""
    t = cfg.topk
    return data.StructLayout({
        "addr": unsigned(max(1, (t.rows - 1).bit_length())),
        "data": data.ArrayLayout(unsigned(cfg.core.imp_bits), t.lanes),
    })


def status_layout(cfg: SpAttenConfig) -> data.StructLayout:
    return data.StructLayout({"code": Status,
                              "candidates": unsigned(cfg.topk.count_bits)})


class TokenSelect(CoreComponent):
    """Cascade token selection for one layer per command (see the module docstring).

    Members
    -------
    imp_in : ``In(stream.Signature(imp_word_layout(cfg)))``: importance word writes (taken
        between commands)
    sums : ``In(stream.Signature(importance.sums_layout(cfg)))``: slot sums for a merge
    cmd : ``In(stream.Signature(select_cmd_layout(cfg)))``
    keep : ``Out(stream.Signature(topk.layouts.out_layout(cfg.select_topk)))``: the kept
        positions (``index``) and their scores, in order
    status : ``Out(stream.Signature(status_layout(cfg)))``
    """

    def _ports(self, cfg: SpAttenConfig) -> dict:
        return {
            "imp_in": In(stream.Signature(imp_word_layout(cfg))),
            "sums": In(stream.Signature(sums_layout(cfg))),
            "cmd": In(stream.Signature(select_cmd_layout(cfg))),
            "keep": Out(stream.Signature(topk_out_layout(cfg.select_topk))),
            "status": Out(stream.Signature(status_layout(cfg))),
        }

    # Elaboration: the memories, the command state, the scores pass's two stages (read,
    # score) and the command FSM, each built by a private method below; the merge and the
    # write pass add their own states to the FSM.
    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = TopK(self._cfg.select_topk)
        mem = self._memories(m)
        s = self._command_state()

        # ---- importance writes, between commands -----------------------------------------
        m.d.comb += [mem.imp_w.addr.eq(self.imp_in.payload.addr),
                     mem.imp_w.data.eq(self.imp_in.payload.data),
                     mem.imp_w.en.eq(self.imp_in.valid & ~s.busy),
                     self.imp_in.ready.eq(~s.busy)]

        rd = self._scores_read(m, s, mem)
        lanes = self._scores_lanes(m, s, mem, rd)
        with m.FSM():
            self._idle_state(m, s, rd)
            self._merge_states(m, s.cmd, s.w, s.words, s.cands, mem.imp_r, mem.imp_w,
                               mem.src_r)
            self._scores_state(m, s, mem, rd, lanes, engine.i)
            self._check_state(m, s, engine.i)
            with m.State("WRITE"):
                with m.If(self._write_pass(m, s.cmd, s.code, s.w, s.words, engine.o,
                                           mem.mask_w, self._cfg.topk.rows)):
                    m.next = "STATUS"
            with m.State("STATUS"):
                status_state(m, self.status, s.code, s.cands, s.busy)
        return m

    def _memories(self, m):
        """``imp`` (``P`` accumulators a word), the masks (two copies) and the age
        reciprocal ROM banks."""
        cfg = self._cfg
        c, t = cfg.core, cfg.topk
        P, W, IB, B = t.lanes, t.rows, c.imp_bits, c.age_frac_bits
        m.submodules.imp = imp = Memory(shape=data.ArrayLayout(unsigned(IB), P), depth=W,
                                        init=[])
        # Two copies of the masks, written together, one read port each (the candidate and
        # upper-layer masks are read in the same cycle): two one-read-one-write memories
        # map to SRAM macros, one memory with two read ports would become flip-flops.
        m.submodules.masks = masks = Memory(shape=unsigned(P), depth=c.layers * W, init=[])
        m.submodules.masks_up = masks_up = Memory(shape=unsigned(P), depth=c.layers * W,
                                                  init=[])
        imp_w, imp_r = imp.write_port(), imp.read_port()
        mask_w, mask_w_up = masks.write_port(), masks_up.write_port()
        m.d.comb += [mask_w_up.addr.eq(mask_w.addr), mask_w_up.data.eq(mask_w.data),
                     mask_w_up.en.eq(mask_w.en)]
        src_r, up_r = masks.read_port(), masks_up.read_port()
        # Age reciprocals banked by age mod P: bank i holds R[a] for a = i, i + P, ... at
        # address a // P, so the P consecutive ages of one word hit every bank once.
        table = age_recip_table(cfg)
        banks = []
        for i in range(P):
            init = list(table[i::P])
            m.submodules[f"recip{i}"] = bank = Memory(shape=unsigned(B + 1), depth=len(init),
                                                      init=init)
            banks.append(bank.read_port())
        return SimpleNamespace(imp_w=imp_w, imp_r=imp_r, mask_w=mask_w, src_r=src_r,
                               up_r=up_r, banks=banks)

    def _command_state(self):
        """The command being run and its counters."""
        cfg = self._cfg
        t = cfg.topk
        W = t.rows
        return SimpleNamespace(
            cmd=Signal(select_cmd_layout(cfg), name="cmd"),
            busy=Signal(name="busy"),
            words=Signal(range(W + 1), name="words"),  # ceil(n / P)
            w=Signal(range(W + 1), name="w"),  # next word to read (scores) or write (masks)
            cands=Signal(t.count_bits + 1, name="cands"),
            prot=Signal(t.count_bits + 1, name="prot"),
            code=Signal(Status, name="code"),
        )

    def _scores_read(self, m, s, mem):
        """Scores pass, read stage: the addresses of word ``w`` (``imp``, both masks, and
        per bank the age reciprocal of the lane whose age falls in it); ``rd_*`` name the
        word whose read data is on the ports."""
        t = self._cfg.topk
        P, W = t.lanes, t.rows
        lane_bits = (P - 1).bit_length()
        cmd, w = s.cmd, s.w
        m.d.comb += [mem.imp_r.addr.eq(w), mem.src_r.addr.eq(cmd.src * W + w),
                     mem.up_r.addr.eq(cmd.upper * W + w)]
        age_w = t.count_bits + 3
        lane_age = [Signal(signed(age_w), name=f"age{j}") for j in range(P)]
        for j in range(P):
            m.d.comb += lane_age[j].eq(cmd.newest - w * P - j + 1)
        for i, bank in enumerate(mem.banks):
            addr = Const(0, len(bank.addr))
            for j in range(P):
                hit = (lane_age[j].as_unsigned()[:lane_bits] == i) if lane_bits else Const(1)
                addr = Mux(hit, (lane_age[j] >> lane_bits).as_unsigned()[:len(bank.addr)],
                           addr)
            m.d.comb += bank.addr.eq(addr)
        return SimpleNamespace(
            lane_age=lane_age,
            rd_valid=Signal(name="rd_valid"),  # read data on the ports is word rd_w
            rd_w=Signal(range(W + 1), name="rd_w"),
            rd_last=Signal(name="rd_last"),
            bank_sel=[Signal(range(P), name=f"bank_sel{j}") for j in range(P)],
        )

    def _scores_lanes(self, m, s, mem, rd):
        """Scores pass, score stage (word ``rd_w``): each lane's candidate and protected
        flags and its top-k score."""
        cfg = self._cfg
        P, IB, B = cfg.topk.lanes, cfg.core.imp_bits, cfg.core.age_frac_bits
        cmd, imp_r = s.cmd, mem.imp_r
        lane_cand = [Signal(name=f"cand{j}") for j in range(P)]
        lane_prot = [Signal(name=f"prot{j}") for j in range(P)]
        scores = [Signal(signed(cfg.select_topk.score.width), name=f"score{j}")
                  for j in range(P)]
        for j in range(P):
            pos = rd.rd_w * P + j
            listed = Mux(cmd.all, 1,
                         mem.src_r.data[j] | (cmd.add_newest & (pos == cmd.newest)))
            cand = (pos < cmd.n) & listed & (~cmd.has_upper | mem.up_r.data[j])
            recip = Const(0, B + 1)
            for i, bank in enumerate(mem.banks):
                recip = Mux(rd.bank_sel[j] == i, bank.data, recip)
            normed = (imp_r.data[j] * recip + (1 << (B - 1))) >> B
            m.d.comb += [
                lane_cand[j].eq(cand),
                lane_prot[j].eq(cand & ((pos < cmd.sinks) | (pos + cmd.recent > cmd.newest))),
                scores[j].eq(Mux(lane_prot[j], 1 << IB,
                                 Mux(cand, Mux(cmd.age_norm, normed, imp_r.data[j]), -1))),
            ]
        return SimpleNamespace(cand=lane_cand, prot=lane_prot, scores=scores)

    def _idle_state(self, m, s, rd):
        """IDLE: take a command (not while an importance write is offered)."""
        P = self._cfg.topk.lanes
        lane_bits = (P - 1).bit_length()
        with m.State("IDLE"):
            m.d.comb += self.cmd.ready.eq(~self.imp_in.valid)
            with m.If(self.cmd.valid & ~self.imp_in.valid):
                m.d.sync += [s.cmd.eq(self.cmd.payload), s.w.eq(0), s.cands.eq(0),
                             s.prot.eq(0),
                             s.words.eq((self.cmd.payload.n + P - 1) >> lane_bits),
                             s.busy.eq(1), rd.rd_valid.eq(0)]
                with m.If(self.cmd.payload.merge):
                    m.d.sync += s.code.eq(Status.OK)
                    m.next = "M_READ"
                with m.Else():
                    m.next = "SCORES"

    def _scores_state(self, m, s, mem, rd, lanes, e):
        """SCORES: read word ``w`` while the engine takes the scores of word ``rd_w``; the
        whole pass advances only when the engine's input is free or taken."""
        P = self._cfg.topk.lanes
        lane_bits = (P - 1).bit_length()
        cmd, w = s.cmd, s.w
        advance = ~e.valid | e.ready
        with m.State("SCORES"):
            m.d.comb += [mem.imp_r.en.eq(advance), mem.src_r.en.eq(advance),
                         mem.up_r.en.eq(advance)]
            for bank in mem.banks:
                m.d.comb += bank.en.eq(advance)
            with m.If(advance):
                m.d.sync += e.valid.eq(rd.rd_valid)
                with m.If(rd.rd_valid):
                    m.d.sync += [e.payload.k.eq(cmd.keep), e.payload.last.eq(rd.rd_last),
                                 e.payload.count.eq(Mux(rd.rd_last, cmd.n - rd.rd_w * P, P)),
                                 s.cands.eq(s.cands + popcount(lanes.cand)),
                                 s.prot.eq(s.prot + popcount(lanes.prot))]
                    m.d.sync += [e.payload.data[j].eq(lanes.scores[j]) for j in range(P)]
                with m.If(w < s.words):
                    m.d.sync += [rd.rd_valid.eq(1), rd.rd_w.eq(w),
                                 rd.rd_last.eq(w == s.words - 1), w.eq(w + 1)]
                    m.d.sync += [rd.bank_sel[j].eq(rd.lane_age[j].as_unsigned()[:lane_bits]
                                                   if lane_bits else 0) for j in range(P)]
                with m.Else():
                    m.d.sync += rd.rd_valid.eq(0)
                    with m.If(rd.rd_valid):
                        m.next = "CHECK"

    def _check_state(self, m, s, e):
        """CHECK: once the engine has the last beat, the command's status code."""
        cmd = s.cmd
        with m.State("CHECK"):
            with m.If(e.ready | ~e.valid):
                # Every word of mask dst is rewritten, so no bit above n survives from an
                # earlier, longer sequence.
                m.d.sync += [e.valid.eq(0), s.w.eq(0), s.words.eq(self._cfg.topk.rows)]
                with m.If(cmd.age_norm & (cmd.n != cmd.newest + 1)):
                    m.d.sync += s.code.eq(Status.PARAMS)
                with m.Elif((cmd.keep == 0) | (cmd.keep > s.cands)):
                    m.d.sync += s.code.eq(Status.KEEP_RANGE)
                with m.Elif(s.prot > cmd.keep):
                    m.d.sync += s.code.eq(Status.POLICY)
                with m.Else():
                    m.d.sync += s.code.eq(Status.OK)
                m.next = "WRITE"

    def _merge_states(self, m, cmd, w, words, merged, imp_r, imp_w, src_r):
        """States M_READ, M_WORD and M_TAIL: slot sums into ``imp`` at the mask's positions."""
        cfg = self._cfg
        P, A, IB = cfg.topk.lanes, cfg.attn.lanes, cfg.core.imp_bits
        top = (1 << IB) - 1
        BUF = P + A
        buf = [Signal(IB, name=f"mbuf{j}") for j in range(BUF)]
        fill = Signal(range(BUF + 1))
        seen_last = Signal()
        mask = src_r.data
        need = popcount([mask[j] for j in range(P)])
        offs = prefix_sums([mask[j] for j in range(P)])   # slot of lane j within the word
        new = Signal(data.ArrayLayout(unsigned(IB), P))
        for j in range(P):
            val = buf[0]
            for b in range(1, P):
                val = Mux(offs[j] == b, buf[b], val)
            total = imp_r.data[j] + val
            m.d.comb += new[j].eq(Mux(mask[j], Mux(total > top, top, total), imp_r.data[j]))
        with m.State("M_READ"):
            m.d.comb += [imp_r.en.eq(1), src_r.en.eq(1)]
            with m.If(w == words):
                m.next = "M_TAIL"
            with m.Else():
                m.next = "M_WORD"
        with m.State("M_WORD"):
            with m.If(fill >= need):
                m.d.comb += [imp_w.addr.eq(w), imp_w.data.eq(new), imp_w.en.eq(1)]
                for b in range(BUF):  # drop the need slots just used
                    shifted = Const(0, IB)
                    for d in range(P + 1):
                        if b + d < BUF:
                            shifted = Mux(need == d, buf[b + d], shifted)
                    m.d.sync += buf[b].eq(shifted)
                m.d.sync += [fill.eq(fill - need), merged.eq(merged + need), w.eq(w + 1)]
                m.next = "M_READ"
            with m.Elif(~seen_last):
                self._load_sums(m, buf, fill, seen_last)
        with m.State("M_TAIL"):  # the sums stream's last beat, if not yet taken
            with m.If(seen_last):
                m.d.sync += [seen_last.eq(0), fill.eq(0)]
                m.next = "STATUS"
            with m.Else():
                self._load_sums(m, buf, fill, seen_last)

    def _load_sums(self, m, buf, fill, seen_last):
        """Take one ``sums`` beat into ``buf`` at ``fill``."""
        A = self._cfg.attn.lanes
        i = self.sums
        m.d.comb += i.ready.eq(1)
        with m.If(i.valid):
            for b in range(len(buf)):
                v = buf[b]
                for j in range(A):
                    v = Mux((fill + j == b) & (j < i.payload.count), i.payload.data[j], v)
                m.d.sync += buf[b].eq(v)
            m.d.sync += fill.eq(fill + i.payload.count)
            with m.If(i.payload.last):
                m.d.sync += seen_last.eq(1)

    def _write_pass(self, m, cmd, code, w, words, o, mask_w, W):
        """Kept indices → ``keep`` and mask ``dst``; returns the "all done" condition.

        Each cycle either takes the engine's beat (when all its indices are in words up to
        ``w``) or writes word ``w`` (its bits so far plus the beat's bits in it) and moves
        on; after the last beat the remaining words are written with what they hold."""
        P = self._cfg.topk.lanes
        lane_bits = (P - 1).bit_length()
        bits = Signal(P)                    # bits of word w from beats already taken
        taken_last = Signal()               # the engine's last beat has been taken
        ok = (code == Status.OK) & ~cmd.nowrite
        lo = w * P
        in_word = Signal(P)
        for j in range(P):
            idx = o.payload.index[j]
            m.d.comb += in_word[j].eq((j < o.payload.count) & (idx >= lo) & (idx < lo + P))
        beat_bits = Signal(P)
        m.d.comb += beat_bits.eq(0)
        for j in range(P):
            with m.If(in_word[j]):
                m.d.comb += beat_bits.bit_select(
                    (o.payload.index[j] - lo).as_unsigned()[:max(1, lane_bits)], 1).eq(1)
        last_idx = o.payload.index[0]
        for j in range(1, P):
            last_idx = Mux(o.payload.count > j, o.payload.index[j], last_idx)
        beat_in = o.valid & ~taken_last
        fits = beat_in & ((o.payload.count == 0) | (last_idx < lo + P))
        take = Mux(ok, fits & (w < words), beat_in)  # on an error: drain every beat
        m.d.comb += [self.keep.payload.eq(o.payload), self.keep.valid.eq(take & ok),
                     o.ready.eq(take & (self.keep.ready | ~ok))]
        with m.If(o.valid & o.ready):
            m.d.sync += bits.eq(bits | beat_bits)
            with m.If(o.payload.last):
                m.d.sync += taken_last.eq(1)
        write = ok & (w < words) & ~fits & (taken_last | beat_in)
        m.d.comb += [mask_w.addr.eq(cmd.dst * W + w),
                     mask_w.data.eq(bits | Mux(beat_in, beat_bits, 0)),
                     mask_w.en.eq(write)]
        with m.If(write):
            m.d.sync += [bits.eq(0), w.eq(w + 1)]
        done = taken_last & (~ok | (w == words))
        with m.If(done):
            m.d.sync += [taken_last.eq(0), bits.eq(0)]
        return done
