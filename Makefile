# raftkv - the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEV    := $(VENV)/.installed-dev
RUNTIME:= $(VENV)/.installed
DEBIAN_TEST_TOOLS := redis-server:redis-server redis-tools:redis-cli \
	postgresql:/usr/lib/postgresql/15/bin/postgres python3-venv:/usr/lib/python3.11/ensurepip/__init__.py \
	chromium:chromium
DEBIAN_BENCH_TOOLS := $(DEBIAN_TEST_TOOLS) etcd-server:etcd wrk:wrk
PYTEST_ARGS ?=

.PHONY: run test lint typecheck bench bench-quick instructions soak sim jepsen clean debian-test-tools debian-bench-tools

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Every install builds the modules of compiled-modules.txt (setup.py: mypyc for .py,
# the C compiler for .c; under a minute on 2 cores); NATIVE rebuilds them when one of their
# sources changes.
COMPILED := $(addprefix src/,$(shell grep -v '^\#' compiled-modules.txt))
NATIVE := $(VENV)/.compiled

$(RUNTIME): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e .
	touch $@ $(NATIVE)

$(DEV): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUNTIME) $(NATIVE)

BENCH_DEPS := $(VENV)/.installed-bench
$(BENCH_DEPS): pyproject.toml setup.py $(DEV)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@ $(NATIVE)

$(NATIVE): compiled-modules.txt $(COMPILED) | $(RUNTIME)
	@echo "compiling $(words $(COMPILED)) modules (under a minute)"
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Patroni (tests/integration/test_patroni.py) runs as the postgres user, since PostgreSQL
# refuses root, and that user cannot reach the interpreter of .venv (under /root): it
# gets a virtualenv of its own, on Debian's Python.
PATRONI := .venv-patroni/.installed
$(PATRONI): Makefile | debian-test-tools
	rm -rf .venv-patroni
	/usr/bin/python3 -m venv .venv-patroni
	.venv-patroni/bin/pip install -q "patroni[etcd3,psycopg3]==4.1.5" "psycopg[binary]>=3.1"
	touch $@

## Start one node on 127.0.0.1:8080 with its data in ./data
run: $(RUNTIME) $(NATIVE)
	$(VENV)/bin/raftkv serve --data-dir ./data

debian-test-tools:
	scripts/ensure-debian.sh $(DEBIAN_TEST_TOOLS)

debian-bench-tools:
	scripts/ensure-debian.sh $(DEBIAN_BENCH_TOOLS)

## The whole suite: lint, types, unit, property, integration and fault tests
test: $(DEV) $(NATIVE) debian-test-tools $(PATRONI) lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(DEV)
	$(VENV)/bin/mypy src/raftkv

## Long runs that are not part of `make test`
soak: $(DEV)
	$(PY) -m pytest -m slow -p no:cacheprovider

bench: $(BENCH_DEPS) $(NATIVE) debian-bench-tools
	$(PY) -m benchmarks.run --full --rounds 2

bench-quick: $(BENCH_DEPS) $(NATIVE) debian-bench-tools
	$(PY) -m benchmarks.run --quick

## Instructions per request through each front, counted by callgrind (repeatable)
instructions: $(BENCH_DEPS) $(NATIVE)
	scripts/ensure-debian.sh valgrind:valgrind
	$(PY) -m benchmarks.instructions

clean:
	rm -rf $(VENV) .venv-patroni .pytest_cache .mypy_cache .ruff_cache build
	find src -name '*.so' -delete

## More Raft simulator seeds than `make test` runs: make sim SEEDS=20000
SEEDS ?= 10000
sim: $(DEV)
	$(PY) -m tests.support.raftsim_many --seeds $(SEEDS)

# The Jepsen-style cluster run for longer (JEPSEN_S seconds of faults; make test: 24).
JEPSEN_S ?= 300
jepsen: $(DEV)
	RAFTKV_JEPSEN_S=$(JEPSEN_S) $(PY) -m pytest -p no:cacheprovider -q \
		tests/faults/test_cluster_linearizability.py
