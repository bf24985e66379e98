"""Kubernetes label selectors: parse the string syntax, match label maps. Pure code.

Grammar (as ``kubectl -l`` / ``?labelSelector=``), requirements joined by commas::

    key                 the label exists
    !key                the label does not exist
    key=value           equal (also ``==``)
    key!=value          not equal, or the label is absent
    key in (v1,v2)      one of the values
    key notin (v1,v2)   none of the values, or the label is absent

Keys are qualified names (optional DNS-subdomain prefix and ``/``); values are
empty or label values (63 characters at most). All requirements must hold.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from query.errors import QueryError

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY_RE = re.compile(rf"^(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})$")
_VALUE_RE = re.compile(rf"^(?:{_NAME})?$")
_KEY_CHARS = r"[-A-Za-z0-9_./]+"
_EXISTS = re.compile(rf"^\s*(?P<key>{_KEY_CHARS})\s*$")
_NOT_EXISTS = re.compile(rf"^\s*!\s*(?P<key>{_KEY_CHARS})\s*$")
_SET = re.compile(rf"^\s*(?P<key>{_KEY_CHARS})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQUALITY = re.compile(rf"^\s*(?P<key>{_KEY_CHARS})\s*(?P<op>==|=|!=)\s*(?P<value>[^=!\s,]*)\s*$")
#: Longest selector string accepted: far above any real one, bounds parsing work.
MAX_SELECTOR_CHARS = 4096


class Operator(enum.Enum):
    EXISTS = "exists"
    NOT_EXISTS = "!"
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause of a selector."""

    key: str  #: label key, validated
    operator: Operator
    values: frozenset[str] = frozenset()  #: one value for =/!=, one or more for in/notin

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.NOT_EXISTS:
            return self.key not in labels
        value = labels.get(self.key)
        if op in (Operator.EQUALS, Operator.IN):
            return value is not None and value in self.values
        # != and notin also select objects without the label (Kubernetes semantics).
        return value is None or value not in self.values

    @property
    def indexable(self) -> bool:
        """The label index can answer it: it names the key (and values) that must be present."""
        return self.operator in (Operator.EXISTS, Operator.EQUALS, Operator.IN)

    def canonical(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.NOT_EXISTS:
            return f"!{self.key}"
        if op in (Operator.EQUALS, Operator.NOT_EQUALS):
            (value,) = self.values
            return f"{self.key}{op.value}{value}"
        return f"{self.key} {op.value} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def index_requirement(self) -> Requirement | None:
        """The requirement the label index should drive the lookup with, or None for a scan.

        Equality beats ``in`` (fewer values to look up) beats ``exists``.
        """
        rank = {Operator.EQUALS: 0, Operator.IN: 1, Operator.EXISTS: 2}
        candidates = [r for r in self.requirements if r.indexable]
        if not candidates:
            return None
        return min(candidates, key=lambda r: (rank[r.operator], len(r.values), r.key))

    def canonical(self) -> str:
        """Order-independent text form (used to bind continue tokens to their query)."""
        return ",".join(sorted(r.canonical() for r in self.requirements))


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise QueryError("label selector: nested parentheses are not allowed")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise QueryError("label selector: ')' without a matching '('")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise QueryError("label selector: '(' without a matching ')'")
    parts.append(text[start:])
    return parts


def _key(raw: str, clause: str) -> str:
    m = _KEY_RE.match(raw)
    if m is None or len(m.group("name")) > 63 or len(m.group("prefix") or "") > 253:
        raise QueryError(
            f"label selector: invalid label key {raw!r} in {clause.strip()!r} (a key is an"
            " optional DNS-subdomain prefix and '/', then 1-63 characters [A-Za-z0-9-_.]"
            " starting and ending with a letter or digit)"
        )
    return raw


def _value(raw: str, clause: str) -> str:
    if len(raw) > 63 or not _VALUE_RE.match(raw):
        raise QueryError(
            f"label selector: invalid label value {raw!r} in {clause.strip()!r} (a value is"
            " empty or 1-63 characters [A-Za-z0-9-_.] starting and ending with a letter or digit)"
        )
    return raw


def _requirement(clause: str) -> Requirement:
    if m := _NOT_EXISTS.match(clause):
        return Requirement(_key(m.group("key"), clause), Operator.NOT_EXISTS)
    if m := _SET.match(clause):
        raw_values = [v.strip() for v in m.group("values").split(",")]
        if raw_values == [""]:
            raise QueryError(
                f"label selector: {clause.strip()!r} needs at least one value in parentheses"
            )
        values = frozenset(_value(v, clause) for v in raw_values)
        op = Operator.IN if m.group("op") == "in" else Operator.NOT_IN
        return Requirement(_key(m.group("key"), clause), op, values)
    if m := _EQUALITY.match(clause):
        op = Operator.NOT_EQUALS if m.group("op") == "!=" else Operator.EQUALS
        return Requirement(
            _key(m.group("key"), clause), op, frozenset({_value(m.group("value"), clause)})
        )
    if m := _EXISTS.match(clause):
        return Requirement(_key(m.group("key"), clause), Operator.EXISTS)
    raise QueryError(
        f"label selector: cannot parse {clause.strip()!r}; expected key, !key, key=value,"
        " key==value, key!=value, key in (a,b) or key notin (a,b)"
    )


def parse_selector(text: str | None) -> Selector:
    """Parse a selector string; raises QueryError (HTTP 400) with the offending clause."""
    if text is None or not text.strip():
        return Selector()
    if len(text) > MAX_SELECTOR_CHARS:
        raise QueryError(f"label selector longer than {MAX_SELECTOR_CHARS} characters")
    clauses = _split_top_level(text)
    if any(not c.strip() for c in clauses):
        raise QueryError(f"label selector {text!r} has an empty requirement (stray comma?)")
    return Selector(tuple(_requirement(c) for c in clauses))
