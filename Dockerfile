# One image with both environments (.venv: Airflow + engine, .venv-spleeter: Spleeter) and the
# provisioned models, built by the same scripts/setup.sh as a bare-metal install.
# Used by docker-compose.yaml for every Airflow component (api-server, scheduler, workers, ...).
FROM python:3.11-slim-bookworm

# The Debian packages scripts/setup.sh checks for (ffmpeg; Chromium and its WebDriver for the crawl; espeak-ng).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg chromium chromium-driver espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nr4dl
# Dependencies first, so code changes do not reinstall them.
COPY requirements/ requirements/
COPY pyproject.toml settings.yaml ./
COPY nr4dl_tasks/ nr4dl_tasks/
COPY scripts/ scripts/
# torch==2.13.0 must resolve to the CPU build (PyPI's own wheel pulls gigabytes of CUDA).
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu PYTHON=/usr/local/bin/python3.11 bash scripts/setup.sh \
 && rm -rf /root/.cache/pip
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
