"""Errors raised by the consumers. ``retriable`` is the retry policy of the run loop."""

from __future__ import annotations

from deltas.errors import ConfigError, KubedeltaError, TransientError


class ConsumerError(KubedeltaError):
    """The consumer cannot go on for a reason retrying will not fix."""


class ConsumerConfigError(ConsumerError, ConfigError):
    """A consumer or replay setting that cannot work (bad mode, missing group, bad time)."""


class KafkaFetchError(TransientError):
    """Fetching from the brokers failed; the next pass starts again from the stored offsets."""


class DeadLetterError(TransientError):
    """A rejected record could not be acknowledged by the dead-letter topic.

    The batch is not committed, so the pass is retried from the stored offsets:
    nothing is skipped that is not safely in the dead-letter topic.
    """


class ReplayTargetError(ConsumerError):
    """The replay target folder is not empty and ``force`` was not given."""
