"""A class folder of submissions: every sub-folder or .zip of it is one student. Finds each
student's project (manage.py at the top, or one folder down, which the report mentions) and
unpacks zips safely (no path outside the target, no links, a size cap, no zip bombs)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tools.grading.project import (
    CAPS,
    ProjectError,
    SizeBudget,
    ignored,
)

SKIPPED_ENTRIES = ("__MACOSX",)  # what macOS' Finder adds to every zip


@dataclass(frozen=True)
class Submission:
    student: str  # the folder's or zip's name, used for the report folder
    path: Path  # the folder or the .zip

    @property
    def is_zip(self) -> bool:
        return self.path.suffix.lower() == ".zip"


class ClassFolderError(Exception):
    """DIR is not a folder of submissions; the message is one readable line."""


def student_name(path: Path) -> str:
    """A name that is safe as a folder name and a CSV cell (the zip's stem, the folder's name)."""
    name = path.stem if path.suffix.lower() == ".zip" else path.name
    return re.sub(r"[^\w.@+-]+", "_", name).strip("._") or "student"


def find_submissions(folder: str | Path) -> list[Submission]:
    path = Path(folder).expanduser()
    if not str(folder).strip():
        raise ClassFolderError(
            "No folder given: pass DIR=path/to/submissions (one sub-folder or .zip per "
            "student)."
        )
    if not path.is_dir():
        raise ClassFolderError(f"{folder}: no such folder of submissions.")
    # The class's own files sit beside the students' folders: no student may take their names.
    found, names = [], {"class.csv", "index.html"}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name in SKIPPED_ENTRIES:
            continue
        if entry.is_dir() or (entry.is_file() and entry.suffix.lower() == ".zip"):
            name = student_name(entry)
            while name in names:  # alice/ and alice.zip: keep both (alice, alice_)
                name += "_"
            names.add(name)
            found.append(Submission(name, entry))
    if not found:
        raise ClassFolderError(
            f"{folder} holds no sub-folder or .zip: put one per student in it."
        )
    return found


def locate_project(root: Path) -> tuple[Path, str]:
    """The folder holding manage.py: `root` itself, or one level down (tolerated, and said).
    Returns (folder, note)."""
    if (root / "manage.py").is_file() and not (root / "manage.py").is_symlink():
        return root, ""
    # Never through a link: a folder linked to another student's work is not a project.
    nested = sorted(
        p.parent
        for p in root.glob("*/manage.py")
        if p.parent.name not in SKIPPED_ENTRIES
        and not p.parent.is_symlink()
        and not p.is_symlink()
    )
    if len(nested) == 1:
        inner = nested[0].relative_to(root).as_posix()
        return nested[0], f"manage.py was one folder down, in {inner}/"
    if len(nested) > 1:
        names = ", ".join(p.name for p in nested)
        raise ProjectError(f"the submission holds several projects ({names})")
    raise ProjectError(
        "the submission has no manage.py (at its top or one folder down)"
    )


def unpack(archive: Path, destination: Path) -> Path:
    """Extract a student's zip into `destination`: regular files and folders only, every path
    inside `destination`, the same size and file caps as a copied project."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            extract(zipped, archive.name, destination)
    # A malformed zip fails in many ways: not a zip, a member that is both a file and a
    # folder, a bad checksum, a compression or an encryption zipfile cannot read.
    except (
        OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError
    ) as error:  # fmt: skip
        raise ProjectError(f"{archive.name} is not a readable zip ({error})") from None
    return destination


def extract(zipped: zipfile.ZipFile, name: str, destination: Path) -> None:
    budget = SizeBudget(f"{name} unpacks to more than {CAPS}")
    for member in zipped.infolist():
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if not parts or parts[0] in SKIPPED_ENTRIES:
            continue
        if parts[0] == "/" or ".." in parts or ":" in parts[0]:
            raise ProjectError(
                f"{name} holds a path outside the project: {member.filename}"
            )
        if any(ignored(part) for part in parts):
            continue
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            continue  # a link could point anywhere: leave it out
        target = destination.joinpath(*parts)
        if member.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        budget.add(member.file_size)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipped.open(member) as source, open(target, "wb") as copy:
            copied = 0
            while chunk := source.read(1 << 16):
                copied += len(chunk)
                if copied > member.file_size:  # a header that lies about the size
                    raise ProjectError(f"{name} is malformed (sizes lie)")
                copy.write(chunk)


def fingerprint_submission(submission: Submission) -> str:
    """A hash of what the student handed in (file names and contents; caches left out)."""
    digest = hashlib.sha256()
    if submission.is_zip:
        digest.update(submission.path.read_bytes())
        return digest.hexdigest()
    # Links not followed; the folders left out are never entered (sorted here, level by
    # level, so the order is the same every time).
    for root, folders, files in os.walk(submission.path):
        folders[:] = sorted(f for f in folders if not ignored(f))
        for name in sorted(files + [f for f in folders if Path(root, f).is_symlink()]):
            path = Path(root, name)
            relative = path.relative_to(submission.path)
            info = path.lstat()
            if ignored(name):
                continue
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.fsencode(f"{relative}->{os.readlink(path)}"))
            elif stat.S_ISREG(info.st_mode):
                # os.fsencode: any bytes a file name holds, not only UTF-8.
                digest.update(os.fsencode(relative) + b"\0" + path.read_bytes())
    return digest.hexdigest()
