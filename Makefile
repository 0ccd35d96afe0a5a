# The two commands: `make demo` runs the whole system on embedded defaults, `make test` runs the tests.
# Both create .venv and install the project into it when needed (a fresh machine needs only python3 + make).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint fmt bench bench-quick soak install system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the browser test needs (chromium). Best effort: skipped without apt-get or root.
system-deps:
	@scripts/ensure-system-deps

demo: $(STAMP)
	$(BIN)/tpsl demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/tpsl bench --json var/bench/last.json

bench-quick: $(STAMP)
	$(BIN)/tpsl bench --quick --json var/bench/quick.json

# The protection simulator over 100,000 seeds (every core): seeds/s and violations by invariant.
# A failing seed prints its replay command (python -m tests.simulation --replay SEED).
SOAK_SEEDS ?= 100000
soak: $(STAMP)
	$(BIN)/python -m tests.simulation --seeds $(SOAK_SEEDS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
