"""Label selector parsing and matching, Kubernetes semantics."""

from __future__ import annotations

import pytest

from query.errors import QueryError
from query.selectors import Operator, parse_selector

LABELS = {"app": "web", "tier": "frontend", "example.com/team": "a"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app=api", False),
        ("app!=api", True),
        ("app!=web", False),
        ("missing!=x", True),  # != selects objects without the label
        ("app in (web,api)", True),
        ("app in (api, db)", False),
        ("app notin (api,db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("example.com/team=a", True),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("app in (web,api),!missing,tier", True),
        ("empty=", False),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


def test_empty_value_matches_empty_label() -> None:
    assert parse_selector("flag=").matches({"flag": ""})


@pytest.mark.parametrize(
    "text",
    [
        "app=web,",
        ",app=web",
        "app in (web",
        "app in web)",
        "app in ()",
        "app in ((a))",
        "app=we b",
        "app=web!",
        "-app=web",
        "app=-web",
        "Bad_Prefix!/x=1",
        "a" * 64 + "=x",
        "app=" + "v" * 64,
        "app > 3",
        "app===web",
        "!",
        "app notin",
        "x" * 5000,
    ],
)
def test_malformed_selectors_raise_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        parse_selector(text)


def test_error_names_the_offending_clause() -> None:
    with pytest.raises(QueryError, match="app=we b"):
        parse_selector("tier=x,app=we b")


def test_index_requirement_prefers_equality() -> None:
    sel = parse_selector("tier,app in (a,b),env=prod,!x")
    req = sel.index_requirement()
    assert req is not None
    assert (req.key, req.operator) == ("env", Operator.EQUALS)
    assert parse_selector("a!=b,!c").index_requirement() is None
    in_req = parse_selector("tier,app in (a,b)").index_requirement()
    assert in_req is not None and in_req.operator is Operator.IN


def test_canonical_is_order_independent() -> None:
    assert (
        parse_selector("b=1,a in (y,x)").canonical()
        == parse_selector("a in (x,y), b==1").canonical()
    )
