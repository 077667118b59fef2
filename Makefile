# Two commands set everything up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install system-packages k8s-config faults bench-mongosim run mongosim test lint format bench clean

$(STAMP): pyproject.toml
	command -v promtool >/dev/null || $(MAKE) --no-print-directory system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests need: prometheus (the server and promtool) for the rule,
# metrics and alerting checks. Its init script is not wanted: the tests start their own.
system-packages:
	sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
	|| { $$sudo apt-get update -qq && \
	     $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }
	-pkill -x prometheus

# The embedded default: mongosim, bootstrap, demo data, the service and a traffic
# generator, with a live status line (Ctrl-C stops everything).
run: $(STAMP)
	$(BIN)/streamer demo --port $${MONGOSIM_PORT:-27017}

# mongosim alone, for `streamer run` against it by hand.
mongosim: $(STAMP)
	$(BIN)/mongosim --port $${MONGOSIM_PORT:-27017}

test: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/bench $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check streamer tests
	$(BIN)/mypy streamer

format: $(STAMP)
	$(BIN)/ruff check --fix streamer tests

# The full fault-injection suite (make test runs a bounded version of it).
faults: $(STAMP)
	FAULTS_FULL=1 $(BIN)/pytest tests/faults -q $(PYTEST_ARGS)

# The service's benchmarks: a table, and bench-results.json.
bench: $(STAMP)
	$(BIN)/python tests/bench/service_bench.py

# mongosim's own throughput.
bench-mongosim: $(STAMP)
	$(BIN)/python tests/bench/mongosim_bench.py

# Copy config/ into the Kubernetes ConfigMap (kustomize cannot reach outside k8s/).
k8s-config: $(STAMP)
	$(BIN)/python k8s/render_configmap.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
