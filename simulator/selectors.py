"""Label and field selectors, parsed and matched like the real API server. Pure code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from simulator.errors import BadRequestError

Operator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_KEY = r"(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_KEY_RE = re.compile(f"^{_KEY}$")
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*(.*)$")
_CMP_RE = re.compile(rf"^({_KEY})\s*([<>])\s*(-?\d+)$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector."""

    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "=" or self.op == "in":
            return value is not None and value in self.values
        if self.op == "!=" or self.op == "notin":
            return value is None or value not in self.values
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        (bound,) = self.values
        return number > int(bound) if self.op == "gt" else number < int(bound)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise BadRequestError(f"unbalanced parentheses in selector {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise BadRequestError(f"unbalanced parentheses in selector {text!r}")
    parts.append(text[start:])
    return parts


def _value(text: str, selector: str) -> str:
    value = text.strip()
    if not _VALUE.match(value) or len(value) > 63:
        raise BadRequestError(f"invalid label value {value!r} in selector {selector!r}")
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the ``labelSelector`` query parameter (BadRequestError when malformed)."""
    if not text.strip():
        return LabelSelector()
    requirements: list[Requirement] = []
    for raw in _split_top_level(text):
        term = raw.strip()
        if not term:
            raise BadRequestError(f"empty requirement in selector {text!r}")
        if term.startswith("!"):
            key = term[1:].strip()
            if not _KEY_RE.match(key):
                raise BadRequestError(f"invalid label key {key!r} in selector {text!r}")
            requirements.append(Requirement(key, "!"))
            continue
        if match := _SET_RE.match(term):
            values = frozenset(_value(v, text) for v in match.group(3).split(","))
            op: Operator = "in" if match.group(2) == "in" else "notin"
            requirements.append(Requirement(match.group(1), op, values))
            continue
        if match := _EQ_RE.match(term):
            eq: Operator = "!=" if match.group(2) == "!=" else "="
            requirements.append(
                Requirement(match.group(1), eq, frozenset({_value(match.group(3), text)}))
            )
            continue
        if match := _CMP_RE.match(term):
            cmp: Operator = "gt" if match.group(2) == ">" else "lt"
            requirements.append(Requirement(match.group(1), cmp, frozenset({match.group(3)})))
            continue
        if _KEY_RE.match(term):
            requirements.append(Requirement(term, "exists"))
            continue
        raise BadRequestError(f"unable to parse requirement {term!r} in selector {text!r}")
    return LabelSelector(tuple(requirements))


#: Fields every kind supports in ``fieldSelector`` (as on the real server).
SUPPORTED_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """``metadata.name``/``metadata.namespace`` equality terms, all of which must hold."""

    terms: tuple[tuple[str, bool, str], ...] = ()  #: (field, equal?, value)

    def matches(self, namespace: str, name: str) -> bool:
        for field, equal, value in self.terms:
            actual = name if field == "metadata.name" else namespace
            if (actual == value) != equal:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.terms


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the ``fieldSelector`` query parameter (BadRequestError when unsupported)."""
    if not text.strip():
        return FieldSelector()
    terms: list[tuple[str, bool, str]] = []
    for raw in text.split(","):
        term = raw.strip()
        if "!=" in term:
            field, value = term.split("!=", 1)
            equal = False
        elif "==" in term:
            field, value = term.split("==", 1)
            equal = True
        elif "=" in term:
            field, value = term.split("=", 1)
            equal = True
        else:
            raise BadRequestError(f"invalid field selector term {term!r}")
        field = field.strip()
        if field not in SUPPORTED_FIELDS:
            raise BadRequestError(f'field label not supported: "{field}"')
        terms.append((field, equal, value.strip()))
    return FieldSelector(tuple(terms))
