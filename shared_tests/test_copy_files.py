"""The grader's own reads and writes in a student's project never follow a link: the project's
processes may swap any of its files or folders for one, pointing at a grader file, another
student's work or a pipe (not run when grading a student's project)."""

import os

import pytest

from tools.grading.copy_files import (
    UnsafePath,
    fresh_folder,
    is_file,
    python_files,
    read_text,
    write_text,
)

pytestmark = pytest.mark.repository


@pytest.fixture
def project(tmp_path):
    """A project folder with one file and one folder, and a grader file outside it."""
    root = tmp_path / "project"
    (root / "chat").mkdir(parents=True)
    (root / "chat" / "views.py").write_text("def room(request): ...\n")
    (tmp_path / "grader.py").write_text("SECRET = 1\n")
    return root


def test_files_inside_are_read_and_written(project):
    """The ordinary case works: read, write, append, and ask whether a file is there."""
    assert read_text(project, "chat/views.py") == "def room(request): ...\n"
    write_text(project, "chat/views.py", "# planted\n", append=True)
    assert read_text(project, "chat/views.py").endswith("# planted\n")
    write_text(project, "chat/new.py", "X = 1\n")
    assert is_file(project, "chat/new.py") and not is_file(project, "chat/none.py")


def test_a_linked_file_is_neither_read_nor_written(project):
    """A link to a file outside is refused, and the file outside is unchanged."""
    os.symlink(project.parent / "grader.py", project / "chat" / "consumers.py")
    assert not is_file(project, "chat/consumers.py")
    with pytest.raises(UnsafePath):
        read_text(project, "chat/consumers.py")
    with pytest.raises(UnsafePath):
        write_text(project, "chat/consumers.py", "SECRET = 2\n", append=True)
    assert (project.parent / "grader.py").read_text() == "SECRET = 1\n"


def test_a_linked_folder_on_the_way_is_refused(project):
    """A link anywhere on the path counts, not only at its end."""
    os.symlink(project.parent, project / "deploy")
    with pytest.raises(UnsafePath):
        read_text(project, "deploy/grader.py")
    with pytest.raises(UnsafePath):
        write_text(project, "deploy/planted.py", "X = 1\n")
    assert not (project.parent / "planted.py").exists()


def test_a_hard_link_is_not_written(project):
    """A hard link shares its file with another name (in the "user" sandbox, perhaps a
    grader's file): the grader refuses to write it, and empties nothing first."""
    os.link(project / "chat" / "views.py", project / "chat" / "linked.py")
    with pytest.raises(UnsafePath, match="hard link"):
        write_text(project, "chat/linked.py", "replaced\n")
    assert (project / "chat" / "views.py").read_text() == "def room(request): ...\n"


def test_paths_out_of_the_project_are_refused(project):
    """An absolute path, or one climbing out with "..", is never opened."""
    for path in ("/etc/passwd", "../grader.py", "chat/../../grader.py"):
        with pytest.raises(UnsafePath):
            read_text(project, path)


def test_a_pipe_or_a_huge_file_does_not_hold_up_the_grader(project):
    """A named pipe is refused at once (no waiting for a writer); a file over the limit is
    refused after reading just past the limit."""
    os.mkfifo(project / "chat" / "tests.py")
    with pytest.raises(UnsafePath, match="not a regular file"):
        read_text(project, "chat/tests.py")
    (project / "chat" / "big.py").write_bytes(b"#" * 2048)
    with pytest.raises(UnsafePath, match="larger than"):
        read_text(project, "chat/big.py", limit=1024)


def test_a_fresh_folder_replaces_a_link_without_following_it(project):
    """A link where the grader makes its folder is put aside, not entered: what it pointed
    to keeps its files, and the new folder is empty."""
    outside = project.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    os.symlink(outside, project / ".nginx")
    made = fresh_folder(project, ".nginx", owner=None)
    assert made.is_dir() and not made.is_symlink() and list(made.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "kept"


def test_a_fresh_folder_puts_an_old_one_aside_without_entering_it(project):
    """An old folder where the grader makes its own (a submission may ship one, full of
    links and pipes) is renamed aside, never entered; the new one is empty."""
    outside = project.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    (project / ".tls").mkdir()
    (project / ".tls" / "old.pem").write_text("old")
    os.symlink(outside, project / ".tls" / "elsewhere")
    os.mkfifo(project / ".tls" / "pipe")
    made = fresh_folder(project, ".tls", owner=None)
    assert list(made.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "kept"


def test_the_test_files_listed_skip_linked_folders(project):
    """python_files lists the project's own .py files, not those behind a linked folder; a
    linked .py is listed, so that reading it says it is a link instead of hiding it."""
    (project / "chat" / "tests").mkdir()
    (project / "chat" / "tests" / "test_room.py").write_text("")
    os.symlink(project.parent, project / "chat" / "tests" / "elsewhere")
    os.symlink(project.parent / "grader.py", project / "chat" / "tests" / "linked.py")
    assert [str(p) for p in python_files(project, "chat")] == [
        "chat/tests/linked.py",
        "chat/tests/test_room.py",
        "chat/views.py",
    ]
