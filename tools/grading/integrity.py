"""The grader's own files, fingerprinted before and after each run: a run that changed one (a
student's code that escaped, or anything else) is void, and says which files changed."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tools.course import REPO

# Read byte for byte: the suite, the tools, what builds the environment.
HASHED = ("shared_tests", "tools", "Makefile", "pyproject.toml")


# The test session's bytecode: compiled once, by the grader only (student processes see the
# virtualenv read-only), in a folder of its own instead of the checkout's __pycache__. Compiling
# Django, pytest and Selenium afresh cost each grade about a second of CPU.
GRADER_PYCACHE = Path(sys.prefix) / "grader-pycache"

# The virtualenv's code (`make setup` rewrites the files beside them: the pins, a stamp) and
# the grader's bytecode.
VENV_CODE = ("bin", "lib", "lib64", GRADER_PYCACHE.name)

# "module.cpython-311.pyc.140213": Python writes a bytecode file there, then renames it.
PYC_IN_FLIGHT = re.compile(r"\.pyc\.\d+$")


def stale(pyc: Path, source: Path) -> bool:
    """Whether Python (or pytest, for the test modules it rewrites) would compile `source`
    again instead of loading `pyc`: another Python wrote it, the source is gone, or the
    source differs from what the header recorded (its mtime and size, or its hash)."""
    try:
        with open(pyc, "rb") as file:
            header = file.read(16)
        info = source.stat()
        if header[:4] != importlib.util.MAGIC_NUMBER:
            return True
        if header[4:8] == bytes(4):  # Python's default: checked by mtime and size
            recorded = (header[8:12], header[12:16])
            mtime, size = int(info.st_mtime) & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF
            return recorded != (mtime.to_bytes(4, "little"), size.to_bytes(4, "little"))
        # Checked by the source's hash (pytest's: a fresh clone gives every file a new mtime).
        return header[8:16] != importlib.util.source_hash(source.read_bytes())
    except OSError:
        return True


def source_of(pyc: Path, cache: Path = GRADER_PYCACHE) -> Path:
    """The source a bytecode file is compiled from: by its absolute path in the grader's
    cache, beside its __pycache__ folder elsewhere."""
    module = pyc.name.split(".")[0] + ".py"
    if pyc.is_relative_to(cache):
        return Path("/") / pyc.parent.relative_to(cache) / module
    return pyc.parent.parent / module


def recompiled(pyc: Path) -> bool:
    """Whether `pyc` holds what compiling its current source gives: another run compiled it
    again (runs share the cache, and two of them can compile one module at once). Compared
    code to code: two compilations of one source can differ in their bytes. pytest's
    rewrite of a test module is not redone here: its header must match the source, which
    the fingerprint hashes."""
    source = source_of(pyc)
    if stale(pyc, source):
        return False
    if "-pytest-" in pyc.name:
        return True
    level = int(pyc.name.split(".opt-")[1][0]) if ".opt-" in pyc.name else 0
    try:
        code = compile(
            source.read_bytes(), str(source), "exec", dont_inherit=True, optimize=level
        )
        return marshal.loads(pyc.read_bytes()[16:]) == code
    except (OSError, ValueError, EOFError, TypeError, SyntaxError):
        return False


def drop_stale_bytecode(cache: Path = GRADER_PYCACHE, checkout: Path = REPO) -> None:
    """Delete the bytecode the next run would compile again: in the grader's cache (its
    sources by their absolute path) and in the __pycache__ folders of the checkout's grader
    code (sources beside them). Run before a fingerprint: Python's rewrite of a stale file
    (after a `git pull` or an edit of the grader) would otherwise look like a change and void
    the runs going on beside it. A file deleted here and written again is new: no change."""
    folders = [root for root, _, _ in os.walk(cache)]
    for name in HASHED:
        folders += [
            r for r, _, _ in os.walk(checkout / name) if Path(r).name == "__pycache__"
        ]
    for folder in folders:
        for pyc in Path(folder).glob("*.pyc"):
            if not pyc.is_symlink() and stale(pyc, source_of(pyc, cache)):
                pyc.unlink(missing_ok=True)  # another run may have deleted it first


def fingerprint() -> dict[str, str]:
    """path -> sha256 for the grader's code, path -> size and mtime for the virtualenv's
    code files (thousands of them: a change to any still shows)."""
    prints = {}
    for name in HASHED:
        top = REPO / name
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if path.is_file() and not path.is_symlink():
                print_of(prints, str(path), sha256_of)
    for root, _, files in (
        entry
        for folder in VENV_CODE
        if (Path(sys.prefix) / folder).is_dir()
        and not (Path(sys.prefix) / folder).is_symlink()
        for entry in os.walk(Path(sys.prefix) / folder)
    ):
        for name in files:
            print_of(prints, os.path.join(root, name), size_and_mtime)
    return prints


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def size_and_mtime(path: Path) -> str:
    info = os.lstat(path)
    return f"{info.st_size}:{info.st_mtime_ns}"


def print_of(prints: dict[str, str], path: str, measure: Callable[[Path], str]) -> None:
    """prints[path] = measure(path). A file gone between listing and reading: skipped when
    it is the temporary file Python writes bytecode through (it renames that away, and
    another run may be compiling beside this one), else recorded as gone, so that a later
    fingerprint differs from this one."""
    try:
        prints[path] = measure(Path(path))
    except FileNotFoundError:
        if PYC_IN_FLIGHT.search(path) is None:
            prints[path] = "gone while fingerprinted"


def written_by_python(path: str, before: dict[str, str]) -> bool:
    """A new bytecode file, or the temporary file Python writes it through (another run may
    be compiling at the moment of a fingerprint): Python makes these when it first imports a
    module. Or one written again with the same code (see recompiled)."""
    return PYC_IN_FLIGHT.search(path) is not None or (
        path.endswith(".pyc") and (path not in before or recompiled(Path(path)))
    )


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, removed or changed, relative to the checkout where they are in it, but
    not the bytecode Python writes on its own."""
    changed = sorted(
        path
        for path in before.keys() | after.keys()
        if before.get(path) != after.get(path) and not written_by_python(path, before)
    )
    return [
        os.path.relpath(p, REPO) if Path(p).is_relative_to(REPO) else p for p in changed
    ]
