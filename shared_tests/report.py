"""The per-behaviour report: which behaviours each stage shows, with points, a one-line reason
for each failure and the hint that points to the docs. Printed after every run; with
--report-dir it is also written as results.json in Gradescope's format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.course import Behaviour, Course

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
DOCS_ROOT = "docs/en/"
LONGEST_REASON = 240  # characters of a failure's reason worth showing in a report


@dataclass
class Outcome:
    status: str
    message: str = ""


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
    def __init__(self, course: Course, stages, strict: bool, report_dir, project):
        self.course = course
        self.stages = stages
        self.strict = strict
        self.report_dir = Path(report_dir) if report_dir else None
        self.project = project
        self.outcomes: dict[tuple[str, int], Outcome] = {}

    # -- collecting -------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        marker = item.get_closest_marker("behaviour")
        callspec = getattr(item, "callspec", None)
        if marker and callspec and callspec.params.get("stage"):
            outcome.get_result().workshop_key = (
                marker.args[0],
                callspec.params["stage"],
            )

    def pytest_runtest_logreport(self, report):
        key = getattr(report, "workshop_key", None)
        if key is None:
            return
        current = self.outcomes.get(key)
        if report.failed:
            if current is None or current.status != FAILED:
                self.outcomes[key] = Outcome(FAILED, first_line(report))
        elif report.skipped:
            if current is None or current.status == PASSED:
                self.outcomes[key] = Outcome(SKIPPED, first_line(report))
        elif report.when == "call" and current is None:
            self.outcomes[key] = Outcome(PASSED)

    # -- reporting --------------------------------------------------------------------------
    def checked(self, stage: int) -> list[Behaviour]:
        return [
            b
            for b in self.course.behaviours
            if b.checked_at(stage) and (b.id, stage) in self.outcomes
        ]

    def score(self, stage: int) -> tuple[int, int]:
        counted = [b for b in self.checked(stage) if b.counts(self.strict)]
        got = sum(
            b.points for b in counted if self.outcomes[(b.id, stage)].status == PASSED
        )
        return got, sum(b.points for b in counted)

    def lines(self) -> list[str]:
        lines = []
        for stage in self.stages:
            behaviours = self.checked(stage)
            if not behaviours:
                continue
            title = self.course.stage(stage).title
            got, total = self.score(stage)
            source = f" - {self.project.root}" if self.project else ""
            lines.append(f"Stage {stage}: {title}{source}")
            for kind in ("core", "robustness"):
                group = [b for b in behaviours if b.kind == kind]
                if not group:
                    continue
                counted = self.strict or kind == "core"
                lines.append(f"  {kind}{'' if counted else ' (feedback, not scored)'}:")
                for behaviour in group:
                    lines.extend(self.behaviour_lines(behaviour, stage, counted))
            scope = "core + robustness" if self.strict else "core"
            lines.append(f"  score: {got}/{total} ({scope})")
            lines.append("")
        return lines

    def behaviour_lines(
        self, behaviour: Behaviour, stage: int, counted: bool
    ) -> list[str]:
        outcome = self.outcomes[(behaviour.id, stage)]
        mark = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}[outcome.status]
        points = behaviour.points if outcome.status == PASSED else 0
        score = f"{points}/{behaviour.points}" if counted else "-"
        expected = behaviour.expected_at(stage)
        scene = "" if expected == "yes" else f" [stage {stage}: {expected}]"
        lines = [f"    {mark} {score:>5}  {behaviour.title}{scene}"]
        if outcome.status != PASSED:
            lines.append(f"               why:  {outcome.message}")
        if outcome.status == FAILED:
            lines.append(f"               hint: {behaviour.hint}")
            lines.append(f"               read: {DOCS_ROOT}{behaviour.docs}")
        return lines

    def pytest_terminal_summary(self, terminalreporter):
        lines = self.lines()
        if not lines:
            return
        terminalreporter.section("behaviours", sep="=")
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session):
        if self.report_dir is None:
            return
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "report.txt").write_text(
            "\n".join(self.lines()), encoding="utf-8"
        )
        results = self.gradescope_results()
        (self.report_dir / "results.json").write_text(
            json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    def gradescope_results(self) -> dict:
        tests, score, max_score = [], 0, 0
        for stage in self.stages:
            for behaviour in self.checked(stage):
                outcome = self.outcomes[(behaviour.id, stage)]
                counted = behaviour.counts(self.strict)
                passed = outcome.status == PASSED
                points = behaviour.points if counted else 0
                output = "" if passed else outcome.message
                if outcome.status == FAILED:
                    output += (
                        f"\nHint: {behaviour.hint}\nRead: {DOCS_ROOT}{behaviour.docs}"
                    )
                tests.append(
                    {
                        "name": f"[stage {stage}, {behaviour.kind}] {behaviour.title}",
                        "score": points if passed else 0,
                        "max_score": points,
                        "status": outcome.status,
                        "output": output.strip(),
                        "behaviour": behaviour.id,
                        "scored": counted,
                    }
                )
                score += points if passed else 0
                max_score += points
        failed_scored = [t for t in tests if t["scored"] and t["status"] != PASSED]
        return {
            "score": score,
            "max_score": max_score,
            "passed": not failed_scored and bool(tests),
            "tests": tests,
        }
