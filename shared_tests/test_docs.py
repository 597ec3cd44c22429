"""The docs cannot drift: generated blocks match their sources, the Chinese and English trees
have the same pages and structure, links and images resolve, and every message the tools print
is explained in the troubleshooting pages."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.course import REPO, load_course
from tools.docs import BLOCK, DOCS, SCREENSHOTS, shown_in_docs

pytestmark = pytest.mark.repository
COURSE = load_course()
LANGUAGES = ("en", "zh")
REQUIRED_PAGES = {
    "index.md",
    *(stage.docs for stage in COURSE.stages),
    "beyond-the-tutorial.md",
    "testing-and-grading.md",
    "for-instructors.md",
    "troubleshooting.md",
    "why-async.md",
}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
FENCE = re.compile(r"^(`{3,})(\w*)\n.*?^\1\n", re.MULTILINE | re.DOTALL)
# A phrase of every message the Makefile, tools and chat print for a person to act on.
MESSAGES = [
    "Python 3.11 or newer is needed",
    "cannot create virtual environments",
    "redis-server is not installed",
    "No Chromium/Chrome for the browser tests",
    "no Chromium/Chrome found, so the browser tests will be skipped",
    "is not a stage: use one of",
    "is already in use: stop what runs there",
    "is not a port number",
    "No Redis answered at",
    "Cannot reach Redis",
    "Closing the socket with code",
    "Disconnected from the chat (code",
    "Binary frames are not supported",
    "The frame is not valid JSON",
    'The frame needs a "message" holding a string',
    "the limit is",
    "Please type a room name",
    "A room name can have at most 100 characters",
    'A room name cannot contain "/"',
    "No folder given",
    "no such folder",
    "is a file; DIR must be the folder that holds manage.py",
    "has no manage.py",
    "does not set DJANGO_SETTINGS_MODULE",
    "the project does not load",
    "its settings",
    "its ASGI application",
    "requirements.txt is ignored",
    "the sandbox cannot run here",
    "bwrap cannot create its namespaces here",
    "bubblewrap is not installed, and grading runs students' code in it",
    "Cannot sandbox the projects",
    "UNSANDBOXED: student code ran as the grader",
    "was still loading after",
    "the server exited on its own (code 0) while it should be serving",
    "did not finish within its time limit",
    "VOID: the grader's own files changed during this run",
    "no such folder of submissions",
    "holds no sub-folder or .zip",
    "the submission has no manage.py (at its top or one folder down)",
    "the submission holds several projects",
    "is not a readable zip",
    "is not a regular file",
    "is not a path inside the project",
    "holds a path outside the project",
    "unpacks to more than",
    "is missing (the grading step did not run)",
    "No bubblewrap for the sandbox tests",
    "no bubblewrap, so the stages run unsandboxed",
    "is not reached yet (UNTIL=",
    "robustness checks fail (beyond",
    "cause (the server's log)",
    "Redis is running at",
    "No Xvfb (a virtual display) for stage 6's tests",
    "no Xvfb, so stage-6 tests that open a visible Chrome fail when graded",
    "Cannot run the tests of",
    "your tests must pass on your own project first",
    "no mistake could be planted",
    "your tests fail on a copy of your project that behaves the same",
    "nothing caught it",
    "the tests were stopped after",
    "Read before trusting the stage-6 score",
    "Please type a nickname",
    "A nickname can have at most",
    "A nickname cannot contain line breaks or control characters",
    "That name belongs to someone else",
    "this check needs SQLite",
    "is not in the project folder",
    "`python manage.py migrate --noinput` failed",
]


def page_names(language: str) -> set[str]:
    return {
        p.relative_to(DOCS / language).as_posix()
        for p in (DOCS / language).rglob("*.md")
    }


def anchors_of(page: Path) -> set[str]:
    """Explicit <a id> anchors plus GitHub's slugs of the headings."""
    text = page.read_text(encoding="utf-8")
    slugs = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.splitlines()
        if HEADING.match(line)
    }
    return set(ANCHOR.findall(text)) | slugs


def test_generated_blocks_are_fresh():
    """Every code, diff and table block equals what `make docs` would write now."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_required_page_exists(language):
    missing = REQUIRED_PAGES - page_names(language)
    assert not missing, f"docs/{language}/ lacks {sorted(missing)}"


def test_chinese_and_english_have_the_same_pages_headings_and_anchors():
    """Same pages; per page the same heading levels in the same order, the same anchors and
    the same generated blocks."""
    assert page_names("en") == page_names("zh")
    for name in sorted(page_names("en")):
        en = (DOCS / "en" / name).read_text(encoding="utf-8")
        zh = (DOCS / "zh" / name).read_text(encoding="utf-8")
        assert HEADING.findall(en) == HEADING.findall(zh), (
            f"{name}: heading levels differ"
        )
        assert ANCHOR.findall(en) == ANCHOR.findall(zh), f"{name}: anchors differ"
        blocks_en = [(kind, arg) for _, kind, arg, _, _ in BLOCK.findall(en)]
        blocks_zh = [(kind, arg) for _, kind, arg, _, _ in BLOCK.findall(zh)]
        assert blocks_en == blocks_zh, f"{name}: generated blocks differ"


def all_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [REPO / "README.md"]


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_images_resolve(page):
    """Every relative link or image points at a file that exists (and an anchor it defines)."""
    broken = []
    for match in LINK.finditer(page.read_text(encoding="utf-8")):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
            continue
        path_part, _, anchor = target.partition("#")
        path_part = path_part.split("?")[0]
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_every_committed_screenshot_is_shown_by_a_page():
    """No screenshot sits in docs/images/screenshots unseen: `make test SCREENSHOTS=1`
    writes there only the ones a page shows (see shared_tests/browser.py)."""
    unseen = [p.name for p in SCREENSHOTS.glob("*.png") if not shown_in_docs(p.name)]
    assert not unseen, f"no docs page shows {unseen}: remove them"


@pytest.mark.parametrize("language", LANGUAGES)
def test_course_manifest_points_at_existing_sections(language):
    """Every behaviour's `docs` (page#anchor) and every stage's page exist in both languages."""
    missing = []
    for behaviour in COURSE.behaviours:
        page, _, anchor = behaviour.docs.partition("#")
        path = DOCS / language / page
        if not path.is_file() or anchor not in anchors_of(path):
            missing.append(f"{behaviour.id}: {behaviour.docs}")
    assert not missing, f"docs/{language}: {missing}"


@pytest.mark.parametrize(
    "page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS))
)
def test_code_is_quoted_only_from_generated_blocks(page):
    """Python and HTML shown in the docs come from the stage folders, never pasted by hand."""
    text = BLOCK.sub("", page.read_text(encoding="utf-8"))
    pasted = [
        lang for _, lang in FENCE.findall(text) if lang in ("python", "html", "diff")
    ]
    assert not pasted, f"{page.relative_to(REPO)} has hand-written {pasted} blocks"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("stage", COURSE.stages, ids=lambda s: s.folder)
def test_each_stage_page_has_a_sequence_diagram_and_its_build(language, stage):
    """The lesson's change is shown as a student builds it (commands, new files, diffs):
    shared_tests/test_build_from_docs.py follows that block from an empty folder."""
    text = (DOCS / language / stage.docs).read_text(encoding="utf-8")
    assert "```mermaid\nsequenceDiagram" in text, (
        f"{stage.docs} has no sequence diagram"
    )
    assert f"<!-- BEGIN build {stage.number} -->" in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_troubleshooting_explains_every_message(language):
    text = (DOCS / language / "troubleshooting.md").read_text(encoding="utf-8")
    unexplained = [message for message in MESSAGES if message not in text]
    assert not unexplained, (
        f"docs/{language}/troubleshooting.md does not explain {unexplained}"
    )


def test_messages_listed_here_are_still_printed_somewhere():
    """The MESSAGES above must exist in the code, so this list cannot go stale either."""
    sources = "".join(
        path.read_text(encoding="utf-8")
        for pattern in (
            "tools/**/*.py",
            "shared_tests/conftest.py",
            "shared_tests/test_student_tests.py",
            "shared_tests/servers.py",
            "shared_tests/stage_under_test.py",
            "tools/*.sh",
            "Makefile",
            f"{COURSE.stages[-1].folder}/chat/**/*",  # the last stage has every message
        )
        for path in REPO.glob(pattern)
        if path.is_file()
    )
    stale = [message for message in MESSAGES if message not in sources]
    assert not stale, f"no longer printed by the code: {stale}"


def test_tests_named_in_the_docs_exist():
    """A test the docs cite by name is a real test function in shared_tests/."""
    defined = set(
        re.findall(
            r"^def (test_\w+)",
            "".join(
                p.read_text(encoding="utf-8")
                for p in (REPO / "shared_tests").glob("test_*.py")
            ),
            re.MULTILINE,
        )
    )
    cited = {
        name
        for page in DOCS.rglob("*.md")
        for name in re.findall(r"`(test_\w+)`", page.read_text(encoding="utf-8"))
    }
    assert cited - defined == set(), (
        f"the docs cite missing tests: {sorted(cited - defined)}"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_sandbox_option_is_explained(language):
    """Each option of the generated bwrap command appears in the page's table of reasons."""
    from tools.grading.sandbox import example_command

    text = BLOCK.sub("", (DOCS / language / "testing-and-grading.md").read_text())
    options = set(re.findall(r"(?<!\S)(--[a-z-]+)", example_command()))
    unexplained = sorted(o for o in options if f"{o}" not in text)
    assert not unexplained, f"docs/{language}: no reason given for {unexplained}"
