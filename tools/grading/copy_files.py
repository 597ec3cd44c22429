"""The grader's own reads and writes in a student's project. The student's processes run beside
the grader and may swap any file or folder of their copy for a symbolic link at any moment (to
a grader file, another student's work, /dev/zero), and a submitted folder may hold such links
from the start. So nothing here follows a link: each step of a path is opened with O_NOFOLLOW,
and a link on the way is an error, never a way out of the project."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path, PurePath

MAX_READ_BYTES = 1024 * 1024  # a chat project's source file is a few kB


class UnsafePath(Exception):
    """A path in a project that is a link, not a regular file or folder, or too big."""


def steps(relative: str | PurePath) -> tuple[str, ...]:
    parts = PurePath(relative).parts
    if not parts or PurePath(relative).is_absolute() or ".." in parts:
        raise UnsafePath(f"{relative} is not a path inside the project")
    return parts


def open_folder(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of root/parts, taken one step at a time without following a link."""
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise UnsafePath(f"{root}: {error.strerror}") from None
    try:
        for part in parts:
            inner = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder
            )
            os.close(folder)
            folder = inner
    except OSError as error:
        os.close(folder)
        raise UnsafePath(f"{PurePath(*parts)}: {error.strerror}") from None
    return folder


def open_file(root: Path, relative: str | PurePath, flags: int) -> int:
    """A descriptor of the regular file root/relative, opened with `flags`."""
    *folders, name = steps(relative)
    folder = open_folder(root, tuple(folders))
    try:
        # O_NONBLOCK: a pipe planted there must not keep the grader waiting for a writer.
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=folder)
    except OSError as error:
        raise UnsafePath(f"{relative}: {error.strerror}") from None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath(f"{relative} is not a regular file")
    if flags & (os.O_WRONLY | os.O_RDWR) and info.st_nlink != 1:
        # A hard link: writing would change the file it shares (elsewhere?).
        os.close(fd)
        raise UnsafePath(f"{relative} is a hard link")
    return fd


def is_file(root: Path, relative: str | PurePath) -> bool:
    """Whether root/relative is a regular file reached without a link."""
    try:
        os.close(open_file(root, relative, os.O_RDONLY))
    except UnsafePath:
        return False
    return True


def read_text(root: Path, relative: str | PurePath, limit: int = MAX_READ_BYTES) -> str:
    """The text of root/relative (undecodable bytes replaced); at most `limit` bytes."""
    with os.fdopen(open_file(root, relative, os.O_RDONLY), "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(f"{relative} is larger than {limit // 1024} kB")
    return data.decode("utf-8", "replace")


def write_text(
    root: Path, relative: str | PurePath, text: str, append: bool = False
) -> None:
    """Write (or append) `text` to root/relative, made if missing, as a regular file."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
    fd = open_file(root, relative, flags)  # checked first: only then emptied
    if not append:
        os.ftruncate(fd, 0)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def fresh_folder(root: Path, relative: str | PurePath, owner: int | None) -> Path:
    """An empty folder root/relative made by the grader, owned by `owner` if given. Whatever
    was there is renamed aside, never opened: a link, a pipe or a folder full of them."""
    *folders, name = steps(relative)
    parent = open_folder(root, tuple(folders))
    try:
        aside = f"{name}.old-{secrets.token_hex(4)}"
        try:
            os.rename(name, aside, src_dir_fd=parent, dst_dir_fd=parent)
        except FileNotFoundError:
            pass
        os.mkdir(name, 0o755, dir_fd=parent)
        made = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent
        )
        try:
            if owner is not None:
                os.fchown(made, owner, owner)
        finally:
            os.close(made)
    except OSError as error:
        raise UnsafePath(f"{relative}: {error.strerror}") from None
    finally:
        os.close(parent)
    return root / relative


def python_files(root: Path, relative: str | PurePath) -> list[PurePath]:
    """The .py names below root/relative (relative to root), not entering linked folders. A
    link named .py is listed too: reading it (read_text) then says it is a link."""
    top = root / relative
    if top.is_symlink() or not top.is_dir():
        return []
    found = []
    for folder, folders, files in os.walk(top):  # does not enter linked folders
        here = Path(folder)
        found += [
            (here / name).relative_to(root) for name in files if name.endswith(".py")
        ]
        folders.sort()
    return sorted(found)
