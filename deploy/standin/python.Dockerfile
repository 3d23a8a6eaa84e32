# Stand-in for python:3.11.13-slim-bookworm, built by scripts/images only where that image cannot
# be pulled (a machine without a registry). Never pushed. What differs from the real image:
# Python is Debian bookworm's 3.11 (3.11.2), and `python`/`pip` are a virtualenv at /usr/local
# made from it, so that /usr/local/bin/python, pip and installed console scripts sit where the
# real image has them, with a site-packages of their own (Debian's own Python stays untouched).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV LANG=C.UTF-8
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local \
    && python --version && pip --version

LABEL io.lstm-stream.standin="python:3.11.13-slim-bookworm from Debian bookworm's python3 (3.11.2) in a venv at /usr/local"
CMD ["python3"]
