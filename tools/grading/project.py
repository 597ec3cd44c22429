"""A Django project folder as the suite and the grader use it: found from its manage.py, copied
to a private folder (the original is never written to), and loaded with the workshop's settings
overlay (tools/overlay/workshop_settings.py), in the sandbox when it is a student's."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.grading.copy_files import UnsafePath, read_text
from tools.grading.sandbox import NO_SANDBOX, Sandbox, limit_behind
from tools.overlay.workshop_probe import REPORT_MARK

OVERLAY = Path(__file__).resolve().parent.parent / "overlay"
# manage.py's os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
SETTINGS_IN_MANAGE_PY = re.compile(
    r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([A-Za-z_][\w.]*)["']"""
)
# A Python module path with at least one dot, e.g. "mysite.asgi.application".
DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
# What a copy leaves out: caches, databases, environments, version control.
NOT_COPIED = (
    "__pycache__",
    "*.pyc",
    "db.sqlite3",
    "*.sqlite3-journal",
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "grade-report",
)
# A submission bigger than this is not a chat project (or it carries its virtualenv).
MAX_PROJECT_BYTES = 100 * 1024 * 1024
MAX_PROJECT_FILES = 20_000
CAPS = f"{MAX_PROJECT_BYTES // 2**20} MB or {MAX_PROJECT_FILES} files"  # for messages
# What a project process inherits from the grader's environment (nothing else: no tokens,
# no paths to the grader's files).
INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")
# Stage 9 reads its secret key from DJANGO_SECRET_KEY: one per run, the same for every process
# of the run, as every worker of one site needs the same key to read the others' sessions.
RUN_SECRET_KEY = secrets.token_urlsafe(50)


class ProjectError(Exception):
    """A folder that cannot be used as a Django project; the message is one readable line."""


@dataclass(frozen=True)
class Project:
    root: Path
    settings_module: str

    @property
    def requirements_file(self) -> Path:
        return self.root / "requirements.txt"

    def environment(self, redis_url: str | None = None) -> dict[str, str]:
        """Environment for a process that runs this project with the workshop's overlay."""
        env = {k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ}
        env.setdefault("LANG", "C.UTF-8")
        env.update(
            HOME="/tmp",
            DJANGO_SETTINGS_MODULE="workshop_settings",
            WORKSHOP_PROJECT_SETTINGS=self.settings_module,
            PYTHONPATH=os.pathsep.join([str(self.root), str(OVERLAY)]),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            DJANGO_SECRET_KEY=RUN_SECRET_KEY,
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        return env

    def copy_to(self, destination: Path) -> Project:
        """Copy the project's code (no caches or databases) and return the copy."""
        copy_tree(self.root, destination)
        return Project(destination, self.settings_module)

    def run(
        self,
        argv: list[str],
        sandbox: Sandbox,
        timeout: float,
        redis_url=None,
        extra_env: dict[str, str] | None = None,
        starts_chromium: bool = False,
    ) -> Completed:
        """Run `argv` in this project (in the sandbox) and wait, at most `timeout` seconds.
        Output goes to files, not pipes: a flood is capped by the sandbox's output limit and
        never fills the grader's memory."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(
                sandbox.wrap(argv, self.root, starts_chromium),
                cwd=self.root,
                env={**self.environment(redis_url), **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
            try:
                returncode = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()  # bwrap's end ends every process of the sandbox
                process.wait()
                returncode = None
            return Completed(returncode, tail(out), tail(err))

    def manage(
        self, arguments: list[str], sandbox: Sandbox, env: dict[str, str] | None = None
    ) -> str | None:
        """Run `manage.py arguments` (in the sandbox, within its load time): None when it
        worked, else why not (the last line it printed)."""
        timeout = sandbox.limits.load_seconds
        argv = [sys.executable, "manage.py", *arguments]
        result = self.run(argv, sandbox, timeout, extra_env=env)
        if result.returncode is None:
            return f"still running after {timeout:g} s"
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()
            return said[-1] if said else f"exit code {result.returncode}"
        return None

    def probe(self, sandbox: Sandbox = NO_SANDBOX) -> dict:
        """Load the project in a subprocess (tools/overlay/workshop_probe.py) and return its
        facts. They come from inside the student's process, so they are only hints."""
        timeout = sandbox.limits.load_seconds
        result = self.run(
            [sys.executable, str(OVERLAY / "workshop_probe.py")], sandbox, timeout
        )
        if result.returncode is None:
            return probe_failure(
                f"it was still loading after {timeout:g} s (a settings.py or module that "
                "sleeps or loops forever?) and was stopped"
            )
        reports = [
            line.removeprefix(REPORT_MARK)
            for line in result.stdout.splitlines()
            if line.startswith(REPORT_MARK)
        ]
        if len(reports) > 1:  # the probe prints one, then ends the process
            return probe_failure(
                f'it printed the grader\'s report line ("{REPORT_MARK.strip()} ...") '
                "itself, so nothing it reports can be trusted"
            )
        facts = parse_report(reports[0]) if reports else None
        if facts is not None:
            return facts
        detail = (result.stderr.strip().splitlines() or [""])[-1]
        return probe_failure(detail or exit_description(result.returncode))

    def asgi_target(self, asgi_application: str | None) -> str:
        """The module:attribute daphne serves, from ASGI_APPLICATION or the settings package."""
        # What the probe reports comes from the student's code: only a dotted name counts.
        if asgi_application and DOTTED_NAME.fullmatch(asgi_application):
            module, _, attribute = asgi_application.rpartition(".")
            return f"{module}:{attribute}"
        package = self.settings_module.rpartition(".")[0] or self.settings_module
        return f"{package}.asgi:application"


@dataclass(frozen=True)
class Completed:
    returncode: int | None  # None: stopped at its time limit
    stdout: str  # the last 64 KB of each
    stderr: str


def tail(file, limit: int = 64 * 1024) -> str:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - limit))
    return file.read().decode("utf-8", "replace")


def exit_description(returncode: int) -> str:
    """What an exit code says, in words (bwrap reports a signal as 128 + its number)."""
    if returncode == 0:
        return "it exited (code 0) without a word while loading"
    signal_number = -returncode if returncode < 0 else returncode - 128
    if signal_number > 0:
        return f"it was killed by signal {signal_number} while loading"
    return f"it exited with code {returncode} while loading"


def parse_report(text: str) -> dict | None:
    """The probe's facts from its report line, or None when the line is not one."""
    try:
        facts = json.loads(text)
    except json.JSONDecodeError:
        return None
    return facts if isinstance(facts, dict) and "ok" in facts else None


def probe_failure(error: str) -> dict:
    return {"ok": False, "phase": "load", "error": error, "where": ""}


def load_failure(facts: dict) -> str | None:
    """Why a project did not load, as one sentence, from Project.probe()'s facts (None: it
    loaded)."""
    if facts["ok"]:
        return None
    where = f" ({facts['where']})" if facts.get("where") else ""
    phase, error = facts.get("phase"), facts["error"]
    limit = limit_behind(error)
    limit = f", stopped by {limit}" if limit else ""
    if phase == "load":
        return f"the project does not load: {error}{where}{limit}."
    what = "its settings" if phase == "settings" else "its ASGI application"
    return f"the project does not load: {what} raised {error}{where}{limit}."


def ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in NOT_COPIED)


class SizeBudget:
    """Counts a project's files and bytes as they are copied or unpacked; past the caps,
    ProjectError with `too_big` (which names the caps: CAPS)."""

    def __init__(self, too_big: str):
        self.too_big = too_big
        self.files = self.bytes = 0

    def add(self, size: int) -> None:
        self.files, self.bytes = self.files + 1, self.bytes + size
        if self.bytes > MAX_PROJECT_BYTES or self.files > MAX_PROJECT_FILES:
            raise ProjectError(self.too_big)


def copy_tree(source: Path, destination: Path) -> None:
    """Copy a project's regular files, folders and symlinks (as links, never followed); skip
    anything else (pipes, devices) and refuse a tree too big to be a chat project."""
    budget = SizeBudget(
        f"{source} holds more than {CAPS}: a virtualenv or data inside the project? "
        "Leave them out."
    )
    for root, folders, files in os.walk(source):
        here = Path(root)
        target = destination / here.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        folders[:] = [f for f in folders if not ignored(f)]
        for name in [f for f in folders if (here / f).is_symlink()]:
            folders.remove(name)  # os.walk does not enter them; copy the link itself
            files.append(name)
        for name in files:
            if ignored(name):
                continue
            path, copy = here / name, target / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(path), copy)
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            budget.add(info.st_size)
            shutil.copyfile(path, copy)
            os.chmod(copy, 0o755 if info.st_mode & 0o100 else 0o644)


NO_FOLDER = (
    "No folder given: pass DIR=path/to/your/project (the folder with manage.py)."
)


def find_project(folder: str | os.PathLike) -> Project:
    """Return the Django project in `folder` (the folder holding manage.py) or raise ProjectError."""
    path = Path(folder).expanduser()
    if not str(folder).strip():
        raise ProjectError(NO_FOLDER)
    if not path.exists():
        raise ProjectError(f"{folder}: no such folder.")
    if not path.is_dir():
        raise ProjectError(
            f"{folder} is a file; DIR must be the folder that holds manage.py."
        )
    manage_py = path / "manage.py"
    if not manage_py.is_file():
        nested = sorted(path.glob("*/manage.py"))
        guess = f" Did you mean DIR={nested[0].parent}?" if nested else ""
        raise ProjectError(
            f"{folder} has no manage.py; DIR must be the folder that holds manage.py.{guess}"
        )
    try:  # not through a link: a submission's manage.py may point at /dev/zero
        match = SETTINGS_IN_MANAGE_PY.search(read_text(path, "manage.py"))
    except UnsafePath as unsafe:
        raise ProjectError(f"{manage_py} cannot be read: {unsafe}") from None
    if not match:
        raise ProjectError(
            f"{manage_py} does not set DJANGO_SETTINGS_MODULE, so it is not a Django "
            "project's manage.py (create one with `django-admin startproject mysite`)."
        )
    settings_module = match.group(1)
    settings_file = path.joinpath(*settings_module.split(".")).with_suffix(".py")
    settings_package = path.joinpath(*settings_module.split("."), "__init__.py")
    if not settings_file.is_file() and not settings_package.is_file():
        raise ProjectError(
            f"manage.py uses the settings module {settings_module}, but "
            f"{settings_file.relative_to(path)} does not exist in {folder}."
        )
    return Project(path.resolve(), settings_module)
