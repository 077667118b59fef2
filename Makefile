# Two commands set everything up on a fresh clone: `make run` and `make test`.
# Neither needs root nor changes anything outside this folder: Python packages go into
# .venv (pinned, hash-checked, from requirements-dev.txt), test tools into .tools/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements-dev.txt
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml mongosim/pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: install tools lock k8s-config faults bench-mongosim bench-scale conformance run mongosim test lint format bench clean

$(STAMP): $(LOCK) pyproject.toml mongosim/pyproject.toml
	@echo "==> set-up 1/3: virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> set-up 2/3: dependencies pinned in $(LOCK), hash-checked (about a minute the first time)"
	@$(PIP) install --require-hashes --no-deps -r $(LOCK)
	@echo "==> set-up 3/3: mongo-streamer (command: streamer) and mongosim, editable"
	@# The distribution used to be called streamer: an old .venv's editable install of
	@# that name goes first, so that one distribution provides the package and the command.
	@if $(BIN)/python -m pip show --quiet streamer >/dev/null 2>&1; then \
		$(PIP) uninstall --yes streamer; fi
	@# setuptools prints a boxed notice (a UserWarning) on every editable install of a
	@# package with a mapped folder (streamer.defaults is config/); it asks nothing of us.
	@PYTHONWARNINGS=ignore::UserWarning $(PIP) install --no-deps -e . -e ./mongosim
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

# promtool and the Prometheus server for the rule, metrics and alerting tests, fetched
# into .tools/ without root (scripts/fetch-test-tools says how, or why not).
tools:
	@scripts/fetch-test-tools

# Refresh the lock files (pip-tools, with hashes): requirements-dev.txt for development
# and tests (mongo-streamer[dev] and mongosim), requirements.txt for the image (mongo-streamer
# alone).
# No index or find-links lines: the lock names packages and hashes, not this machine's
# package locations (pip's own configuration says where to find them).
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	@$(PIP) install pip-tools
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o $(LOCK) pyproject.toml mongosim/pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.txt pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --build-deps-for wheel --only-build-deps \
		-o requirements-build.txt pyproject.toml

# The embedded default: mongosim, bootstrap, demo data, the service and a traffic
# generator, with a live status line (Ctrl-C stops everything). AUTH=1 turns on mongosim's
# --auth (bootstrap as root, the service as the least-privilege role), TLS=1 its TLS with
# client certificates from a throw-away CA; either or both.
# KEEP_LOGS=1 keeps the demo's log (by default its temporary directory goes when it stops).
#
# `exec` makes the demo make's own child, not a shell's: dash, killed by the Ctrl-C that
# the demo catches, would have make report `*** [run] Interrupt`. The demo also takes the
# terminal's Ctrl-C for itself (streamer/commands/terminal.py), so make is not interrupted at all
# and `make run` exits with the demo's status, 0 after a Ctrl-C.
MONGOSIM_PORT ?= 27017
DEMO_FLAGS := $(if $(filter 1,$(AUTH)),--auth) $(if $(filter 1,$(TLS)),--tls) \
	$(if $(filter 1,$(KEEP_LOGS)),--keep-logs) $(if $(MEMBERS),--members $(MEMBERS))
run: $(STAMP)
	@exec $(BIN)/streamer demo --port $(MONGOSIM_PORT) $(strip $(DEMO_FLAGS))

# mongosim alone, for `streamer run` against it by hand.
mongosim: $(STAMP)
	@exec $(BIN)/mongosim --port $(MONGOSIM_PORT)

# Coverage is measured on every run (pytest-cov; [tool.coverage] in pyproject.toml says
# what): the figure printed under "tests coverage" is the share of streamer's lines the
# suite runs in its own process.
test: $(STAMP) tools
	$(BIN)/pytest tests --ignore=tests/bench --cov --cov-report=term $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check streamer mongosim/src tests k8s scripts
	$(BIN)/ruff format --check streamer mongosim/src tests k8s scripts
	$(BIN)/mypy streamer mongosim/src/mongosim scripts/conformance.py scripts/conformance_plugin.py
	@# The import contracts in pyproject.toml ([tool.importlinter]): the layers, the pure
	@# core, the one door to the driver.
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix streamer mongosim/src tests k8s scripts
	$(BIN)/ruff format streamer mongosim/src tests k8s scripts

# The full fault-injection suite (make test runs a bounded version of it).
faults: $(STAMP)
	FAULTS_FULL=1 $(BIN)/pytest tests/faults -q $(PYTEST_ARGS)

# The service's benchmarks: a table, and bench-results.json; then the scale section
# (partitions shared by several instances, issue 19), added to the same file.
bench: $(STAMP)
	$(BIN)/python tests/bench/service_bench.py
	$(BIN)/python tests/bench/scale_bench.py

# The scale section alone (a few minutes; --quick in SCALE_ARGS to check that it runs).
bench-scale: $(STAMP)
	$(BIN)/python tests/bench/scale_bench.py $(SCALE_ARGS)

# mongosim's own throughput.
bench-mongosim: $(STAMP)
	$(BIN)/python tests/bench/mongosim_bench.py

# PyMongo's own specification suites (sdist's test/, fetched once into conformance-cache/)
# against mongosim, sync and async: a table, and conformance-results.json. Takes minutes.
conformance: $(STAMP)
	$(BIN)/python scripts/conformance.py $(CONFORMANCE_ARGS)

# Copy config/ into the Kubernetes ConfigMap (kustomize cannot reach outside k8s/).
k8s-config: $(STAMP)
	$(BIN)/python k8s/render_configmap.py

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
