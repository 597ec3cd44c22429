"""The project as Django sees it: system checks pass, and `runserver` is Daphne's ASGI server."""

import subprocess
import sys

import pytest


@pytest.mark.behaviour("manage_check")
def test_manage_py_check_reports_no_issues(stage_project):
    """`python manage.py check` exits 0 and reports no issues."""
    project = stage_project.project
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=project.root,
        env=project.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    complaint = (result.stderr.strip().splitlines() or ["no output"])[-1]
    assert result.returncode == 0, f"`manage.py check` failed: {complaint}"
    assert "no issues" in result.stdout, (
        f"`manage.py check` reported: {result.stdout.strip()}"
    )


@pytest.mark.behaviour("runserver_daphne")
def test_runserver_starts_daphne_and_serves_pages(stage_project):
    """`manage.py runserver` announces "Starting ASGI/Daphne" and answers /admin/."""
    server = stage_project.start_server(
        stage_project.redis_url, "runserver", runserver=True
    )
    try:
        page = server.get("/admin/")
        log = server.log_since()
    finally:
        stage_project.stop_server(server)
    assert "Starting ASGI/Daphne" in log, (
        "`runserver` started Django's own (WSGI) server, not Daphne: "
        '"daphne" must be first in INSTALLED_APPS'
    )
    assert page.status == 200, f"`runserver` answered /admin/ with HTTP {page.status}"
