"""Query-string parsing and validation shared by the routes. Pure code.

Every malformed or unknown parameter is a QueryError (HTTP 400) naming it, so a
client typo (``?labelselector=``) is reported instead of silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from query.auth import CLUSTER_SCOPED
from query.errors import QueryError
from query.selectors import Selector, parse_selector
from query.timeparse import parse_at

_CLUSTER = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_GROUP = re.compile(r"^(core|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,62}$")
_NAMESPACE = re.compile(r"^(_|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")
_NAME_CHARS = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.:@]{0,252})?$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may ask for."""

    default_limit: int = 500  #: items per LIST page when ``limit`` is absent
    max_limit: int = 10_000  #: largest page; bigger pages must paginate
    max_clusters: int = 1_000  #: clusters named in one request


def reject_unknown(params: Iterable[str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise QueryError(
            f"unknown query parameter(s) {', '.join(unknown)}; this endpoint accepts"
            f" {', '.join(sorted(allowed)) or 'none'}"
        )


def single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise QueryError(f"query parameter {name} given {len(values)} times; give it once")
    return values[0] if values else None


def cluster_name(text: str) -> str:
    if not _CLUSTER.match(text):
        raise QueryError(f"cluster {text!r} is not a valid cluster name (a DNS label)")
    return text


def clusters_param(values: Sequence[str], limits: Limits) -> list[str] | None:
    """``?cluster=a&cluster=b`` or ``?cluster=a,b``; None means every cluster in scope."""
    names = [n.strip() for v in values for n in v.split(",")]
    if not names:
        return None
    if len(names) > limits.max_clusters:
        raise QueryError(f"at most {limits.max_clusters} clusters per request")
    return sorted({cluster_name(n) for n in names})


def group_param(text: str | None) -> str | None:
    """API group; ``core`` (or empty) is the core group "". None: any group."""
    if text is None:
        return None
    if text == "":
        return ""
    if not _GROUP.match(text) or len(text) > 253:
        raise QueryError(f"group {text!r} is not a valid API group (use 'core' for the core group)")
    return "" if text == "core" else text


def kind_param(text: str | None) -> str | None:
    if text is None:
        return None
    if not _KIND.match(text):
        raise QueryError(f"kind {text!r} is not a valid kind (e.g. Deployment)")
    return text


def namespace_param(text: str | None) -> str | None:
    """Namespace; ``_`` is the empty namespace of cluster-scoped objects. None: any."""
    if text is None:
        return None
    if not _NAMESPACE.match(text):
        raise QueryError(
            f"namespace {text!r} is not a valid namespace (use '_' for cluster-scoped objects)"
        )
    return "" if text == CLUSTER_SCOPED else text


def name_param(text: str, what: str = "name") -> str:
    if not _NAME_CHARS.match(text):
        raise QueryError(f"{what} {text!r} is not a valid object name")
    return text


def name_prefix_param(text: str | None) -> str:
    if not text:
        return ""
    if len(text) > 253 or not re.match(r"^[-A-Za-z0-9_.:@]+$", text):
        raise QueryError(f"namePrefix {text!r} has characters no object name can contain")
    return text


def limit_param(text: str | None, limits: Limits) -> int:
    if text is None:
        return limits.default_limit
    if not re.match(r"^[0-9]{1,9}$", text.strip()):
        raise QueryError(f"limit={text!r} must be a whole number from 1 to {limits.max_limit}")
    value = int(text)
    if not 1 <= value <= limits.max_limit:
        raise QueryError(f"limit={value} is out of range: 1 to {limits.max_limit}")
    return value


def bool_param(text: str | None, name: str) -> bool:
    if text is None:
        return False
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise QueryError(f"{name}={text!r} must be true or false")


def selector_param(text: str | None) -> Selector:
    return parse_selector(text)


def at_param(text: str | None, now_ms: int) -> int | None:
    return None if text is None else parse_at(text, now_ms)


def position_param(text: str | None) -> int | None:
    """A change-feed position (``?from=`` or ``Last-Event-ID``): a non-negative integer."""
    if text is None or text.strip() == "":
        return None
    if not re.match(r"^[0-9]{1,19}$", text.strip()):
        raise QueryError(
            f"feed position {text!r} must be a non-negative integer (an event id the feed sent)"
        )
    value = int(text)
    if value >= 2**63:
        raise QueryError(f"feed position {text!r} is out of range")
    return value
