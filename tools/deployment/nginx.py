"""nginx in front of the daphne workers: its configuration, filled in from the project's
deploy/nginx.conf.template, and the command that runs it in the foreground as you."""

from __future__ import annotations

import functools
import re
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.deployment.certificate import TLSFiles
from tools.net import HOST

TEMPLATE = Path("deploy") / "nginx.conf.template"
# The names the template must use; nginx's own variables are lower case, so they stay as written.
NAMES = (
    "RUN_DIR",
    "LISTEN_PORT",
    "WORKER_SERVERS",
    "TLS_CERTIFICATE",
    "TLS_CERTIFICATE_KEY",
    "STATIC_ROOT",
)
INSTALL_HINT = "run sudo apt-get install nginx (Debian/Ubuntu)"


class NginxProblem(RuntimeError):
    """No nginx, or a template it cannot use; the message is one readable line."""


class NginxMissing(NginxProblem):
    """nginx is not installed here."""


@dataclass(frozen=True)
class NginxSite:
    """What the template is filled in with."""

    run_dir: Path  # nginx's pid file, temporary files and access log
    port: int  # where nginx listens (https)
    worker_ports: tuple[int, ...]  # one daphne worker on each
    tls: TLSFiles
    static_root: Path  # what `manage.py collectstatic` filled

    def values(self) -> dict[str, str]:
        servers = "\n        ".join(
            f"server {HOST}:{port};" for port in self.worker_ports
        )
        return {
            "RUN_DIR": str(self.run_dir),
            "LISTEN_PORT": str(self.port),
            "WORKER_SERVERS": servers,
            "TLS_CERTIFICATE": str(self.tls.certificate),
            "TLS_CERTIFICATE_KEY": str(self.tls.key),
            "STATIC_ROOT": str(self.static_root),
        }


def nginx_program() -> str:
    """Where nginx is (Debian installs it in /usr/sbin, which a user's PATH may lack)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise NginxMissing(f"nginx is not installed: {INSTALL_HINT}")
    return found


@functools.cache
def mime_types() -> str:
    """nginx's own table of file types (mime.types, beside the nginx.conf it was built
    with: /etc/nginx on Debian, $(brew --prefix)/etc/nginx with Homebrew). Written next to
    the configuration, where the template's `include mime.types;` reads it."""
    built = subprocess.run(
        [nginx_program(), "-V"], capture_output=True, text=True, timeout=10
    )
    found = re.search(r"--conf-path=(\S+)", built.stderr + built.stdout)
    folders = [Path(found.group(1)).parent] if found else []
    folders.append(Path("/etc/nginx"))
    for folder in folders:
        table = folder / "mime.types"
        if table.is_file():
            return table.read_text("utf-8", "replace")
    raise NginxProblem(
        f"nginx's mime.types is not in {' or '.join(map(str, folders))}: reinstall nginx"
    )


def render(template: str, site: NginxSite) -> str:
    """The template with ${NAME} filled in; a name it lacks is a readable error."""
    missing = [name for name in NAMES if f"${{{name}}}" not in template]
    if missing:
        raise NginxProblem(
            f"{TEMPLATE} does not use {', '.join('${' + m + '}' for m in missing)}"
        )
    return string.Template(template).safe_substitute(site.values())


def write_config(project_root: Path, site: NginxSite) -> Path:
    """Fill in the project's template; return the nginx.conf written into site.run_dir."""
    template = project_root / TEMPLATE
    if not template.is_file():
        raise NginxProblem(f"the project has no {TEMPLATE}")
    site.run_dir.mkdir(parents=True, exist_ok=True)
    config = site.run_dir / "nginx.conf"
    config.write_text(render(template.read_text("utf-8", "replace"), site), "utf-8")
    (site.run_dir / "mime.types").write_text(mime_types(), "utf-8")
    return config


def nginx_command(config: Path) -> list[str]:
    """nginx in the foreground (no daemon), its errors on stderr, its prefix next to `config`."""
    return [
        nginx_program(),
        "-p",
        str(config.parent),
        "-c",
        str(config),
        "-e",
        "stderr",
        "-g",
        "daemon off;",
    ]
