"""Running a command as on a machine that lacks the system programs the workshop installs
(redis-server, Chromium, bubblewrap, apt-get), to see what it says."""

import os
import shutil
import subprocess

from tools.course import REPO


def restricted_path(tmp_path, keep=("id", "cut", "bash", "python3")) -> str:
    """A PATH with a few basic programs but no redis-server, chromium, bwrap or apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in keep:
        found = shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    return str(bin_dir)


def run_without_system_programs(
    tmp_path, command, timeout=60, **env
) -> subprocess.CompletedProcess:
    """Run `command` as on a machine without Redis, a browser or bubblewrap, where nothing
    gets installed."""
    return subprocess.run(
        command,
        cwd=REPO,
        env={
            **os.environ,
            "PATH": restricted_path(tmp_path),
            "WORKSHOP_NO_INSTALL": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
