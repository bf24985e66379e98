"""Re-export of the project's exception root for the composition layer."""

from deltas.errors import KubedeltaError

__all__ = ["KubedeltaError"]
