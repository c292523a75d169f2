# reactpal: every target works from a fresh clone; the venv lives in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# pip >= 26: the old resolver backtracks badly on the langchain set.
PIP_MIN := pip>=26

.PHONY: install install-dev install-bench serve test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "$(PIP_MIN)"

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

install-bench: $(VENV)/.installed-bench

serve: install
	$(PY) -m service

test: install-dev
	$(PY) -m ruff check service agents tools tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q

lint: install-dev
	$(PY) -m ruff check service agents tools tests bench
	$(PY) -m ruff format --check service agents tools tests bench
	$(PY) -m mypy

bench: install-bench
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
