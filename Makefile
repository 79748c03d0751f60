# Everything a user needs, from a fresh Debian/Ubuntu machine with Python 3.10+:
#   make demo   set up, then run the demo call (fails if no audio flowed)
#   make test   set up, then run the whole test suite
# Both call scripts/bootstrap.sh first (apt packages when root, .venv, pip) and run
# inside scripts/netns-run (a network namespace with only loopback).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV        ?= .venv
VENV_PY     := $(VENV)/bin/python
# The second lane of `make test`: the oldest aiortc/aioice/av the internals adapter is tested with.
VENV_OLDEST ?= .venv-oldest
# What the oldest lane runs: the unit and integration lanes, less the packaging, framework, docs-example and
# long soak checks (they test packaging, frameworks, prose and memory over 1000 calls, not aiortc's versions).
OLDEST_ARGS ?= tests/unit tests/integration --ignore=tests/integration/test_docs_and_dist.py \
	--ignore=tests/integration/test_packaging.py --ignore=tests/integration/test_web_samples.py \
	--ignore=tests/integration/test_scaling_samples.py --ignore=tests/integration/test_doc_examples.py \
	--deselect=tests/integration/test_soak.py::test_memory_threads_and_descriptors_per_call_stay_flat
# The third lane of `make test`: the Pipecat transport (tests/voicebots) in a venv of its own (Pipecat needs
# Python 3.11+ and heavy dependencies kept out of the other extras); skipped without a Python 3.11+.
VENV_PIPECAT ?= .venv-pipecat
PIPECAT_PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
# What the Pipecat lane runs: its tests, and the docs' Pipecat examples (marked pipecat).
PIPECAT_ARGS ?= tests/voicebots tests/integration/test_doc_examples.py -m pipecat
NETNS_RUN   := scripts/netns-run
# Extra arguments for pytest, e.g. make test PYTEST_ARGS='-k sdp -x'
PYTEST_ARGS ?=
# Hard cap on the whole suite (seconds); it is meant to finish in under 15 minutes
# on 2 cores. SIGINT first, so pytest still prints what ran and what hung.
TEST_TIMEOUT ?= 900

export VENV

.PHONY: help bootstrap demo test test-fast test-oldest test-pipecat bench lint clean docs dist-check

help: ## Show this help
	@echo "purecloud_webrtc -- make targets:"
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo "Variables: PYTEST_ARGS='...' (extra pytest arguments)," \
		"PYTHON=/path/to/python3 (builds .venv), TEST_TIMEOUT=$(TEST_TIMEOUT) (seconds)"

bootstrap: ## Install apt packages (as root), create .venv, pip install -e .[test,audio,emulator]
	bash scripts/bootstrap.sh

demo: bootstrap ## Set up, then place a demo call against the local emulator
	$(NETNS_RUN) $(VENV_PY) -m purecloud_webrtc.demo

test: bootstrap ## Set up, then run the whole suite (network-isolated), then its core lanes on the oldest aiortc
	@echo "+ $(NETNS_RUN) $(VENV_PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)"
	@timeout --foreground --signal=INT --kill-after=30 $(TEST_TIMEOUT) \
		$(NETNS_RUN) $(VENV_PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
	|| { rc=$$?; if [ $$rc = 124 ]; then \
		echo "make test: the suite ran over TEST_TIMEOUT=$(TEST_TIMEOUT)s and was stopped" >&2; \
	fi; exit $$rc; }
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory test-oldest; fi
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory test-pipecat; fi

test-fast: bootstrap ## The unit lane only (no emulator, no servers): seconds
	$(VENV_PY) -m pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

test-oldest: ## The unit and integration lanes in .venv-oldest (scripts/constraints-oldest.txt)
	VENV=$(VENV_OLDEST) BOOTSTRAP_CONSTRAINTS=scripts/constraints-oldest.txt bash scripts/bootstrap.sh
	@echo "+ $(NETNS_RUN) $(VENV_OLDEST)/bin/python -m pytest -p no:cacheprovider $(OLDEST_ARGS)"
	@timeout --foreground --signal=INT --kill-after=30 $(TEST_TIMEOUT) \
		$(NETNS_RUN) $(VENV_OLDEST)/bin/python -m pytest -p no:cacheprovider $(OLDEST_ARGS)

test-pipecat: ## The Pipecat lane (tests/voicebots) in .venv-pipecat (needs a Python 3.11+; skipped without one)
	@if [ -z "$(PIPECAT_PYTHON)" ]; then \
		echo "make test-pipecat: Pipecat needs Python 3.11 or later and none was found: lane skipped" >&2; \
	else \
		PYTHON=$(PIPECAT_PYTHON) VENV=$(VENV_PIPECAT) BOOTSTRAP_EXTRAS=emulator,pipecat,dev bash scripts/bootstrap.sh \
		&& echo "+ $(NETNS_RUN) $(VENV_PIPECAT)/bin/python -m pytest -p no:cacheprovider $(PIPECAT_ARGS)" \
		&& timeout --foreground --signal=INT --kill-after=30 $(TEST_TIMEOUT) \
			$(NETNS_RUN) $(VENV_PIPECAT)/bin/python -m pytest -p no:cacheprovider $(PIPECAT_ARGS); \
	fi

# Extra arguments for the benchmarks, e.g. make bench BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: bootstrap ## Benchmarks: ours / raw aiortc / libwebrtc table (BENCH_ARGS=--quick: a few minutes)
	@if command -v npm >/dev/null 2>&1; then \
		cd benchmarks/node && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "make bench: no npm; the libwebrtc column is skipped" >&2; fi
	@if [ -n "$(PIPECAT_PYTHON)" ]; then \
		PYTHON=$(PIPECAT_PYTHON) VENV=$(VENV_PIPECAT) BOOTSTRAP_EXTRAS=emulator,pipecat,dev bash scripts/bootstrap.sh; \
	else echo "make bench: no Python 3.11+; the voice-bot rows are skipped" >&2; fi
	$(NETNS_RUN) $(VENV_PY) benchmarks/run.py $(BENCH_ARGS)

lint: ## Set up with the dev extra, then run ruff
	BOOTSTRAP_EXTRAS=test,audio,emulator,dev bash scripts/bootstrap.sh
	$(VENV)/bin/ruff check purecloud_webrtc tests

docs: ## Set up with the docs extra, then build the HTML reference (warnings are errors) in docs/_build/html
	BOOTSTRAP_EXTRAS=test,audio,emulator,docs bash scripts/bootstrap.sh
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

dist-check: bootstrap ## Build the sdist and the wheel, install the wheel in a fresh venv, run the demo from it
	$(NETNS_RUN) $(VENV_PY) scripts/dist_check.py

clean: ## Remove .venv, build artefacts and caches
	rm -rf $(VENV) $(VENV_OLDEST) $(VENV_PIPECAT) build dist .eggs *.egg-info .pytest_cache .hypothesis \
		.mypy_cache .ruff_cache .coverage htmlcov tests/.artifacts docs/_build docs/*.inc
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
