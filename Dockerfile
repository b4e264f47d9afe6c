# Tradingbot: one image for the CLI, training and Freqtrade (CPU build of torch).
# The ROCm trainer (docker-compose.rocm.yml) uses Dockerfile.rocm, FROM a ROCm PyTorch image.
# TRADINGBOT_EXTRAS=ray and PYTHON_IMAGE=python:3.12-slim-bookworm build the Ray head and
# CPU workers of the compose profile `cluster` (a Ray cluster needs one Python version on
# every node: the ROCm image's 3.12).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TRADINGBOT_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY common ./common
COPY features ./features
COPY ml ./ml
COPY strategies ./strategies
COPY experiments ./experiments
COPY tradingbot ./tradingbot
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/venv/bin/pip install ".${TRADINGBOT_EXTRAS:+[${TRADINGBOT_EXTRAS}]}"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 1000 tradingbot \
    && useradd --system --uid 1000 --gid 1000 --create-home tradingbot
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=1000:1000 user_data/strategies ./user_data/strategies
COPY --chown=1000:1000 user_data/freqaimodels ./user_data/freqaimodels
COPY --chown=1000:1000 user_data/config.dryrun.json ./user_data/config.dryrun.json
COPY --chown=1000:1000 experiments/specs ./experiments/specs
USER 1000:1000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["tradingbot", "--help"]
ENTRYPOINT ["tradingbot"]
CMD ["--help"]
