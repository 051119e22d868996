# Quick start: `make demo` runs the default convergence study, `make test` runs the test suite.
# Both create a local virtual environment (.venv) with everything the project needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(BIN)/activate

install: $(BIN)/activate

demo: install
	$(BIN)/python sample.py --workdir runs/gmm_convergence

test: install
	$(BIN)/python -m pytest -q -n auto --dist loadscope

clean:
	rm -rf $(VENV) runs .pytest_cache
