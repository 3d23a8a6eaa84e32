# Stand-in for apache/kafka, built by scripts/images only where that image cannot be pulled.
# Never pushed. The same Kafka jars as scripts/kafka (Maven Central, deploy/kafka/pom.xml), on
# Debian bookworm's JDK 17, laid out like the real image: /opt/kafka/bin/*.sh, data in
# /var/lib/kafka/data, user appuser (uid 1000), and the command /etc/kafka/docker/run, which turns
# KAFKA_* variables into the broker's properties and formats the storage once with CLUSTER_ID.
# Context: a folder scripts/images assembles (libs/ + the files of deploy/standin/kafka/).
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /bin/bash appuser \
    && install -d -o appuser -g appuser /opt/kafka/config /var/lib/kafka/data

COPY libs/ /opt/kafka/libs/
COPY log4j2.properties tools-log4j2.properties /opt/kafka/config/
COPY bin/ /opt/kafka/bin/
RUN chmod 0755 /opt/kafka/bin/* \
    && install -d /etc/kafka/docker && mv /opt/kafka/bin/run /etc/kafka/docker/run \
    && /opt/kafka/bin/kafka-topics.sh --version

LABEL io.lstm-stream.standin="apache/kafka from Maven Central's Kafka jars (deploy/kafka/pom.xml) on Debian bookworm's OpenJDK 17"
ENV PATH=/opt/kafka/bin:$PATH
USER appuser
WORKDIR /opt/kafka
EXPOSE 9092
VOLUME ["/var/lib/kafka/data"]
CMD ["/etc/kafka/docker/run"]
