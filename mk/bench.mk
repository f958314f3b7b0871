# Benchmarks (bench/), writing docs/performance.md with its plots.
#
#   make bench        quick mode (about 10 minutes on 2 cores)
#   make bench-full   full mode (200k-record drains, longer runs; about an hour)
#   make bench FULL=1 the same as bench-full
#   make bench-deps   what the benchmarks need: the `bench` extra (matplotlib, py-spy),
#                     wrk (Debian's package; run as root), and Quix Streams in a
#                     virtualenv of its own (it pins an older confluent-kafka)

BENCH_STAMP := $(VENV)/.bench-installed
QUIX_VENV   := .hookstream/quix-venv

.PHONY: bench bench-full bench-deps

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

$(QUIX_VENV)/.installed:
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q 'quixstreams>=3.10,<4' 'fastavro>=1.9,<2'
	@touch $@

bench-deps: $(BENCH_STAMP) $(QUIX_VENV)/.installed ## Install what the benchmarks need (wrk via apt)
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }

bench: bench-deps kafka ## Run the benchmarks (quick; FULL=1 for full) and write docs/performance.md
	$(BIN)/python bench/suite.py $(if $(FULL),--full)

bench-full: ## Run the benchmarks in full mode and write docs/performance.md
	$(MAKE) bench FULL=1
