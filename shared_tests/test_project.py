"""The project as Django sees it: system checks pass, and `runserver` is Daphne's ASGI server."""

import sys

import pytest

CHECK_TIMEOUT = 60


@pytest.mark.behaviour("manage_check")
def test_manage_py_check_reports_no_issues(stage_project):
    """`python manage.py check` exits 0 and reports no issues."""
    result = stage_project.project.run(
        [sys.executable, "manage.py", "check"], stage_project.sandbox, CHECK_TIMEOUT
    )
    assert result.returncode is not None, (
        f"`manage.py check` was still running after {CHECK_TIMEOUT} s and was stopped"
    )
    complaint = (result.stderr.strip().splitlines() or ["no output"])[-1]
    assert result.returncode == 0, f"`manage.py check` failed: {complaint}"
    assert "no issues" in result.stdout, (
        f"`manage.py check` reported: {result.stdout.strip()}"
    )


@pytest.mark.behaviour("runserver_daphne")
def test_runserver_starts_daphne_and_serves_pages(stage_project):
    """`manage.py runserver` announces "Starting ASGI/Daphne" and Daphne answers /admin/:
    its Server header says so (Django's own server says WSGIServer), and so does its own
    answer to a request that is not HTTP, which no middleware sees."""
    server = stage_project.start_server(
        stage_project.redis_url, "runserver", runserver=True
    )
    try:
        page = server.get("/admin/")
        # Not HTTP: the server answers it itself, so no Django code can change the answer.
        answer = server.first_answer_to(b"NOT-HTTP\r\n\r\n")
        log = server.log_since()
    finally:
        stage_project.stop_server(server)
    assert "Starting ASGI/Daphne" in log, (
        "`runserver` started Django's own (WSGI) server, not Daphne: "
        '"daphne" must be first in INSTALLED_APPS'
    )
    assert page.status == 200, f"`runserver` answered /admin/ with HTTP {page.status}"
    assert answer.startswith(b"HTTP/1.1 400"), (
        f"`runserver` answered a request that is not HTTP with {answer[:40]!r}, as Django's "
        "own (WSGI) server does (Daphne answers `HTTP/1.1 400 Bad Request`): "
        '"daphne" must be first in INSTALLED_APPS'
    )
    assert page.server == "daphne", (
        f"/admin/ came from {page.server or 'a server that gives no name'}, not Daphne: "
        '"daphne" must be first in INSTALLED_APPS'
    )
