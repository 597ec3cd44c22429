"""The per-behaviour report of a run: which behaviours each stage shows, with points, a one-line
reason for each failure and the hint that points to the docs. Rendered as text (report.txt,
printed after every run) and as results.json in Gradescope's format.

The test session fills it in (shared_tests/report.py); the grader fills one in itself when a run
could not finish, so that every run ends in a report that says why."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tools.course import Behaviour, Course

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
DOCS_ROOT = "docs/en/"


@dataclass
class Outcome:
    status: str
    message: str = ""
    cause: str = ""  # the exception a server logged during the failed check


def selected_behaviours(
    course: Course, stage: int, kind: str | None = None, only=()
) -> list[Behaviour]:
    """The behaviours a run checks at `stage` (narrowed by --kind and --behaviour)."""
    return [
        b
        for b in course.behaviours
        if b.checked_at(stage)
        and (kind is None or b.kind == kind)
        and (not only or b.id in only)
    ]


@dataclass
class Report:
    course: Course
    stages: list[int]
    strict: bool
    source: str = ""  # the graded project's folder ("" for the workshop's own stages)
    outcomes: dict[tuple[str, int], Outcome] = field(default_factory=dict)
    # Lines about the run itself: how it was sandboxed, servers that died or hit a limit.
    notes: list[str] = field(default_factory=list)
    cannot_grade: str | None = None  # why the project could not be graded at all

    def fail_all(self, behaviours: list[Behaviour], stage: int, reason: str) -> None:
        """Mark behaviours that could not be checked as failed, saying why."""
        for behaviour in behaviours:
            self.outcomes[(behaviour.id, stage)] = Outcome(FAILED, reason)

    # -- scores -----------------------------------------------------------------------------
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

    # -- text -------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        lines = [f"Cannot grade: {self.cannot_grade}", ""] if self.cannot_grade else []
        for stage in self.stages:
            behaviours = self.checked(stage)
            if not behaviours:
                continue
            title = self.course.stage(stage).title
            got, total = self.score(stage)
            source = f" - {self.source}" if self.source else ""
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
            lines.extend(self.mutation_score(stage))
            lines.append("")
        lines.extend(self.notes)
        return lines

    def mutation_score(self, stage: int) -> list[str]:
        """Stage 6: how many planted mistakes the project's own tests caught."""
        planted = [b for b in self.checked(stage) if b.plant]
        if not planted:
            return []
        caught = [b for b in planted if self.outcomes[(b.id, stage)].status == PASSED]
        core = [b for b in planted if b.kind == "core"]
        core_caught = [b for b in caught if b.kind == "core"]
        return [
            f"  your tests caught {len(caught)} of {len(planted)} planted mistakes "
            f"({len(core_caught)} of the {len(core)} core ones)"
        ]

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
        if outcome.cause:
            lines.append(f"               cause (the server's log): {outcome.cause}")
        return lines

    # -- Gradescope -------------------------------------------------------------------------
    def results(self) -> dict:
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
                if outcome.cause:
                    output += f"\nCause (the server's log): {outcome.cause}"
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
        results = {
            "score": score,
            "max_score": max_score,
            "passed": not failed_scored and bool(tests) and not self.cannot_grade,
            "output": "\n".join(
                ([f"Cannot grade: {self.cannot_grade}"] if self.cannot_grade else [])
                + self.notes
            ),
            "tests": tests,
        }
        if self.cannot_grade:
            results["cannot_grade"] = self.cannot_grade
        return results

    def write(self, folder: Path) -> None:
        """report.txt and results.json into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.txt").write_text("\n".join(self.lines()), encoding="utf-8")
        (folder / "results.json").write_text(
            json.dumps(self.results(), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
