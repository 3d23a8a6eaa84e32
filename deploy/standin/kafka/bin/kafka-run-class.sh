#!/bin/bash
# kafka-run-class.sh of the apache/kafka stand-in: a JVM on Kafka's jars, with the variables the
# real script reads (KAFKA_HEAP_OPTS, default -Xmx256M; KAFKA_JVM_PERFORMANCE_OPTS; KAFKA_OPTS;
# KAFKA_LOG4J_OPTS, default: the tools' logging, warnings to stderr).
set -euo pipefail
heap=${KAFKA_HEAP_OPTS:--Xmx256M}
performance=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true}
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties}
# shellcheck disable=SC2086  # each variable holds several JVM options
exec java $heap $performance $log4j -Dlog4j2.formatMsgNoLookups=true ${KAFKA_OPTS:-} \
  -cp '/opt/kafka/libs/*' "$@"
