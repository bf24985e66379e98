"""The CLI imports a command's module only when that command runs, and still lists
every command with its short help."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from kubedelta.cli import _COMMANDS, LazyGroup, main

#: What a producer process never needs: the query stack and the benchmarks.
NOT_FOR_PRODUCE = {"fastapi", "uvicorn", "starlette", "bench", "query"}

RESOLVE_PRODUCE = """
import json, sys
import click
from kubedelta.cli import main
with click.Context(main) as ctx:
    assert main.get_command(ctx, "produce") is not None
main(["produce", "--help"], standalone_mode=False)
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def test_running_produce_imports_neither_the_query_stack_nor_the_benchmarks() -> None:
    # A fresh interpreter: this test process has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE_PRODUCE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    imported = set(json.loads(result.stdout.splitlines()[-1]))
    assert "producers" in imported  # the command was really resolved
    assert imported & NOT_FOR_PRODUCE == set()


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {
        line.split()[0]: line.split(maxsplit=1)[1]
        for line in result.output.split("Commands:\n", 1)[1].splitlines()
        if line.strip()
    }
    assert {"bench", "cluster", "consume", "consumer-identity", "demo", "kafka"} <= set(listed)
    assert {"produce", "replay", "serve", "simulate"} <= set(listed)
    assert set(listed) == set(_COMMANDS)
    with click.Context(main) as ctx:
        for name, short_help in listed.items():
            command = main.get_command(ctx, name)
            assert command is not None
            full_help = command.get_short_help_str(limit=1_000)
            assert full_help.startswith(short_help.removesuffix("...")), name


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_a_registration_naming_another_command_fails_loudly() -> None:
    group = LazyGroup(lazy_commands={"consume": "kubedelta.cmd_produce:produce"})
    with click.Context(group) as ctx, pytest.raises(TypeError, match="not the command 'consume'"):
        group.get_command(ctx, "consume")
