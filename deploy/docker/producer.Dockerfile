# The producer image: lstm-producer with the base dependencies only (kafka-python, tqdm), no TensorFlow.
#   docker build -f deploy/docker/producer.Dockerfile -t lstm-stream-producer .
#   docker run --rm lstm-stream-producer pattern --bootstrap-servers HOST:PORT --rate 50
# The base is a multi-platform image (linux/amd64 and linux/arm64 among others): on an arm64 machine
# (Apple silicon, Graviton) or with `docker build --platform linux/arm64` the same file builds for
# arm64; nothing here names an architecture. BASE_IMAGE replaces the base (scripts/images gives an
# arm64 stand-in this way where no registry answers).
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --no-log-init --create-home --uid 10001 --shell /usr/sbin/nologin lstm
WORKDIR /app

# Dependencies first, from the lock alone: this layer is rebuilt only when the lock changes.
# requirements/producer.lock is [project].dependencies only (never the consumer extra), each
# file checked against its hash.
COPY requirements/producer.lock ./
RUN pip install --require-hashes -r producer.lock

# Then the source: the shared settings and the producer (the consumer's code is not copied).
COPY pyproject.toml LICENSE README.md ./
COPY lstm_stream ./lstm_stream
COPY producer ./producer
RUN pip install --no-deps . && rm -rf build ./*.egg-info

USER lstm
ENTRYPOINT ["lstm-producer"]
CMD ["pattern"]
