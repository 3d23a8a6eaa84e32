# Stand-in for prom/prometheus, built by scripts/images only where that image cannot be pulled.
# Never pushed. It is Debian bookworm's prometheus package (2.42), laid out like the real image:
# /bin/prometheus (merged /usr) as the entrypoint, /etc/prometheus/prometheus.yml, data in /prometheus owned
# by nobody, wget for healthchecks. The stack's configuration and queries use nothing newer.
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && test -x /bin/prometheus \
    && install -d -o nobody -g nogroup /prometheus \
    && prometheus --version

LABEL io.lstm-stream.standin="prom/prometheus from Debian bookworm's prometheus package (2.42)"
USER nobody
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
