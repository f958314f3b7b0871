"""A real single-node Apache Kafka (KRaft) for local use and tests, resolved from Maven Central."""

from hookstream.broker.local import KAFKA_VERSION, BrokerStatus, BrokerTls, LocalKafka

__all__ = ["KAFKA_VERSION", "BrokerStatus", "BrokerTls", "LocalKafka"]
