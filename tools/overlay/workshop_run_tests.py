"""Run a project's own tests the way its student runs them: `python manage.py test chat`, on a
virtual display so that a visible `webdriver.Chrome()` (as Part 4 writes it) works too.

Started by tools/grading/student_tests.py inside the project's sandbox, in the project copy.
The display (Debian's Xvfb) runs in the same sandbox and stops with the tests. Arguments after
the script's name are passed on to `manage.py test` (e.g. --failfast).
"""

import os
import shutil
import subprocess
import sys

X11_SOCKETS = "/tmp/.X11-unix"


def start_display():
    """Start Xvfb on a free display number; return (process, ":N"), or (None, None) without Xvfb."""
    if shutil.which("Xvfb") is None:
        print(
            "workshop: Xvfb is not installed; tests run without a display", flush=True
        )
        return None, None
    # Xvfb makes this folder only when it runs as root; the sandbox's /tmp is private.
    os.makedirs(X11_SOCKETS, mode=0o1777, exist_ok=True)
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp"]
        + ["-screen", "0", "1280x1024x24"],
        pass_fds=[write_end],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as numbers:
        number = numbers.readline().strip()  # Xvfb writes it once it accepts clients
    if not number:
        xvfb.kill()
        print("workshop: Xvfb did not start; tests run without a display", flush=True)
        return None, None
    return xvfb, f":{number}"


def main() -> int:
    """Run `manage.py test chat` with a display; its exit code is the tests'."""
    xvfb, display = start_display()
    env = dict(os.environ)
    if display:
        env["DISPLAY"] = display
    command = [sys.executable, "manage.py", "test", "chat", "--noinput", *sys.argv[1:]]
    try:
        return subprocess.call(command, env=env)
    finally:
        if xvfb is not None:
            xvfb.kill()


if __name__ == "__main__":
    sys.exit(main())
