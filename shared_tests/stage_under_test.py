"""A stage (or a student's project graded as a stage) as the tests use it: a private copy of the
project, what loading it revealed, and its server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from shared_tests.servers import Server, ServerPool
from tools.deployment.certificate import TLSFiles, self_signed_pem
from tools.grading.copy_files import UnsafePath, fresh_folder, open_file, write_text
from tools.grading.project import Project, load_failure


class DatabaseProblem(AssertionError):
    """The project's database could not be prepared or reached; the message says why."""


class ProjectDoesNotLoad(AssertionError):
    """The project raised while loading; the message names the error and the file:line."""


class StageUnderTest:
    def __init__(
        self,
        number: int,
        source: Project,
        workdir: Path,
        pool: ServerPool,
        redis_url: Callable[[int], str],
        facts: dict | None = None,
        on_start: Callable[[int, Server], None] = lambda number, server: None,
        migrate: bool = False,
    ):
        self.number = number
        self.source = source
        self.workdir = workdir
        self._pool = pool
        self._redis_url = redis_url
        self._project: Project | None = None
        self._facts = facts  # what an earlier probe of the same code found
        self._on_start = on_start  # called once the main server runs
        self._server: Server | None = None
        self._server_failure: AssertionError | None = None
        self._migrate = migrate  # the stage stores data: apply its migrations first
        self._migrated = False

    @property
    def project(self) -> Project:
        """The private copy every process of this stage runs in."""
        if self._project is None:
            self._project = self.source.copy_to(self.workdir / "project")
            self.sandbox.prepare(self._project.root)
        return self._project

    @property
    def sandbox(self):
        return self._pool.sandbox

    def write_tls(self, folder: str) -> tuple[TLSFiles, str]:
        """A new self-signed key and certificate in `folder` of the copy, for a server there
        to read; and the certificate's text, for clients to trust. Written without following
        a link (the project's processes may have planted one there): UnsafePath if one is
        in the way."""
        key, certificate = self_signed_pem()
        made = fresh_folder(self.project.root, folder, owner=None)
        write_text(self.project.root, f"{folder}/key.pem", key)
        write_text(self.project.root, f"{folder}/cert.pem", certificate)
        return TLSFiles(made / "key.pem", made / "cert.pem"), certificate

    @property
    def facts(self) -> dict:
        """What tools/overlay/workshop_probe.py found (ASGI app, consumers, channel layers)."""
        if self._facts is None:
            self._facts = self.project.probe(self.sandbox)
        failure = load_failure(self._facts)
        if failure:
            raise ProjectDoesNotLoad(failure)
        return self._facts

    @property
    def uses_redis(self) -> bool:
        layers = self.facts.get("channel_layers", {})
        return any(
            str(backend).startswith("channels_redis.") for backend in layers.values()
        )

    @property
    def asgi_target(self) -> str:
        return self.project.asgi_target(self.facts.get("asgi_application"))

    @property
    def server(self) -> Server:
        """This stage's main server, started on first use (with the suite's Redis if needed)."""
        if self._server_failure is not None:
            raise self._server_failure
        if self._server is None:
            try:
                self._server = self.start_server(self.redis_url)
            except AssertionError as failure:
                self._server_failure = failure  # fail fast for the stage's other tests
                raise
            self._on_start(self.number, self._server)
        return self._server

    @property
    def redis_url(self) -> str | None:
        """The suite's Redis (database = stage number) when the project uses a Redis layer."""
        return self._redis_url(self.number) if self.uses_redis else None

    def start_server(
        self,
        redis_url: str | None,
        name: str = "",
        runserver: bool = False,
        port: int | None = None,
        tls: TLSFiles | None = None,
        proxy_headers: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> Server:
        """Another server on this stage's copy (daphne, or `manage.py runserver`), on a free
        port or on `port` (a restart), over TLS with `tls`, behind a proxy with
        `proxy_headers`, with `extra_env` in its environment."""
        self.prepare_database()
        label = f"stage{self.number}" + (f"-{name}" if name else "")
        target = None if runserver else self.asgi_target
        return self._pool.start(
            self.project, target, redis_url, label, port, tls, proxy_headers, extra_env
        )

    @property
    def pool(self) -> ServerPool:
        return self._pool

    def stop_server(self, server: Server, kill: bool = False) -> None:
        """Stop it (`kill`: at once, so it cannot clean up, as when its process dies)."""
        self._pool.stop(server, kill)

    # -- the database (stages that store data) ------------------------------------------
    def prepare_database(self) -> None:
        """Apply the project's migrations once, before its first server starts."""
        if self._migrate and not self._migrated:
            failure = self.project.manage(["migrate", "--noinput"], self.sandbox)
            if failure:
                raise DatabaseProblem(
                    f"`python manage.py migrate --noinput` failed: {failure}"
                )
            self._migrated = True

    def create_user(self, username: str, password: str) -> None:
        """An account (a superuser, so the admin login page takes it)."""
        self.prepare_database()
        failure = self.project.manage(
            [
                "createsuperuser",
                "--noinput",
                "--username",
                username,
                "--email",
                f"{username}@example.com",
            ],
            self.sandbox,
            env={"DJANGO_SUPERUSER_PASSWORD": password},
        )
        if failure:
            raise DatabaseProblem(
                f"`python manage.py createsuperuser` failed: {failure}"
            )

    @property
    def database_name(self) -> str:
        """The project's database, as its settings name it (for SQLite, the file)."""
        return (self.facts.get("database") or {}).get("name", "")

    def open_database(self) -> int:
        """A descriptor of the project's SQLite file, which the tests may lock to hold up a
        write: opened without following a link, so a link swapped in later changes nothing
        (SQLite opens it again as /proc/self/fd/N). Keep it open while the lock is held."""
        database = self.facts.get("database") or {}
        if "sqlite3" not in database.get("engine", ""):
            raise DatabaseProblem(
                f"the project's database is {database.get('engine') or 'not set'}; "
                "this check needs SQLite (django.db.backends.sqlite3)"
            )
        name = Path(self.database_name)
        try:  # not through a link, nor out of the folder with ".."
            return open_file(self.project.root, name, os.O_RDWR)
        except UnsafePath:
            raise DatabaseProblem(
                f"the project's SQLite file {name} is not in the project folder"
            ) from None
