# Quick start: `make site` builds the site, `make test` runs the tests.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: site test serve check bench clean

# Collects what the exchanges answer (a few seconds when offline), then builds; an empty
# store is filled from the bundled real sample, so this works without a network.
site: $(VENV)/.installed
	$(BIN)/liqmap run

serve: $(VENV)/.installed
	$(BIN)/liqmap serve

check: $(VENV)/.installed
	$(BIN)/liqmap check

test: $(VENV)/.installed-test
	@command -v chromium >/dev/null 2>&1 || scripts/install-chromium
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_model.py

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf build
