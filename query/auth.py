"""Bearer tokens and the scopes they grant. Pure code plus one file reader.

The tokens file (YAML or JSON) maps each token to the clusters and namespaces it
may see::

    tokens:
      s3cr3t-admin:
        clusters: ["*"]
        namespaces: ["*"]
      s3cr3t-team-a:
        clusters: ["prod-*", "staging"]
        namespaces: ["team-a", "_"]     # "_" = cluster-scoped objects (Nodes, Namespaces...)

``*`` matches any run of characters (``prod-*``). A namespace list without a
wildcard entry does not include cluster-scoped objects unless it names ``_``.
Tokens are looked up by their SHA-256, so the plain tokens are not kept in memory.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from query.errors import TokenFileError, UnauthorizedError

#: URL and tokens-file spelling of the empty namespace of cluster-scoped objects.
CLUSTER_SCOPED = "_"


@dataclass(frozen=True, slots=True)
class Scope:
    """What one token may see: an object is visible when its cluster matches one of
    ``clusters`` and its namespace one of ``namespaces`` (glob patterns, ``*`` = any)."""

    name: str  #: label for logs (never the token itself)
    clusters: tuple[str, ...]  #: cluster name patterns
    namespaces: tuple[str, ...]  #: namespace patterns; "_" is the cluster-scoped namespace

    def allows_cluster(self, cluster: str) -> bool:
        """The token may see at least part of ``cluster``."""
        return any(_match(cluster, p) for p in self.clusters)

    def allows_namespace(self, namespace: str) -> bool:
        ns = namespace or CLUSTER_SCOPED
        return any(_match(ns, p) for p in self.namespaces)

    def allows(self, cluster: str, namespace: str) -> bool:
        return self.allows_cluster(cluster) and self.allows_namespace(namespace)

    @property
    def all_namespaces(self) -> bool:
        return "*" in self.namespaces

    @property
    def unrestricted(self) -> bool:
        """Sees everything: per-object scope checks can be skipped."""
        return "*" in self.clusters and "*" in self.namespaces

    def visible_clusters(self, clusters: Iterable[str]) -> list[str]:
        return sorted(c for c in clusters if self.allows_cluster(c))


def _match(value: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if "*" not in pattern:
        return value == pattern
    # Only "*" is special: escape fnmatch's other metacharacters.
    escaped = pattern.replace("[", "[[]").replace("?", "[?]")
    return fnmatch.fnmatchcase(value, escaped)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class TokenTable:
    """Token digests to scopes."""

    scopes: Mapping[bytes, Scope]  #: sha256(token) -> scope

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TokenTable:
        """Build from the parsed tokens file (``{"tokens": {token: {clusters, namespaces}}}``)."""
        tokens = data.get("tokens") if isinstance(data, Mapping) else None
        if not isinstance(tokens, Mapping) or not tokens:
            raise TokenFileError("tokens file needs a non-empty 'tokens' mapping: token -> scope")
        scopes: dict[bytes, Scope] = {}
        for i, (token, spec) in enumerate(tokens.items()):
            if not isinstance(token, str) or len(token) < 8:
                raise TokenFileError(f"token #{i + 1} must be a string of at least 8 characters")
            if not isinstance(spec, Mapping):
                raise TokenFileError(f"token #{i + 1}: scope must be a mapping")
            unknown = set(spec) - {"clusters", "namespaces", "name"}
            if unknown:
                raise TokenFileError(f"token #{i + 1}: unknown keys {sorted(unknown)}")
            scopes[_digest(token)] = Scope(
                name=str(spec.get("name") or f"token-{i + 1}"),
                clusters=_patterns(spec.get("clusters"), f"token #{i + 1} clusters"),
                namespaces=_patterns(spec.get("namespaces", ["*"]), f"token #{i + 1} namespaces"),
            )
        return cls(scopes)

    def authenticate(self, authorization: str | None) -> Scope:
        """Scope of an ``Authorization: Bearer <token>`` header; UnauthorizedError otherwise."""
        if not authorization:
            raise UnauthorizedError("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("Authorization header must be 'Bearer <token>'")
        scope = self.scopes.get(_digest(token.strip()))
        if scope is None:
            raise UnauthorizedError("unknown bearer token")
        return scope


def _patterns(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise TokenFileError(f"{what} must be a non-empty list of names or patterns")
    out = []
    for p in value:
        if not isinstance(p, str) or not p:
            raise TokenFileError(f"{what}: {p!r} is not a non-empty string")
        out.append(p)
    return tuple(out)


def load_tokens(path: Path) -> TokenTable:
    """Read a tokens file; JSON if it parses as JSON, else YAML."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TokenFileError(f"cannot read tokens file {path}: {exc}") from exc
    data: Any
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TokenFileError(f"tokens file {path} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TokenFileError(f"tokens file {path} must hold a mapping with a 'tokens' key")
    return TokenTable.from_mapping(data)
