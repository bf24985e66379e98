"""Session-wide test wiring: the real local Kafka broker and the CI rule for kafka tests.

``kafka_bootstrap`` starts the broker through the same code path as
``kubedelta kafka start`` (``plumbing.broker``) when it is not running, and
stops it at the end only if this session started it and no other test session
still uses it. Tests that need it are marked ``@pytest.mark.kafka``.

CI rule: with ``CI=true`` or ``--require-kafka``, a skipped kafka test counts
as a failure, and the run fails when no kafka test executed at all, so a
missing broker can never turn into a green build that tested nothing real.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from plumbing import broker

pytest_plugins = ["pytester"]  # tests/test_ci_rule.py runs inner pytest sessions

_KAFKA_EXECUTED = pytest.StashKey[int]()
_KAFKA_REQUIRED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-kafka",
        action="store_true",
        default=False,
        help="fail when a kafka-marked test is skipped or none runs (always on when CI=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    required = bool(config.getoption("--require-kafka")) or os.environ.get("CI") == "true"
    config.stash[_KAFKA_REQUIRED] = required
    config.stash[_KAFKA_EXECUTED] = 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if item.get_closest_marker("kafka") is None:
        return
    if report.when == "call" and not report.skipped:
        item.config.stash[_KAFKA_EXECUTED] += 1
    if report.skipped and item.config.stash[_KAFKA_REQUIRED] and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"kafka test skipped while Kafka is required (CI=true or --require-kafka): "
            f"{report.longrepr!r}"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not config.stash.get(_KAFKA_REQUIRED, False) or session.testscollected == 0:
        return
    if config.stash.get(_KAFKA_EXECUTED, 0) == 0 and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    if not config.stash.get(_KAFKA_REQUIRED, False):
        return
    executed = config.stash.get(_KAFKA_EXECUTED, 0)
    terminalreporter.write_line(f"kafka tests executed against the real broker: {executed}")
    if executed == 0:
        terminalreporter.write_line(
            "FAILED: Kafka is required (CI=true or --require-kafka) but no kafka test ran",
            red=True,
        )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address ("127.0.0.1:9092") of the real local broker, started on demand."""
    config = broker.LocalBrokerConfig.from_env(os.environ)
    with broker.borrowed(config) as bootstrap:
        yield bootstrap
