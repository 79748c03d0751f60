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
NETNS_RUN   := scripts/netns-run
# Extra arguments for pytest, e.g. make test PYTEST_ARGS='-k sdp -x'
PYTEST_ARGS ?=
# Hard cap on the whole suite (seconds); it is meant to finish in under 15 minutes
# on 2 cores. SIGINT first, so pytest still prints what ran and what hung.
TEST_TIMEOUT ?= 900

export VENV

.PHONY: help bootstrap demo test lint clean

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

test: bootstrap ## Set up, then run the whole test suite (network-isolated)
	@echo "+ $(NETNS_RUN) $(VENV_PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)"
	@timeout --foreground --signal=INT --kill-after=30 $(TEST_TIMEOUT) \
		$(NETNS_RUN) $(VENV_PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
	|| { rc=$$?; if [ $$rc = 124 ]; then \
		echo "make test: the suite ran over TEST_TIMEOUT=$(TEST_TIMEOUT)s and was stopped" >&2; \
	fi; exit $$rc; }

lint: ## Set up with the dev extra, then run ruff
	BOOTSTRAP_EXTRAS=test,audio,emulator,dev bash scripts/bootstrap.sh
	$(VENV)/bin/ruff check purecloud_webrtc tests

clean: ## Remove .venv, build artefacts and caches
	rm -rf $(VENV) build dist .eggs *.egg-info .pytest_cache .hypothesis \
		.mypy_cache .ruff_cache .coverage htmlcov tests/.artifacts
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
