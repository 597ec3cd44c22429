"""The stage pages are executable: a student who starts in an empty folder and follows the
"Build it yourself" section of each page, stage after stage, ends with the stage folders.

The test reads a page the way the student does: it runs the commands of the section's `sh`
blocks and writes every file block (a new file in full; a changed file from the whole file
folded under its diff). Commands run through tools/build.py's Shell: the workshop's .venv
stands in for the student's virtualenv, so nothing is installed, and the pip line must name
exactly the chat's pins in pyproject.toml. After each stage the folder must equal the stage
folder byte for byte, but for the SECRET_KEY line startproject draws at random, db.sqlite3 and
__pycache__.
"""

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.build import BuildError, Shell, chat_pins
from tools.course import load_course
from tools.diff import code_files
from tools.docs import DOCS

pytestmark = pytest.mark.repository
COURSE = load_course()
LANGUAGES = ("en", "zh")
SECTION = re.compile(
    r'<a id="build-it-yourself"></a>\n(.*?)<a id="run-your-project"></a>', re.DOTALL
)
FENCE = re.compile(r"^(`{3,})(\w*)\n(.*?)^\1$", re.MULTILINE | re.DOTALL)
# A file block belongs to the last file name written before it: `name` or <code>name</code>.
FILE_NAME = re.compile(r"`([^`\s]+)`|<code>([^<\s]+)</code>")
SECRET_KEY = re.compile(rb"^SECRET_KEY = ['\"]django-insecure-.*$", re.MULTILINE)


def build_section(page: str) -> str:
    match = SECTION.search(page)
    assert match, "the page has no Build it yourself section (up to Run your project)"
    return match.group(1)


def follow(section: str, shell: Shell) -> None:
    """Do what the section says, in order: run each command, write each file."""
    end = 0
    for fence in FENCE.finditer(section):
        prose, end = section[end : fence.start()], fence.end()
        language, body = fence.group(2), fence.group(3)
        if language == "sh":
            for line in body.splitlines():
                shell.run(line)
        elif language != "diff":  # a diff shows the change; the whole file follows it
            names = FILE_NAME.findall(prose)
            assert names, f"a code block with no file name before it:\n{prose}"
            path = shell.cwd / "".join(names[-1])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body.encode("utf-8"))


def differences(folder: Path, stage_folder: Path) -> list[str]:
    """What differs between the student's folder and the stage folder."""
    mine, stage = code_files(folder), code_files(stage_folder)
    found = [f"missing {name}" for name in sorted(stage.keys() - mine.keys())]
    found += [
        f"not in the stage: {name}" for name in sorted(mine.keys() - stage.keys())
    ]
    for name in sorted(mine.keys() & stage.keys()):
        ours, theirs = (
            SECRET_KEY.sub(b"SECRET_KEY = ...", files[name].read_bytes())
            for files in (mine, stage)
        )
        if ours != theirs:
            found.append(f"differs: {name}")
    return found


def build_stages(
    language: str,
    root: Path,
    edit: Callable[[int, str], str] = lambda n, page: page,
    until: int = len(COURSE.stages),
) -> dict[int, list[str]]:
    """Follow the stage pages in order from the empty folder `root`, up to stage `until`
    (each page's text through `edit` first); what differs from each stage folder after its
    page."""
    shell, found = Shell(root), {}
    for stage in COURSE.stages[:until]:
        page = (DOCS / language / stage.docs).read_text(encoding="utf-8")
        follow(build_section(edit(stage.number, page)), shell)
        found[stage.number] = differences(shell.cwd, stage.path)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_following_the_pages_from_an_empty_folder_builds_every_stage(
    language, tmp_path
):
    """Each page of one language, followed in order from an empty folder, leaves exactly
    the files of its stage folder."""
    found = build_stages(language, tmp_path)
    assert found == {stage.number: [] for stage in COURSE.stages}, found


def drop(number: int, text: str) -> Callable[[int, str], str]:
    """An edit that removes `text` from the page of stage `number` (it must be there)."""

    def edit(stage: int, page: str) -> str:
        if stage != number:
            return page
        assert text in page, f"stage {number}'s page no longer holds {text!r}"
        return page.replace(text, "", 1)

    return edit


def drop_whole_file(number: int, name: str) -> Callable[[int, str], str]:
    """An edit that removes the folded whole file `name` from the page of stage `number`."""
    folded = re.compile(
        rf"<details><summary>[^\n]*<code>{re.escape(name)}</code>.*?</details>\n",
        re.DOTALL,
    )

    def edit(stage: int, page: str) -> str:
        if stage != number:
            return page
        assert folded.search(page), f"stage {number}'s page folds no whole {name}"
        return folded.sub("", page, count=1)

    return edit


@pytest.mark.parametrize(
    "edit, stage, difference",
    [
        pytest.param(
            drop(2, "python manage.py startapp chat\n"),
            2,
            "missing chat/apps.py",
            id="no-startapp",
        ),
        pytest.param(
            drop_whole_file(2, "mysite/urls.py"),
            2,
            "differs: mysite/urls.py",
            id="no-urls-change",
        ),
        pytest.param(
            drop_whole_file(4, "mysite/settings.py"),
            4,
            "differs: mysite/settings.py",
            id="no-channel-layer",
        ),
    ],
)
def test_a_page_that_misses_a_step_builds_the_wrong_project(
    edit, stage, difference, tmp_path
):
    """Take one step out of a page (in memory): the folder built from the docs no longer
    equals that stage folder, so a page cannot lose a step unnoticed."""
    found = build_stages("en", tmp_path, edit, until=stage)
    assert difference in found[stage], found[stage]


@pytest.mark.parametrize(
    "edit, complaint",
    [
        pytest.param(
            drop(1, "source .venv/bin/activate\n"),
            "before a virtualenv is active",
            id="no-activation",
        ),
        pytest.param(
            drop(1, " " + chat_pins()[-1]), "exactly the chat's pins", id="a-pin-less"
        ),
        pytest.param(
            lambda n, page: page.replace(chat_pins()[0], chat_pins()[0] + ".1"),
            "exactly the chat's pins",
            id="another-version",
        ),
    ],
)
def test_a_command_a_student_cannot_follow_is_refused(edit, complaint, tmp_path):
    """A page that uses the virtualenv before activating it, or whose pip line differs from
    the pins in pyproject.toml, fails with a sentence saying so."""
    with pytest.raises(BuildError, match=complaint):
        build_stages("en", tmp_path, edit, until=1)
