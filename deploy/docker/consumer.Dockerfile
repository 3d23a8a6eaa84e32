# The consumer image: lstm-consumer with TensorFlow (CPU), Keras, NumPy and prometheus-client.
#   docker build -f deploy/docker/consumer.Dockerfile -t lstm-stream-consumer .
#   docker run --rm -e LSTM_CONSUMER_HTTP_HOST=0.0.0.0 lstm-stream-consumer run --bootstrap-servers HOST:PORT
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

# The compile cache's directory exists, owned by the user, so a volume mounted on it is writable.
RUN useradd --no-log-init --create-home --uid 10001 --shell /usr/sbin/nologin lstm \
    && install -d -o lstm -g lstm /home/lstm/.cache/lstm-stream/xla
WORKDIR /app

# Dependencies first, from the lock alone: this layer (TensorFlow: the big one) is rebuilt only
# when the lock changes, not when the code does. requirements/consumer.lock is the consumer extra
# with every transitive dependency, each file checked against its hash; no matplotlib (that is the
# [plot] extra, for `evaluate --plot` on a workstation). TensorFlow's C++ headers (290 MB, for
# building custom ops) are never used at run time: removed in the same layer.
COPY requirements/consumer.lock ./
RUN pip install --require-hashes -r consumer.lock \
    && rm -rf "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tensorflow/include"

# Then the source.
COPY pyproject.toml LICENSE README.md ./
COPY lstm_stream ./lstm_stream
COPY producer ./producer
COPY consumer ./consumer
RUN pip install --no-deps . && rm -rf build ./*.egg-info

USER lstm
# /healthz, /readyz, /metrics (bind with LSTM_CONSUMER_HTTP_HOST=0.0.0.0 to reach them from outside)
EXPOSE 8000
ENTRYPOINT ["lstm-consumer"]
CMD ["run"]
