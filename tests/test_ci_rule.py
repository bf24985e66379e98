"""The CI rule in tests/conftest.py, checked on inner pytest runs of small suites.

In CI (CI=true) or with --require-kafka, a skipped kafka test is a failure and
a run in which no kafka test executed fails; elsewhere a skip is just a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text()

SUITE = """
import pytest

@pytest.mark.kafka
def test_wants_kafka():
    if KAFKA_SKIPS:
        pytest.skip("pretend the broker is missing")

def test_plain():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    kafka: needs the broker\n")
    return pytester


def run(inner: pytest.Pytester, *, skips: bool, args: tuple[str, ...] = ()) -> pytest.RunResult:
    inner.makepyfile(test_suite=f"KAFKA_SKIPS = {skips}\n" + SUITE)
    return inner.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_outside_ci_a_skipped_kafka_test_is_a_skip(inner: pytest.Pytester) -> None:
    result = run(inner, skips=True)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


def test_require_kafka_turns_the_skip_into_a_failure(inner: pytest.Pytester) -> None:
    result = run(inner, skips=True, args=("--require-kafka",))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*skipped while Kafka is required*"])


def test_ci_fails_a_run_without_kafka_tests(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = run(inner, skips=False, args=("-m", "not kafka"))
    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no kafka test ran*"])


def test_ci_passes_when_kafka_tests_ran(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = run(inner, skips=False)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*kafka tests executed against the real broker: 1*"])
