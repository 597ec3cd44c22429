"""`make step9 WORKERS=N`: the chat as it is deployed. N daphne workers (each on a port of its
own, with --proxy-headers) behind nginx, which terminates TLS on PORT and takes turns among
them; Redis is their one channel layer. Each worker's log lines start with its name, so you see
which worker took each page and each socket.

What is kept between starts lives in .workshop/stepN/ (not in git): the self-signed
certificate, the secret key, nginx's configuration and its temporary files.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from tools.course import REPO, Stage
from tools.deployment.certificate import TLSFiles, self_signed
from tools.deployment.nginx import NginxSite, nginx_command, write_config
from tools.deployment.workers import BEHIND_NGINX, distinct_free_ports, worker_command
from tools.net import HOST, port_in_use

STARTUP_SECONDS = 30  # how long a worker may take to listen
CERTIFICATE_DAYS = 365


def state_dir(stage: Stage) -> Path:
    return REPO / ".workshop" / f"step{stage.number}"


def secret_key(folder: Path) -> str:
    """The key every worker signs sessions with: made at first start, then kept."""
    path = folder / "secret_key"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def certificate(folder: Path) -> TLSFiles:
    """The self-signed certificate: made at first start, then kept (a browser that was told
    to accept it once keeps accepting it)."""
    files = TLSFiles(folder / "key.pem", folder / "cert.pem")
    if files.key.is_file() and files.certificate.is_file():
        return files
    return self_signed(folder, days=CERTIFICATE_DAYS)


def deployment_environment(stage: Stage, redis_url: str) -> dict[str, str]:
    """Production settings (DEBUG off) from the environment, as stage 9's settings.py reads
    them; a DJANGO_* variable you set yourself wins."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", REDIS_URL=redis_url)
    env.setdefault("DJANGO_SECRET_KEY", secret_key(state_dir(stage)))
    for name, value in BEHIND_NGINX.items():
        env.setdefault(name, value)
    env.pop("DJANGO_DEBUG", None)
    return env


def manage(stage: Stage, env: dict[str, str], *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *arguments, "--noinput", "-v", "0"],
        cwd=stage.path,
        env=env,
        check=True,
    )


def relay(stream, label: str) -> None:
    """Print a process's output lines with its label in front."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{label} | {line.decode('utf-8', 'replace')}")
        sys.stdout.flush()


def start(command: list[str], label: str, cwd: Path, env) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    threading.Thread(target=relay, args=(process.stdout, label), daemon=True).start()
    return process


def wait_until_listening(port: int, process: subprocess.Popen, label: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not port_in_use(port):
        if process.poll() is not None:
            raise SystemExit(f"{label} stopped (exit code {process.returncode}).")
        if time.monotonic() > deadline:
            raise SystemExit(f"{label} did not listen on port {port} in time.")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def watch(workers: dict[str, subprocess.Popen], nginx: subprocess.Popen) -> int:
    """Run until nginx stops or every worker has; say when a worker stops (nginx then sends
    its sockets to the others: that is the point of having several)."""
    gone: set[str] = set()
    while nginx.poll() is None:
        for label, process in workers.items():
            if label not in gone and process.poll() is not None:
                gone.add(label)
                print(
                    f"{label} stopped (exit code {process.returncode}); nginx sends "
                    "its visitors to the other workers.",
                    flush=True,
                )
        if len(gone) == len(workers):
            print("Every worker has stopped.", flush=True)
            return 1
        time.sleep(0.5)
    print(f"nginx stopped (exit code {nginx.returncode}).", flush=True)
    return 1


def serve_deployment(stage: Stage, port: int, redis_url: str, workers: int) -> int:
    env = deployment_environment(stage, redis_url)
    manage(stage, env, "migrate")
    manage(stage, env, "collectstatic")
    state = state_dir(stage)
    worker_ports = distinct_free_ports(workers)
    site = NginxSite(
        run_dir=state / "nginx",
        port=port,
        worker_ports=tuple(worker_ports),
        tls=certificate(state / "tls"),
        static_root=stage.path / "staticfiles",
    )
    config = write_config(stage.path, site)
    with ExitStack() as running:
        processes = {}
        for number, worker_port in enumerate(worker_ports, 1):
            label = f"worker {number} ({HOST}:{worker_port})"
            process = start(worker_command(worker_port), label, stage.path, env)
            running.callback(stop, process)
            processes[label] = process
        for (label, process), worker_port in zip(
            processes.items(), worker_ports, strict=True
        ):
            wait_until_listening(worker_port, process, label)
        nginx = start(nginx_command(config), "nginx", stage.path, env)
        running.callback(stop, nginx)
        wait_until_listening(port, nginx, "nginx")
        print(f"\nStage {stage.number}: {stage.title}")
        print(
            f"nginx on port {port} (TLS), {workers} daphne workers, Redis at {redis_url}"
        )
        print(
            f"Open https://{HOST}:{port}{stage.open}  (the certificate is self-signed: "
            "your browser asks once)\nCtrl-C stops everything.\n",
            flush=True,
        )
        return watch(processes, nginx)
