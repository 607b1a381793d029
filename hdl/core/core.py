"""The SpAtten core: the head pipeline, cascade token and head pruning decided in hardware,
and the DRAM traffic of only what survives, behind an AXI4-Lite host interface and one AXI4
manager port.

Spec: ``docs/core.md``; golden model :func:`sim.golden.core.layer_step` (which
:func:`~sim.golden.core.summarize` and :func:`~sim.golden.core.decode_step` run layer by
layer); DRAM layout :mod:`generators.dram` (:func:`~generators.dram.row_addr`,
:func:`~generators.dram.keeplist_image`, :func:`~generators.dram.counters_image`).

The core is a composition of components, every one verified on its own; data moves between
them on ``amaranth.lib.stream`` interfaces (their layouts in :mod:`hdl.core.layouts`), and a
few levels (the running descriptor, ``busy`` and ``idle`` flags, the DMA's counters) are
plain members::

    HostRegs ──desc──► LayerController ──done──► HostRegs
    LayerController ◄─► HeadImportance, TokenSelect, SlotAccumulator (commands, status)
    LayerController ──job──► Job ──done──► LayerController
    LayerController ──header, record──► WriteBack
    TokenSelect ──keep──► KeepList ──► WriteBack ──wcmd, wdata──► Dma
    Job ──sweep──► KeyLoader ──req──► ReadRouter ──krows──► KeyLoader ──words──► Job
    Job ──fetch──► QueryFetch ──req──► ReadRouter ──qrows──► QueryFetch ──queries──► Job
    KeyLoader, QueryFetch, VServer ──slot──► KeepList ──position──► (each its own copy)
    Job ──q, k──► Head ──dec──► Job
    Job ──passes──► VServer ◄─vreq, v─► Head;  VServer ──req──► ReadRouter ──vrows──► VServer
    Job ──outs──► OutputPath ◄──o── Head;  OutputPath ──imp──► HeadImportance
    OutputPath ──row──► WriteBack
    ReadRouter ──rcmd──► Dma ──rdata──► ReadRouter
    Head ──p──► SlotAccumulator ──sums──► TokenSelect

- :class:`~hdl.core.regs.HostRegs`: the descriptor of one layer; :class:`~hdl.core.axi.Dma`:
  rows over AXI4; :class:`~hdl.core.select.TokenSelect`, :class:`~hdl.core.heads.
  HeadImportance`, :class:`~hdl.core.importance.SlotAccumulator`: importance and selection;
  :class:`~hdl.attn.head.Head`: one query of one head per pass.
- :class:`~hdl.core.layer.LayerController`: one layer per START (clear, select, header,
  jobs, drain, merge, counter record, done).
- :class:`~hdl.core.reads.ReadRouter`: the read port shared by the K, query and V readers,
  rows routed back by a tag queue.
- :class:`~hdl.core.keeplist.KeepList`: the kept positions, stored for three readers.
- :class:`~hdl.core.job.Job` with :class:`~hdl.core.keys.KeyLoader` (K rows into the K
  buffer) and :class:`~hdl.core.queries.QueryFetch` (queries read ahead): the passes of one
  head.
- :class:`~hdl.core.vserve.VServer`: the head's V requests answered from the V banks.
- :class:`~hdl.core.output.OutputPath`: output vectors to rows and to head importance.
- :class:`~hdl.core.writeback.WriteBack`: the keep list, the output rows and the counter
  record on the DMA's write port.

Raises
------
TypeError
    if ``cfg`` is not a :class:`~generators.config.SpAttenConfig`.
ConfigError
    if the head and core parts do not fit together, or a keep-list beat of ``topk.lanes``
    positions is wider than the bus, or the keep-list header is.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from generators.config import ConfigError, SpAttenConfig
from generators.dram import POSITION_BITS, READ_PLANES, keeplist_header

from ..attn.head import Head
from .axi import Dma, axi4_signature
from .check import core_config
from .heads import HeadImportance
from .importance import SlotAccumulator
from .job import PASS_FIFO_DEPTH, Job
from .keeplist import KeepList
from .keys import KeyLoader
from .layer import LayerController
from .output import OutputPath
from .queries import QUERY_FIFO_DEPTH, QueryFetch
from .reads import ReadRouter
from .regs import HostRegs, axil_signature
from .select import TokenSelect
from .vserve import VServer
from .writeback import WriteBack

__all__ = ["SpAttenCore", "KINDS", "QUERY_FIFO_DEPTH", "PASS_FIFO_DEPTH"]

# Read kinds: which buffer a returning row lands in (hdl.core.layouts.ReadKind).
KINDS = READ_PLANES


def _check(cfg: SpAttenConfig) -> SpAttenConfig:
    cfg = core_config(cfg)
    bus = 8 * cfg.core.bus_bytes
    if POSITION_BITS * cfg.topk.lanes > bus:
        raise ConfigError(f"topk.lanes ({cfg.topk.lanes}) {POSITION_BITS}-bit keep-list "
                          f"positions must fit one bus beat ({bus} bits)")
    header = max(lsb + w for _, lsb, w in keeplist_header(cfg))
    if header > bus:
        raise ConfigError(f"the keep-list header ({header} bits with core.heads = "
                          f"{cfg.core.heads}) must fit one bus beat ({bus} bits)")
    if cfg.topk.capacity > 1 << POSITION_BITS:
        raise ConfigError(f"topk.capacity must be at most {1 << POSITION_BITS} "
                          f"({POSITION_BITS}-bit positions), not {cfg.topk.capacity}")
    return cfg


class SpAttenCore(wiring.Component):
    """The SpAtten accelerator core (see the module docstring): one layer per START.

    Bit-exact with :func:`sim.golden.core.layer_step` (outputs, keep list, counter record,
    status; tested end to end in ``tests/rtl/test_core_cocotb.py``).

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
        m = Module()
        # the blocks (their submodule names are the synthesis breakdown's parts)
        m.submodules.regs = regs = HostRegs(cfg)
        m.submodules.dma = dma = Dma(cfg)
        m.submodules.select = sel = TokenSelect(cfg)
        m.submodules.heads = hi = HeadImportance(cfg)
        m.submodules.slots = acc = SlotAccumulator(cfg)
        m.submodules.head = head = Head(cfg)
        # the controller
        m.submodules.layer = layer = LayerController(cfg)
        m.submodules.reads = reads = ReadRouter(cfg)
        m.submodules.keeplist = kl = KeepList(cfg)
        m.submodules.keys = keys = KeyLoader(cfg)
        m.submodules.queries = queries = QueryFetch(cfg)
        m.submodules.job = job = Job(cfg)
        m.submodules.vserve = vs = VServer(cfg)
        m.submodules.output = outp = OutputPath(cfg)
        m.submodules.writeback = wb = WriteBack(cfg)

        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        wiring.connect(m, dma.m_axi, wiring.flipped(self.m_axi))
        self._layer(m, layer, regs, dma, sel, hi, acc, job, wb, vs, outp)
        # every reader gets the running descriptor
        for unit in (keys, queries, job, vs, outp, wb):
            m.d.comb += unit.desc.eq(layer.params)

        # reads: three requesters, rows routed back to their buffers
        wiring.connect(m, reads.rcmd, dma.rcmd)
        wiring.connect(m, dma.rdata, reads.rdata)
        wiring.connect(m, vs.req, reads.v)
        wiring.connect(m, keys.req, reads.k)
        wiring.connect(m, queries.req, reads.q)
        wiring.connect(m, reads.krows, keys.rows)
        wiring.connect(m, reads.qrows, queries.rows)
        wiring.connect(m, reads.vrows, vs.rows)
        # the keep list: from the selection, stored for the readers, on to DRAM
        wiring.connect(m, sel.keep, kl.i)
        wiring.connect(m, kl.o, wb.keep)
        wiring.connect(m, keys.keep, kl.k)
        wiring.connect(m, queries.keep, kl.q)
        wiring.connect(m, vs.keep, kl.v)
        # the job: K sweeps, query reads, passes to the head
        wiring.connect(m, job.sweep, keys.cmd)
        wiring.connect(m, keys.done, job.swept)
        wiring.connect(m, job.keys, keys.words)
        wiring.connect(m, job.fetch, queries.cmd)
        wiring.connect(m, queries.o, job.queries)
        wiring.connect(m, job.q, head.q)
        wiring.connect(m, job.k, head.k)
        wiring.connect(m, head.dec, job.dec)
        # the head's probabilities, V requests and outputs
        wiring.connect(m, head.p, acc.p)
        wiring.connect(m, acc.sums, sel.sums)
        wiring.connect(m, job.passes, vs.passes)
        wiring.connect(m, head.vreq, vs.vreq)
        wiring.connect(m, vs.v, head.v)
        wiring.connect(m, head.o, outp.o)
        wiring.connect(m, job.outs, outp.tags)
        wiring.connect(m, outp.imp, hi.o)
        # writes
        wiring.connect(m, outp.row, wb.rows)
        wiring.connect(m, wb.wcmd, dma.wcmd)
        wiring.connect(m, wb.wdata, dma.wdata)
        return m

    def _layer(self, m, layer, regs, dma, sel, hi, acc, job, wb, vs, outp):
        """The layer controller's streams and levels."""
        ax = self.m_axi
        wiring.connect(m, regs.desc, layer.desc)
        wiring.connect(m, layer.done, regs.done)
        wiring.connect(m, layer.head_cmd, hi.cmd)
        wiring.connect(m, hi.keep, layer.head_keep)
        wiring.connect(m, hi.status, layer.head_status)
        wiring.connect(m, layer.token_cmd, sel.cmd)
        wiring.connect(m, sel.status, layer.token_status)
        wiring.connect(m, layer.imp, sel.imp_in)
        wiring.connect(m, layer.drain, acc.drain)
        wiring.connect(m, layer.job, job.start)
        wiring.connect(m, job.done, layer.job_done)
        wiring.connect(m, layer.header, wb.header)
        wiring.connect(m, layer.record, wb.record)
        m.d.comb += [
            regs.bytes_read.eq(layer.bytes_read), regs.bytes_written.eq(layer.bytes_written),
            regs.cycles.eq(layer.cycles),
            layer.dram_read.eq(dma.bytes_read), layer.dram_written.eq(dma.bytes_written),
            layer.dram_busy.eq(dma.busy),
            # an AXI4 response other than OKAY: the layer ends with BUS
            layer.bus_error.eq((ax.rvalid & ax.rready & (ax.rresp != 0))
                               | (ax.bvalid & ax.bready & (ax.bresp != 0))),
            hi.clear.eq(layer.head_clear),
            layer.keeplist_busy.eq(wb.keeplist_busy), layer.vserve_idle.eq(vs.idle),
            layer.row_written.eq(outp.written),
            self.busy.eq(layer.busy)]
