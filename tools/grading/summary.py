"""grade-report/index.html: one page for a graded class, students x behaviours, sortable by
any column, readable offline (no external file: its style and script are inside). Every text
that comes from a submission (names, failure reasons) is escaped."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path

from tools.course import load_course
from tools.grading.report import selected_behaviours

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
p.meta { color: #666; margin: 0 0 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: center; }
th { background: #f4f4f4; cursor: pointer; user-select: none; white-space: nowrap; }
th.behaviour { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left;
  font-weight: normal; padding: .5em .2em; }
th.sorted-up::after { content: " \\25B2"; } th.sorted-down::after { content: " \\25BC"; }
td.student { text-align: left; font-weight: 600; }
td.pass { background: #e6f4ea; color: #137333; }
td.fail { background: #fce8e6; color: #a50e0e; }
td.feedback { opacity: .6; }
tr.share td { background: #fafafa; font-style: italic; }
td.note { text-align: left; color: #666; max-width: 28em; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
"""
# Click a heading to sort by it (again: the other way); the share row stays last.
SCRIPT = """
document.querySelectorAll("th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const up = !th.classList.contains("sorted-up");
  document.querySelectorAll("th").forEach(h => h.classList.remove("sorted-up", "sorted-down"));
  th.classList.add(up ? "sorted-up" : "sorted-down");
  const key = row => row.cells[column].dataset.sort ?? row.cells[column].textContent;
  const rows = [...body.rows].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
    return up ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}));
"""


def cell(test: dict | None) -> str:
    if test is None:
        return '<td data-sort="-1">–</td>'
    classes = "pass" if test["status"] == "passed" else "fail"
    if not test.get("scored", True):
        classes += " feedback"
    mark, rank = ("✓", 1) if test["status"] == "passed" else ("✗", 0)
    reason = escape(
        test.get("output", "").splitlines()[0] if test.get("output") else ""
    )
    return f'<td class="{classes}" data-sort="{rank}" title="{reason}">{mark}</td>'


def note_cell(note: str) -> str:
    return f'<td class="note" title="{escape(note)}">{escape(note)}</td>'


def write_summary(grades, options, path: Path) -> None:
    course = load_course()
    stage = course.stage(options.stage)
    behaviours = selected_behaviours(
        course, options.stage, options.kind, options.behaviours
    )
    heads = ["student", "score", "max"] + [b.id for b in behaviours] + ["note"]
    titles = ["", "", ""] + [f"{b.kind}: {b.title}" for b in behaviours] + [""]
    head = "".join(
        f'<th{" class=behaviour" if t else ""} title="{escape(t)}">{escape(h)}</th>'
        for h, t in zip(heads, titles, strict=True)
    )
    rows = []
    for grade in grades:
        tests = {t["behaviour"]: t for t in grade.results.get("tests", [])}
        score = grade.results.get("score", 0)
        cells = [
            f'<td class="student">{escape(grade.student)}</td>',
            f'<td data-sort="{score}">{score}</td>',
            f"<td>{grade.results.get('max_score', 0)}</td>",
            *(cell(tests.get(b.id)) for b in behaviours),
            note_cell(grade.note or grade.results.get("cannot_grade", "")),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    shares = []
    for behaviour in behaviours:
        passed = sum(
            1
            for g in grades
            for t in g.results.get("tests", [])
            if t["behaviour"] == behaviour.id and t["status"] == "passed"
        )
        shares.append(f"<td>{round(100 * passed / max(1, len(grades)))}%</td>")
    share_row = (
        '<tr class="share"><td class="student">passed by</td><td></td><td></td>'
        + "".join(shares)
        + "<td></td></tr>"
    )
    scope = "core + robustness" if options.strict else "core (robustness as feedback)"
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Stage {stage.number}: {escape(stage.title)}, {len(grades)} students</title>
<style>{STYLE}</style></head>
<body>
<h1>Stage {stage.number}: {escape(stage.title)}</h1>
<p class="meta">{len(grades)} students, scored on {scope}, graded {when}.
Click a heading to sort; hover a ✗ for the reason. Each student's full report:
<code>&lt;student&gt;/report.txt</code>.</p>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
<tfoot>{share_row}</tfoot>
</table>
<script>{SCRIPT}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
