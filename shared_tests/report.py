"""The pytest side of the per-behaviour report (tools/grading/report.py): every test marked
@behaviour fills in its (behaviour, stage) outcome; the report is printed after every run, and
with --report-dir also written as report.txt and results.json (Gradescope's format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.grading.report import FAILED, PASSED, SKIPPED, Outcome, Report

LONGEST_REASON = 240  # characters of a failure's reason worth showing in a report


def first_line(report) -> str:
    """The sentence a test failed or skipped with, without pytest's decoration."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        text = longrepr[2]
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr)
    line = (text.strip().splitlines() or [""])[0]
    for prefix in ("AssertionError: ", "Failed: ", "Skipped: "):
        line = line.removeprefix(prefix)
    if len(line) > LONGEST_REASON:
        line = line[: LONGEST_REASON - 1] + "…"
    return line


class BehaviourReport:
    """A pytest plugin that fills a Report from the test results."""

    def __init__(self, report: Report, report_dir):
        self.report = report
        self.report_dir = Path(report_dir) if report_dir else None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        marker = item.get_closest_marker("behaviour")
        callspec = getattr(item, "callspec", None)
        if marker and callspec and callspec.params.get("stage"):
            report = outcome.get_result()
            report.workshop_key = (marker.args[0], callspec.params["stage"])
            cause = getattr(item, "workshop_cause", None)
            if report.failed and cause is not None:
                report.workshop_cause = cause() or ""

    def pytest_runtest_logreport(self, report):
        key = getattr(report, "workshop_key", None)
        if key is None:
            return
        key = tuple(key)  # a list once it crossed from a pytest-xdist worker
        outcomes = self.report.outcomes
        current = outcomes.get(key)
        if report.failed:
            if current is None or current.status != FAILED:
                cause = getattr(report, "workshop_cause", "")
                outcomes[key] = Outcome(FAILED, first_line(report), cause)
        elif report.skipped:
            if current is None or current.status == PASSED:
                outcomes[key] = Outcome(SKIPPED, first_line(report))
        elif report.when == "call" and current is None:
            outcomes[key] = Outcome(PASSED)

    def pytest_terminal_summary(self, terminalreporter):
        lines = self.report.lines()
        if not lines:
            return
        terminalreporter.section("behaviours", sep="=")
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session):
        """Written last, after every server and browser of the session has stopped."""
        if self.report_dir is not None:
            self.report.write(self.report_dir)
