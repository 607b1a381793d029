# amaranth: UnusedElaboratable=no
"""hdl.blocks.emit's Verilog cache: a hit gives the same text without elaborating, a corrupt
entry is rebuilt, the key follows the block, the config and the sources, and
SPATTEN_VERILOG_CACHE=0 keeps nothing."""

import pytest

import hdl.blocks as blocks
from generators.presets import PRESETS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "CACHE", tmp_path / "cache")
    monkeypatch.delenv("SPATTEN_VERILOG_CACHE", raising=False)
    return tmp_path / "cache"


def _entries(cache):
    return sorted(cache.rglob("*.v"))


def test_hit_skips_elaboration(cache, tmp_path, monkeypatch):
    cfg = PRESETS["ci"]
    first = blocks.emit(cfg, "topk", tmp_path / "a")
    assert len(_entries(cache)) == 1

    def refuse(*_):
        raise AssertionError("elaborated although the cache holds this Verilog")

    monkeypatch.setattr(blocks, "build_component", refuse)
    second = blocks.emit(cfg, "topk", tmp_path / "b")
    assert second.sha256 == first.sha256
    assert second.verilog.read_text() == first.verilog.read_text()


def test_corrupt_entry_is_rebuilt(cache, tmp_path):
    cfg = PRESETS["ci"]
    good = blocks.emit(cfg, "importance", tmp_path / "a")
    (entry,) = _entries(cache)
    entry.write_text(entry.read_text()[:100])          # a truncated entry
    again = blocks.emit(cfg, "importance", tmp_path / "b")
    assert again.sha256 == good.sha256
    assert entry.read_text() == good.verilog.read_text()


def test_key_follows_block_config_and_sources(monkeypatch):
    ci, eighth = PRESETS["ci"], PRESETS["eighth"]
    keys = {blocks.verilog_key(ci, "topk"), blocks.verilog_key(ci, "head"),
            blocks.verilog_key(eighth, "topk")}
    assert len(keys) == 3
    before = blocks.verilog_key(ci, "topk")
    monkeypatch.setattr(blocks, "_sources_digest", lambda: "an edited source tree")
    assert blocks.verilog_key(ci, "topk") != before


def test_cache_off_keeps_nothing(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SPATTEN_VERILOG_CACHE", "0")
    blocks.emit(PRESETS["ci"], "importance", tmp_path / "a")
    assert _entries(cache) == []
