"""Shared I/O plumbing: Kafka client settings, admin helpers, local broker, health/metrics HTTP, backoff."""
