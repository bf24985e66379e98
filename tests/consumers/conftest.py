"""Consumer tests create topics under unique prefixes; delete them after each test so
the shared broker does not collect thousands of test topics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from consumer_support import delete_topics_with, take_prefixes


@pytest.fixture(autouse=True)
async def _delete_test_topics(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    take_prefixes()
    yield
    prefixes = take_prefixes()
    if prefixes and request.node.get_closest_marker("kafka") is not None:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        with contextlib.suppress(Exception):  # cleanup must not fail a test
            await delete_topics_with(bootstrap, prefixes)
