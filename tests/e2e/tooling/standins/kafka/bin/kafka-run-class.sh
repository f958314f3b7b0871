#!/usr/bin/env bash
# java -cp /opt/kafka/libs/* CLASS ARGS..., with the official scripts' variables.
heap=${KAFKA_HEAP_OPTS:--Xmx256M}
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml}
# shellcheck disable=SC2086
exec java $heap $log4j ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} ${KAFKA_OPTS:-} \
  -Djava.awt.headless=true -cp '/opt/kafka/libs/*' "$@"
