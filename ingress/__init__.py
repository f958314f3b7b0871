"""The HTTP edge: raw bytes -> verify -> envelope -> Kafka -> status."""
