# The front door: `make run` (demo on the embedded database) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test smoke deploy-check lint typecheck fmt install clean

$(BIN)/yuyue: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/yuyue

install: $(BIN)/yuyue

run: install
	YUYUE_ENV=$${YUYUE_ENV:-development} $(BIN)/yuyue db upgrade
	YUYUE_ENV=$${YUYUE_ENV:-development} $(BIN)/yuyue demo
	YUYUE_ENV=$${YUYUE_ENV:-development} $(BIN)/yuyue serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench scripts deploy
	$(BIN)/ruff format --check src tests bench scripts deploy
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two pytest processes on this 2-core machine: 13 min in one, under 8 in two (tests/README.md).
PYTEST_WORKERS ?= 2
test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The README on a fresh clone: `make run` there, and `pip install .` + the production steps on PostgreSQL.
smoke:
	$(PYTHON) scripts/smoke.py

# nginx + two `yuyue serve` + a worker on a throwaway PostgreSQL database, booked through (deploy/);
# then three app hosts in network namespaces over a primary + replica: a rush, a host killed, SSE.
deploy-check: install
	$(BIN)/python deploy/check.py
	$(BIN)/python deploy/hosts_check.py

fmt: install
	$(BIN)/ruff format src tests bench scripts deploy
	$(BIN)/ruff check --fix src tests bench scripts deploy

clean:
	rm -rf $(VENV) build dist *.egg-info var
