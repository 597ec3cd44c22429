"""`make diff [FROM=N] TO=M`: the lesson's change between two stage folders, as a unified diff
of their code (no caches or databases). The docs quote the same diff (tools/docs.py)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from tools.course import load_course

# staticfiles: what `manage.py collectstatic` gathers (stage 9).
GENERATED = {"__pycache__", "db.sqlite3", "db.sqlite3-journal", "staticfiles"}


def code_files(folder: Path) -> dict[str, Path]:
    """Relative path -> file, for every file of a stage that is code, not a generated file."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            path.is_file()
            and not GENERATED & set(relative.parts)
            and path.suffix != ".pyc"
        ):
            files[relative.as_posix()] = path
    return files


def read_lines(path: Path | None) -> list[str]:
    return (
        []
        if path is None
        else path.read_text(encoding="utf-8").splitlines(keepends=True)
    )


def stage_diff(old_folder: Path, new_folder: Path, only: str | None = None) -> str:
    """A unified diff from one folder to the other, file by file in path order
    (just the file `only`, when given)."""
    old, new = code_files(old_folder), code_files(new_folder)
    chunks = []
    for name in sorted(old.keys() | new.keys()):
        if only is not None and name != only:
            continue
        before, after = read_lines(old.get(name)), read_lines(new.get(name))
        if before == after:
            continue
        chunks.extend(
            difflib.unified_diff(
                before,
                after,
                fromfile=f"{old_folder.name}/{name}" if name in old else "/dev/null",
                tofile=f"{new_folder.name}/{name}" if name in new else "/dev/null",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("to", type=int, help="the stage whose lesson to show")
    parser.add_argument(
        "--from", dest="from_", type=int, help="default: the stage before"
    )
    args = parser.parse_args(argv)
    course = load_course()
    try:
        new = course.stage(args.to)
        old = course.stage(args.from_ if args.from_ is not None else args.to - 1)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    sys.stdout.write(stage_diff(old.path, new.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
