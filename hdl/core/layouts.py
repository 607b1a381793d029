"""Payload layouts and ports shared by the components of the core's controller
(:class:`~hdl.core.core.SpAttenCore`): one definition for the hardware and the testbenches.

The DRAM facts come from the spec (:mod:`generators.dram`): the planes a read can target
(:data:`~generators.dram.READ_PLANES`, :class:`ReadKind`), the row sizes and strides
(:func:`row_address`), the keep-list header (:func:`keeplist_header_layout`) and the counter
record (:func:`counter_record_layout`).
"""

from __future__ import annotations

from amaranth.hdl import Mux, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from generators.config import SpAttenConfig
from generators.dram import (COUNTER_INFO, COUNTER_RECORD, READ_PLANES, keeplist_header,
                             plane_bits, row_bytes, row_stride)
from generators.numerics import ceil_log2

from ..attn.layouts import key_layout

__all__ = ["ReadKind", "head_bits", "row_address", "queries_per_job", "read_req_layout",
           "row_layout", "row_data_bits", "query_row_layout", "job_layout", "sweep_layout",
           "pass_layout", "out_tag_layout", "write_row_layout", "keeplist_header_layout",
           "counter_info_layout", "counter_record_layout", "slot_port_signature",
           "key_port_signature"]


class ReadKind(enum.Enum, shape=3):
    """The plane a DRAM row read targets, in :data:`generators.dram.READ_PLANES` order: it
    decides the row's length and the buffer the row lands in."""

    Q = 0
    KMSB = 1
    KLSB = 2
    VMSB = 3
    VLSB = 4


assert tuple(k.name.lower() for k in ReadKind) == READ_PLANES


def head_bits(cfg: SpAttenConfig) -> int:
    """Width of a head number (``hdl.core.heads.head_out_layout``'s ``head``)."""
    return max(1, (cfg.core.heads - 1).bit_length())


def row_address(cfg: SpAttenConfig, plane_or_bits, base, head, pos):
    """``base + (head * topk.capacity + pos) * stride`` as a value of ``core.addr_bits``
    (:func:`generators.dram.row_addr`; the stride is a power of two, so a shift)."""
    sh = ceil_log2(row_stride(cfg, plane_or_bits))
    return (base + ((head * cfg.topk.capacity + pos) << sh))[:cfg.core.addr_bits]


def queries_per_job(cfg: SpAttenConfig, desc):
    """Queries of one job: every kept token in summarization, the newest one in generation
    (a ``count_bits`` value; ``token_keep`` fits it in every layer that runs jobs)."""
    return Mux(desc.mode, 1, desc.token_keep)[:cfg.topk.count_bits]


def row_data_bits(cfg: SpAttenConfig) -> int:
    """Bits of the longest row the core reads: whole bus beats."""
    return max(row_bytes(cfg, plane_bits(cfg, p)) for p in READ_PLANES) * 8


def read_req_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A read of one DRAM row: its byte address, its plane and the slot (keep-list index, or
    for a query its position) that says where it lands."""
    return data.StructLayout({"addr": unsigned(cfg.core.addr_bits), "kind": ReadKind,
                              "slot": unsigned(cfg.topk.index_bits)})


def row_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A row that has landed: the request's ``kind`` and ``slot``, and the row's bits
    (element 0 in the least significant bits, :func:`generators.dram.pack_row`), padded to
    :func:`row_data_bits`."""
    return data.StructLayout({"kind": ReadKind, "slot": unsigned(cfg.topk.index_bits),
                              "data": unsigned(row_data_bits(cfg))})


def query_row_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A query read ahead: its vector and its position."""
    a = cfg.attn
    return data.StructLayout({"q": data.ArrayLayout(signed(a.q_bits), a.head_dim),
                              "pos": unsigned(cfg.topk.index_bits)})


def job_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """The head a job (or its query reads) runs for."""
    return data.StructLayout({"head": unsigned(head_bits(cfg))})


def sweep_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """A K row sweep: every kept slot's row of plane ``kind`` (``KMSB`` or ``KLSB``) for
    ``head``."""
    return data.StructLayout({"kind": ReadKind, "head": unsigned(head_bits(cfg))})


def pass_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """An accepted pass sent to the head, for the V server: the query's position, whether
    it ran at full precision (its V LSB planes are needed), its head and whether it is the
    job's first pass (the per-job record of loaded V rows starts empty)."""
    return data.StructLayout({"pos": unsigned(cfg.topk.index_bits), "full": unsigned(1),
                              "head": unsigned(head_bits(cfg)), "first": unsigned(1)})


def out_tag_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """Where an accepted pass's output row goes: its query's position and its head."""
    return data.StructLayout({"pos": unsigned(cfg.topk.index_bits),
                              "head": unsigned(head_bits(cfg))})


def write_row_layout(cfg: SpAttenConfig) -> data.StructLayout:
    """An output row to write: its byte address and its bits (whole bus beats)."""
    return data.StructLayout({"addr": unsigned(cfg.core.addr_bits),
                              "data": unsigned(row_bytes(cfg, "out") * 8)})


def keeplist_header_layout(cfg: SpAttenConfig) -> data.FlexibleLayout:
    """The keep list's header beat (:func:`generators.dram.keeplist_header`): one bus beat,
    unnamed bits zero."""
    return data.FlexibleLayout(8 * cfg.core.bus_bytes, {
        f: data.Field(unsigned(w), lsb) for f, lsb, w in keeplist_header(cfg)})


def counter_info_layout() -> data.FlexibleLayout:
    """The info word of a counter record (:data:`generators.dram.COUNTER_INFO`)."""
    return data.FlexibleLayout(64, {f: data.Field(unsigned(w), lsb)
                                    for f, lsb, w in COUNTER_INFO})


def counter_record_layout() -> data.StructLayout:
    """A counter record (:data:`generators.dram.COUNTER_RECORD`): 64-bit words, word 0 in
    the least significant bits, the last one the info word."""
    return data.StructLayout({w: counter_info_layout() if w == "info" else unsigned(64)
                              for w in COUNTER_RECORD})


def slot_port_signature(cfg: SpAttenConfig) -> wiring.Signature:
    """A read port of a keep-list copy, as its reader sees it: ``slot`` presented with
    ``en`` high, the kept position ``pos`` is valid the next cycle and held while ``en`` is
    low (a synchronous memory read)."""
    ib = cfg.topk.index_bits
    return wiring.Signature({"slot": Out(ib), "en": Out(1), "pos": In(ib)})


def key_port_signature(cfg: SpAttenConfig) -> wiring.Signature:
    """A read port of the K buffer, as its reader sees it: word ``addr`` (``keys_per_cycle``
    slots) presented with ``en`` high, its MSB and LSB planes are valid the next cycle and
    held while ``en`` is low. The planes are laid out as ``hdl.attn.layouts.key_layout``'s
    ``msb`` and ``lsb``."""
    a, t = cfg.attn, cfg.topk
    k = key_layout(cfg)
    words = -(-t.capacity // a.keys_per_cycle)
    return wiring.Signature({"addr": Out(range(words + 1)), "en": Out(1),
                             "msb": In(k.members["msb"]), "lsb": In(k.members["lsb"])})
