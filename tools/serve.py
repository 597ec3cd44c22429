"""`make stepN`: serve one stage at http://127.0.0.1:PORT in the foreground (stage 9: at
https://127.0.0.1:PORT, nginx in front of WORKERS daphne workers; tools/deployment/serve.py).

Stages 4 and later need Redis: the one at REDIS_URL if it answers, otherwise a private
redis-server started here (and stopped on exit). Ctrl-C stops the server and everything started
with it, and so do SIGTERM and SIGHUP (the terminal closed).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from tools.course import Stage, load_course
from tools.deployment.nginx import NginxProblem
from tools.deployment.serve import manage, serve_deployment, stop
from tools.net import HOST, port_in_use
from tools.redis_server import PrivateRedis, redis_answers

REQUIRE = Path(__file__).resolve().parent / "require.sh"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=int)
    parser.add_argument("--port", default="8000")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workers", default="2", help="(stage 9) daphne workers")
    return parser.parse_args(argv)


def valid_port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def start_redis_if_needed(
    stage: Stage, redis_url: str
) -> tuple[str, PrivateRedis | None]:
    """Return the Redis URL to use and the private server we started (None if we used one)."""
    if redis_answers(redis_url):
        print(f"Using the Redis at {redis_url}")
        return redis_url, None
    # Installs redis-server when it can (root + apt); otherwise prints what to install.
    if subprocess.run(["bash", str(REQUIRE), "redis"]).returncode != 0:
        raise SystemExit(1)
    redis = PrivateRedis().start()
    print(f"No Redis answered at {redis_url}; started a private one at {redis.url()}.")
    return redis.url(), redis


def serve(stage: Stage, port: int, redis_url: str | None) -> int:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if redis_url:
        env["REDIS_URL"] = redis_url
    # The admin needs its tables; migrate is quick and quiet when there is nothing to do.
    manage(stage, env, "migrate")
    print(f"\nStage {stage.number}: {stage.title}")
    print(
        f"Open http://{HOST}:{port}{stage.open}  (Ctrl-C stops the server)\n",
        flush=True,
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"{HOST}:{port}"],
        cwd=stage.path,
        env=env,
    )
    try:
        return server.wait()
    except KeyboardInterrupt:
        stop(server)  # a Ctrl-C reached it too; SIGTERM or SIGHUP may not have
        return 0


def stop_on_hangup_and_terminate() -> None:
    """SIGTERM (`kill`, or make passing one on) and SIGHUP (the terminal closed) stop
    everything as Ctrl-C does, instead of leaving a private Redis or a worker behind."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    course = load_course()
    try:
        stage = course.stage(args.stage)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    port = valid_port(args.port)
    if port is None:
        print(
            f"PORT={args.port} is not a port number: use one from 1 to 65535.",
            file=sys.stderr,
        )
        return 2
    workers = int(args.workers) if args.workers.isdigit() else 0
    if stage.deploy and not 1 <= workers <= 16:
        print(
            f"WORKERS={args.workers} is not a number of workers: use 1 to 16.",
            file=sys.stderr,
        )
        return 2
    if port_in_use(port):
        print(
            f"Port {port} is already in use: stop what runs there, or pick another "
            f"port with `make step{stage.number} PORT={port + 1}`.",
            file=sys.stderr,
        )
        return 1
    stop_on_hangup_and_terminate()
    redis = None
    try:
        redis_url = None
        if stage.redis:
            redis_url, redis = start_redis_if_needed(stage, args.redis_url)
        if stage.deploy:
            return serve_deployment(stage, port, redis_url, workers)
        return serve(stage, port, redis_url)
    except NginxProblem as problem:
        print(f"Cannot serve stage {stage.number}: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if redis is not None:
            redis.close()
            print("Stopped the private Redis.")


if __name__ == "__main__":
    sys.exit(main())
