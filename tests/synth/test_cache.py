"""The synthesis result cache: reused on the same key, a corrupt entry named and rebuilt."""

import json

import pytest

from generators.presets import PRESETS
from synth.cache import read_cached, run_synth_block, write_json_atomic


@pytest.mark.parametrize("text", ["", '{"metrics": {"cells": 1}', "[1, 2]", "\x00\x01"])
def test_corrupt_entry_is_named_and_dropped(tmp_path, text):
    path = tmp_path / "result.json"
    path.write_text(text)
    said = []
    assert read_cached(path, {"k": 1}, said.append) is None
    assert len(said) == 1 and str(path) in said[0] and "rebuilding" in said[0]


def test_entry_is_reused_only_with_its_key(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"key": {"k": 1}, "metrics": {"cells": 3}, "yosys": "y"})
    assert read_cached(path, {"k": 1}, print)["metrics"] == {"cells": 3}
    assert read_cached(path, {"k": 2}, print) is None
    assert not list(tmp_path.glob(".*tmp"))         # the temporary file was renamed


@pytest.mark.synth
def test_truncated_result_is_rebuilt(tmp_path):
    cfg = PRESETS["ci"]
    first = run_synth_block(cfg, "topk", "cmos", tmp_path)
    dest = tmp_path / "cmos" / "result.json"
    said = []
    again = run_synth_block(cfg, "topk", "cmos", tmp_path, progress=said.append)
    assert any("reusing" in s for s in said) and again["transistors"] == first["transistors"]
    dest.write_text(dest.read_text()[:100])          # a run killed mid-write, before atomics
    said.clear()
    rebuilt = run_synth_block(cfg, "topk", "cmos", tmp_path, progress=said.append)
    assert any(str(dest) in s and "rebuilding" in s for s in said)
    assert rebuilt["transistors"] == first["transistors"]
    assert json.loads(dest.read_text())["metrics"]["transistors"] == first["transistors"]
