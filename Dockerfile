# Reverie's image: Linux x86_64, Python 3.11, Reverie with the ray extra.
#   docker build -t reverie .
#   docker run --rm -v "$PWD/runs:/home/ray/runs" reverie reverie train dqn_cartpole --run-dir runs/r1
# On macOS or an ARM machine add --platform linux/amd64 to both (dm-reverb ships x86_64 wheels
# only). It is also the image of the KubeRay example in docs/cluster.md: it has `ray` and wget,
# which KubeRay's probes use.
FROM --platform=linux/amd64 python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3

RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/reverie
COPY pyproject.toml README.md ./
COPY agents agents
COPY envs envs
COPY launch launch
COPY configs configs
RUN pip install --upgrade pip && pip install '.[ray]' && reverie config dqn_cartpole > /dev/null

# KubeRay's images run as user ray (uid 1000) in /home/ray; so does this one.
RUN useradd --create-home --uid 1000 ray
USER ray
WORKDIR /home/ray
CMD ["reverie", "--help"]
