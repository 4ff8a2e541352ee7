"""Skip policy for the whole suite (``tests/`` and ``rtl_tests/``): in CI a skip is a failure.

A test skips when something it needs is missing: the official fixtures in ``../shared`` beside the
checkout, an embedded checkpoint, a simulator or formal tool, an importable module. Locally that
stays a skip (listed in the summary by ``-ra``). With ``CI=true`` a green run must mean that every
test ran, so:

* a run without ``../shared/fixtures/official`` stops before collecting, with one line naming it;
* every skip (of a test, or of a whole module at collection) is reported as a failure whose message
  is the skip's reason.

This file sits at the repository root so that it covers both test folders; it imports nothing of
spikegate (``tests/test_ci_policy.py`` runs it on throw-away test files).
"""

from __future__ import annotations

import os

import pytest

SHARED_FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared",
                                                "fixtures", "official"))


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_configure(config):
    if in_ci() and not hasattr(config, "workerinput") and not os.path.isdir(SHARED_FIXTURES):
        raise pytest.UsageError(f"CI=true: {SHARED_FIXTURES} is missing (the shared/ folder must sit beside "
                                f"the checkout; it holds the official fixtures)")


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:   # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = f"skipped, which CI=true does not allow: {_reason(rep.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"{collector.nodeid} skipped at collection, which CI=true does not allow: " \
                       f"{_reason(rep.longrepr)}"
