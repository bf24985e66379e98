"""The `kubedelta` console script: one click group, one sub-module per area.

Each area's commands live in their own module (``kubedelta/cmd_*.py``) so they
can grow independently; this file only stitches them together. Modules are
imported when their command is resolved, not up front: ``kubedelta produce``
runs once per producer process and should not pay for FastAPI, uvicorn and the
benchmarks (about 1 s of CPU per process when everything was imported eagerly).
Register a command with one line in ``_COMMANDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

#: Command name -> "module:attribute" of its click command or group.
_COMMANDS: Mapping[str, str] = {
    "bench": "kubedelta.cmd_bench:bench",
    "cluster": "kubedelta.cmd_cluster:cluster",
    "consume": "kubedelta.cmd_consume:consume",
    "consumer-identity": "kubedelta.cmd_cluster:consumer_identity",
    "demo": "kubedelta.cmd_demo:demo",
    "kafka": "kubedelta.cmd_kafka:kafka",
    "produce": "kubedelta.cmd_produce:produce",
    "replay": "kubedelta.cmd_consume:replay",
    "serve": "kubedelta.cmd_serve:serve",
    "simulate": "kubedelta.cmd_simulate:simulate",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is needed.

    ``kubedelta --help`` still imports every module (it shows each short help);
    running one command imports that command's module alone. Commands added with
    ``add_command`` work as in a plain group.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._lazy_commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self._lazy_commands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            # A registration typo: fail loudly rather than run the wrong command.
            raise TypeError(f"{self._lazy_commands[cmd_name]} is not the command {cmd_name!r}")
        return command


@click.group(cls=LazyGroup, lazy_commands=_COMMANDS)
@click.version_option(package_name="kubedelta")
def main() -> None:
    """kubedelta: an event-sourced, multi-cluster Kubernetes resource cache."""
