"""hookstream: a webhook gateway on Kafka."""

__version__ = "0.1.0"
