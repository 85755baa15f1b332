# One image with both environments (.venv: Airflow + engine, .venv-spleeter: Spleeter) and the
# provisioned models, built by the same scripts/setup.sh as a bare-metal install.
# Used by docker-compose.yaml for every Airflow component (api-server, scheduler, workers, ...).
# scripts/compose-check.sh builds and runs it end to end (docs/scale-out.md).
# Any image with Python 3.11 at /usr/local/bin/python3.11 on Debian bookworm will do.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# The Debian packages scripts/setup.sh checks for (ffmpeg; Chromium and its WebDriver for the crawl; espeak-ng).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg chromium chromium-driver espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nr4dl
# The two environments first, in a layer of their own: only a change of the locks reinstalls them.
COPY requirements/ requirements/
COPY scripts/setup.sh scripts/setup.sh
# torch must be the CPU build (PyPI's own wheel pulls gigabytes of CUDA): it is installed first, alone, from
# TORCH_INDEX_URL, and setup.sh's pinned torch==2.13.0 then finds it there (2.13.0+cpu). Empty: pip's own
# configuration supplies it (a local wheel folder, a mirror), which an index set for the whole install
# would override. PIP_CONFIG_FILE: a pip configuration for the build (a proxy, a mirror, a CA bundle;
# scripts/compose-check.sh hands over its host's), used by the RUN steps only.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CONFIG_FILE
RUN set -eu; python=/usr/local/bin/python3.11; export PIP_NO_CACHE_DIR=1; \
    "$python" -m venv .venv; \
    if [ -n "$TORCH_INDEX_URL" ]; then \
      .venv/bin/pip install --quiet --no-deps --index-url "$TORCH_INDEX_URL" "$(grep '^torch==' requirements/main.txt)"; \
    fi; \
    PYTHON=$python bash scripts/setup.sh --environments-only; \
    rm -rf /root/.cache
# Then the project (installed editable into .venv) and the models, which setup.sh fetches with it.
COPY pyproject.toml settings.yaml ./
COPY nr4dl_tasks/ nr4dl_tasks/
COPY scripts/ scripts/
RUN set -eu; export PIP_NO_CACHE_DIR=1; PYTHON=/usr/local/bin/python3.11 bash scripts/setup.sh; rm -rf /root/.cache
COPY dags/ dags/
COPY plugins/ plugins/

ENV PATH=/opt/nr4dl/.venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/nr4dl/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/nr4dl/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    TF_CPP_MIN_LOG_LEVEL=2
# Work folders live on a volume shared by every worker (see docker-compose.yaml).
VOLUME ["/opt/nr4dl/data"]
ENTRYPOINT ["airflow"]
CMD ["version"]
