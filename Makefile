# Every target builds what it needs: a fresh clone only needs python3 (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo run test lint typecheck browser bench lock clean

# The development and CI environment comes from requirements-dev.lock only (every extra and
# the dev tools, pip and setuptools included), so an upstream release never breaks a clone
# that did not change; a changed lock reinstalls. The package itself goes in without
# dependencies or build isolation: everything it needs is already pinned.
$(STAMP): setup.cfg pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $$(grep '^pip==' requirements-dev.lock)
	$(BIN)/pip install --quiet -r requirements-dev.lock
	@# -qq: setuptools notes on every editable install that editable installs are
	@# "experimental"; a real install (Docker, Heroku) warns of nothing (tests/test_packaging.py).
	$(BIN)/pip install -qq --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sync-worker demo

# Every Procfile process, locally: the release phase first, then the dashboard (on
# loopback, DASHBOARD_PORT), the workers and the scheduler under honcho, on the embedded
# servers, with the Steam simulator as Steam.
# Ctrl-C stops them all; the embedded servers stop once their last user has left. (A
# non-interactive shell's background job ignores SIGINT: the trap stops the simulator.)
# Metrics go to a fresh directory per run, as on a fresh dyno (docs/observability.md).
SIM_PORT ?= 8765
DASHBOARD_PORT ?= 8000
run: $(STAMP)
	@export PATH="$(CURDIR)/$(BIN):$$PATH" STEAM_API_KEY=sim-key DASHBOARD_HOST=127.0.0.1 \
	        STEAM_API_BASE_URL=http://127.0.0.1:$(SIM_PORT) \
	        STEAM_STORE_BASE_URL=http://127.0.0.1:$(SIM_PORT); \
	honcho start release || exit $$?; \
	export dramatiq_prom_db="$${dramatiq_prom_db:-$$(mktemp -d)}"; \
	sync-worker simulator --port $(SIM_PORT) & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; wait $$sim' INT TERM EXIT; \
	echo "make run: the dashboard is on http://127.0.0.1:$(DASHBOARD_PORT)"; \
	honcho start -p $(DASHBOARD_PORT) web worker_high worker scheduler; rc=$$?; \
	if [ $$rc -eq 0 ] || [ $$rc -eq 130 ]; then \
	    echo "make run: stopped (the dashboard, the workers, the scheduler and the simulator)"; exit 0; \
	fi; exit $$rc

# lint-imports: the layers, no import circles, a client that loads none of the worker
# (the contracts are in pyproject.toml, explained in docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check sync_worker tests bench examples
	$(BIN)/ruff format --check sync_worker tests bench examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples  # as a web service would see the package (py.typed)

test: lint typecheck browser
	$(BIN)/pytest

# Headless Chromium for the dashboard's browser test (Debian's package; needs root or
# sudo). Never fatal: without it that test is skipped with one line, except in CI, where
# .ci/run installs it and SYNC_WORKER_REQUIRE_BROWSER makes its absence a failure.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ]; then apt=apt-get; else apt="sudo -n apt-get"; fi; \
	    { $$apt install -y -q chromium || { $$apt update -q && $$apt install -y -q chromium; }; } \
	        >/dev/null 2>&1 || echo "make browser: chromium could not be installed; the browser test will be skipped"; }

bench: $(STAMP)
	$(BIN)/python -m bench

# The locks, from setup.cfg: requirements.lock pins the runtime (Heroku's requirements.txt
# and the Dockerfile install it, with the dashboard extra); requirements-dev.lock pins every extra and the tools on
# top of it, constrained by it, so both agree on every runtime pin (tests/test_packaging.py).
# `make lock` keeps the current pins where they still fit; `make lock LOCK_ARGS=--upgrade`
# takes the newest releases that do.
PIP_COMPILE := $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links
lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dashboard --output-file requirements.lock setup.cfg
	$(PIP_COMPILE) $(LOCK_ARGS) --all-extras --allow-unsafe --constraint requirements.lock \
	    --output-file requirements-dev.lock setup.cfg

clean:
	-[ -x $(BIN)/python ] && $(BIN)/python -m sync_worker.local stop .sync-worker
	rm -rf $(VENV) .sync-worker .mypy_cache .ruff_cache .pytest_cache .import_linter_cache *.egg-info
