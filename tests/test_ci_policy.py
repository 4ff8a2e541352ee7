"""The suite's skip policy (the repository root's conftest.py), run on throw-away test files:
with CI=true a skip fails with its reason and a missing shared/ stops the run at once; without CI a
skip stays a skip."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

POLICY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conftest.py")

TESTS = """
import pytest

def test_runs():
    pass

def test_needs_a_tool():
    pytest.skip("iverilog is not installed")

@pytest.mark.skipif(True, reason="no trained checkpoint")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("no_such_module_for_the_policy_test")

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester):
    """A checkout (the policy as its root conftest) with a ``shared/fixtures/official`` beside it."""
    with open(POLICY) as f:
        pytester.makeconftest(f.read())
    pytester.makepyfile(test_some=TESTS)
    shared = pytester.path.parent / "shared" / "fixtures" / "official"
    shared.mkdir(parents=True, exist_ok=True)
    return pytester


def test_locally_a_skip_stays_a_skip(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    suite.makepyfile(test_module_skip=MODULE_SKIP)
    r = suite.runpytest_subprocess("-ra")
    r.assert_outcomes(passed=1, skipped=3, xfailed=1)
    r.stdout.fnmatch_lines_random(["*SKIPPED*iverilog is not installed*", "*SKIPPED*no_such_module*"])
    assert r.ret == 0


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])   # make test uses -n
def test_in_ci_every_skip_fails_with_its_reason(suite, monkeypatch, workers):
    monkeypatch.setenv("CI", "true")
    r = suite.runpytest_subprocess("-ra", *workers)
    r.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)   # (a skipif skips at setup: an error)
    r.stdout.fnmatch_lines_random([
        "*skipped, which CI=true does not allow: iverilog is not installed*",
        "*skipped, which CI=true does not allow: no trained checkpoint*",
    ])
    assert r.ret == pytest.ExitCode.TESTS_FAILED


def test_in_ci_a_module_skipped_at_collection_is_an_error(suite, monkeypatch):
    suite.makepyfile(test_module_skip=MODULE_SKIP)
    monkeypatch.setenv("CI", "true")
    r = suite.runpytest_subprocess("-ra")
    r.stdout.fnmatch_lines(["*test_module_skip.py skipped at collection, which CI=true does not allow:*"
                            "no_such_module_for_the_policy_test*"])
    assert r.ret == pytest.ExitCode.INTERRUPTED    # pytest stops on a collection error


def test_in_ci_a_missing_shared_folder_stops_the_run_with_one_line(suite, monkeypatch):
    (suite.path.parent / "shared" / "fixtures" / "official").rmdir()
    monkeypatch.setenv("CI", "true")
    r = suite.runpytest_subprocess()
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in r.errlines if line.strip()]
    assert len(errors) == 1, r.errlines
    assert errors[0].startswith("ERROR: CI=true: ") and "shared" in errors[0] and "is missing" in errors[0]
    assert "collected" not in r.stdout.str()
