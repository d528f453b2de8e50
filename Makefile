# The two commands a new user needs:
#   make run   - the whole job on generated data, no server needed
#   make test  - the full test suite (installs what it needs)
PYTHON ?= python3
VENV   ?= .venv
UV     := $(VENV)/bin/uv
PY     := $(VENV)/bin/python
LOCK   ?= requirements/dev.lock

.PHONY: run test lint bench lock clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(UV) || ($(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install -q uv==0.13.9)
	$(UV) pip sync -q --python $(PY) --compile-bytecode $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/l7analytics demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check l7analytics dags tests benchmarks scripts
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check l7analytics dags tests benchmarks scripts
	$(VENV)/bin/ruff format --check l7analytics dags tests benchmarks scripts

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pipeline.py

lock:
	$(UV) pip compile -q pyproject.toml --extra dev --python-version 3.11 -o $(LOCK)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
