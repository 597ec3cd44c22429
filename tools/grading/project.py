"""A Django project folder as the suite and the grader use it: found from its manage.py, copied
to a private folder (the original is never written to), and loaded with the workshop's settings
overlay (tools/overlay/workshop_settings.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OVERLAY = Path(__file__).resolve().parent.parent / "overlay"
# manage.py's os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
SETTINGS_IN_MANAGE_PY = re.compile(
    r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([A-Za-z_][\w.]*)["']"""
)
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
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="workshop_settings",
            WORKSHOP_PROJECT_SETTINGS=self.settings_module,
            PYTHONPATH=os.pathsep.join([str(self.root), str(OVERLAY)]),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        return env

    def copy_to(self, destination: Path) -> Project:
        """Copy the project's code (no caches or databases) and return the copy."""
        shutil.copytree(
            self.root,
            destination,
            ignore=shutil.ignore_patterns(*NOT_COPIED),
            symlinks=True,
        )
        return Project(destination, self.settings_module)

    def probe(self, timeout: float = 60) -> dict:
        """Load the project in a subprocess (tools/overlay/workshop_probe.py) and return its facts."""
        result = subprocess.run(
            [sys.executable, str(OVERLAY / "workshop_probe.py")],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        last_line = (result.stdout.strip().splitlines() or [""])[-1]
        try:
            return json.loads(last_line)
        except json.JSONDecodeError:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return {"ok": False, "phase": "settings", "error": detail, "where": ""}

    def asgi_target(self, asgi_application: str | None) -> str:
        """The module:attribute daphne serves, from ASGI_APPLICATION or the settings package."""
        if asgi_application and "." in asgi_application:
            module, _, attribute = asgi_application.rpartition(".")
            return f"{module}:{attribute}"
        package = self.settings_module.rpartition(".")[0] or self.settings_module
        return f"{package}.asgi:application"


def load_failure(facts: dict) -> str | None:
    """Why a project did not load, as one sentence, from Project.probe()'s facts (None: it
    loaded)."""
    if facts["ok"]:
        return None
    where = f" ({facts['where']})" if facts.get("where") else ""
    what = (
        "its settings" if facts.get("phase") == "settings" else "its ASGI application"
    )
    return f"the project does not load: {what} raised {facts['error']}{where}."


def find_project(folder: str | os.PathLike) -> Project:
    """Return the Django project in `folder` (the folder holding manage.py) or raise ProjectError."""
    path = Path(folder).expanduser()
    if not str(folder).strip():
        raise ProjectError(
            "No folder given: pass DIR=path/to/your/project (the folder with manage.py)."
        )
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
    match = SETTINGS_IN_MANAGE_PY.search(
        manage_py.read_text(encoding="utf-8", errors="replace")
    )
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
