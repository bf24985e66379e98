"""Tokens file parsing and scope checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from query.auth import TokenTable, load_tokens
from query.errors import TokenFileError, UnauthorizedError

TOKENS = {
    "tokens": {
        "admin-token-123": {"clusters": ["*"], "namespaces": ["*"]},
        "team-a-token-12": {"clusters": ["prod-*"], "namespaces": ["team-a"], "name": "team-a"},
        "nodes-token-123": {"clusters": ["c1"], "namespaces": ["_"]},
    }
}


def test_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(TOKENS))
    (tmp_path / "t.yaml").write_text(
        "tokens:\n  admin-token-123:\n    clusters: ['*']\n    namespaces: ['*']\n"
    )
    for name in ("t.json", "t.yaml"):
        scope = load_tokens(tmp_path / name).authenticate("Bearer admin-token-123")
        assert scope.allows("anything", "")


def test_scopes() -> None:
    table = TokenTable.from_mapping(TOKENS)
    team = table.authenticate("Bearer team-a-token-12")
    assert team.name == "team-a"
    assert team.allows("prod-eu", "team-a")
    assert not team.allows("prod-eu", "team-b")
    assert not team.allows("staging", "team-a")
    assert not team.allows("prod-eu", "")  # cluster-scoped objects need "_" or "*"
    assert team.visible_clusters(["prod-1", "dev", "prod-2"]) == ["prod-1", "prod-2"]
    nodes = table.authenticate("bearer nodes-token-123")
    assert nodes.allows("c1", "")
    assert not nodes.allows("c1", "default")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer nope-nope"])
def test_bad_credentials(header: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        TokenTable.from_mapping(TOKENS).authenticate(header)


def test_glob_metacharacters_other_than_star_are_literal() -> None:
    table = TokenTable.from_mapping({"tokens": {"tok-12345": {"clusters": ["c[1]"]}}})
    scope = table.authenticate("Bearer tok-12345")
    assert scope.allows_cluster("c[1]")
    assert not scope.allows_cluster("c1")


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tokens": {}},
        {"tokens": {"short": {"clusters": ["*"]}}},
        {"tokens": {"long-enough": {"clusters": []}}},
        {"tokens": {"long-enough": {"clusters": "*"}}},
        {"tokens": {"long-enough": {"clusters": ["*"], "extra": 1}}},
        {"tokens": {"long-enough": ["*"]}},
    ],
)
def test_bad_token_files(data: dict[str, object]) -> None:
    with pytest.raises(TokenFileError):
        TokenTable.from_mapping(data)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError):
        load_tokens(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("tokens: [unclosed")
    with pytest.raises(TokenFileError):
        load_tokens(tmp_path / "bad.yaml")
