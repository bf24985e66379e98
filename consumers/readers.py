"""Read the consumer's view from other processes (query servers, tools).

RocksDB allows one writer; other processes open the view as a *secondary*
(read-only, with a folder of its own for its info log) and call
``catch_up()`` to see what the writer committed since. ``ViewFollower`` does
that on a timer, so a reader lags the writer by at most ``interval_s`` plus
the catch-up time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from deltas.errors import KubedeltaError
from store import StoreOptions, ViewReader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowerConfig:
    data_dir: Path  #: the writer's view folder
    secondary_dir: Path  #: this reader's own folder (must differ per reader process)
    interval_s: float = 0.5  #: seconds between catch-ups: the extra staleness readers accept


class ViewFollower:
    """A ViewReader that catches up with the writer every ``interval_s`` seconds."""

    def __init__(self, config: FollowerConfig, options: StoreOptions) -> None:
        self._config = config
        self._options = options
        self._reader: ViewReader | None = None
        self.catch_ups = 0  #: successful catch-ups so far

    @property
    def reader(self) -> ViewReader:
        if self._reader is None:
            self._reader = ViewReader.open(
                self._config.data_dir, self._config.secondary_dir, self._options
            )
        return self._reader

    def catch_up(self) -> None:
        self.reader.catch_up()
        self.catch_ups += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up until ``stop``; a failed catch-up is logged and tried again next tick
        (the writer may be restarting), a failure to open is raised."""
        self.reader  # noqa: B018  (open now so a bad path fails fast)
        while not stop.is_set():
            try:
                self.catch_up()
            except KubedeltaError as exc:
                log.warning("catching up with the writer failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.interval_s)

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
