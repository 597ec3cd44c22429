"""The sandbox every process that runs a student's project goes through (the probe, daphne,
`manage.py`), and the test browser too when grading: Debian's bubblewrap (`bwrap`).

Inside, a process sees a read-only system (/usr, /etc), read-only Python and workshop overlay,
its own project copy (the only place it can write) and a private /tmp; nothing of the grader's
home, the checkout, the student's original folder, other students or the reports. It has its own
PID namespace (it cannot see or signal the harness), no capabilities, no new privileges, and
resource limits. When the grader is root it also runs as a user of its own (a uid that no other
run uses at the same time), so the process limit counts only its processes.

The network is not cut here: the grader (tools/grading/harness.py) runs the whole test session
in a network namespace of its own with only a loopback, shared by the tests' clients, Redis,
Chromium and these sandboxes. See docs/en/testing-and-grading.md#sandbox for each option.

Where bwrap cannot create namespaces but the grader is root (a Gradescope container), the
autograder falls back to Gradescope's own advice: kind "user", the same user of its own and
the same limits, without namespaces (it sees what any other user may see, it cannot write the
grader's files or read its results, and its processes are killed by user at the end).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024
# A uid range no distribution hands out (Debian: users up to 59999, subuids from 100000 up
# in blocks of 65536); one slot per run that is going on at the same time.
SANDBOX_UID_BASE = 2_100_000_000
SANDBOX_UID_SLOTS = 4096
SANDBOX_USERS_DIR = Path(tempfile.gettempdir()) / "workshop-sandbox-users"
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
INSTALL_HINT = "run sudo apt-get install bubblewrap (Debian/Ubuntu)"


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create namespaces here; the message is one readable line."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed process may use (each is also named in the report when it is hit)."""

    # Address space (RLIMIT_AS): a daphne server reserves about 0.4 GB. A run of a student's
    # own tests (stage 6) starts Chromium, which reserves terabytes of address space: there
    # the same amount limits the memory it writes to instead (RLIMIT_DATA).
    memory_bytes: int = 2048 * MIB
    # Tasks, threads included, of the sandbox user (RLIMIT_NPROC).
    processes: int = 512
    # CPU time per process (RLIMIT_CPU): a stage-5 server uses about 20 s in a grade.
    cpu_seconds: int = 300
    # The largest file a process may write, its log included (RLIMIT_FSIZE).
    output_bytes: int = 64 * MIB
    # Open files and sockets: 200 test clients need about 400.
    open_files: int = 8192
    # How long a server may live; a whole grade takes about a minute.
    wall_seconds: int = 900
    # How long loading the settings and the ASGI application may take.
    load_seconds: int = 60
    # How long one run of a project's own tests (stage 6) may take; the workshop's take 30 s.
    tests_seconds: int = 180
    # Its private /tmp (held in memory).
    tmp_bytes: int = 256 * MIB

    def describe(self) -> str:
        return (
            f"memory {self.memory_bytes // MIB} MB, {self.processes} processes, "
            f"CPU {self.cpu_seconds} s, output {self.output_bytes // MIB} MB, "
            f"wall time {self.wall_seconds} s per server"
        )


LIMITS = Limits()
# What an error line says when the sandbox is behind it: (phrase in the error, explanation).
LIMIT_SIGNS = (
    ("File too large", "the sandbox's output limit ({output} MB)"),
    ("MemoryError", "the sandbox's memory limit ({memory} MB)"),
    ("Cannot allocate memory", "the sandbox's memory limit ({memory} MB)"),
    ("Resource temporarily unavailable", "the sandbox's process limit ({processes})"),
    ("Read-only file system", "the sandbox: a project may write only in its own copy"),
)


def limit_behind(error: str, limits: Limits = LIMITS) -> str | None:
    """Which sandbox limit an error line shows, in words (None: none)."""
    for phrase, explanation in LIMIT_SIGNS:
        if phrase in error:
            return explanation.format(
                output=limits.output_bytes // MIB,
                memory=limits.memory_bytes // MIB,
                processes=limits.processes,
            )
    return None


@dataclass(frozen=True)
class Sandbox:
    """How to run a student's process: `kind` "bwrap"; "user" (a user of its own and limits,
    no namespaces: the autograder where bwrap cannot run); or "none" (UNSANDBOXED=1, or the
    workshop's own stages on a machine without bwrap)."""

    kind: str
    uid: int | None = None  # the sandbox user (root only); None: the grader's own user
    readable: tuple[Path, ...] = ()  # Python, the virtualenv, tools/overlay
    limits: Limits = field(default=LIMITS)

    @property
    def enabled(self) -> bool:
        """Whether student processes are confined (and limited) at all."""
        return self.kind in ("bwrap", "user")

    def describe(self) -> str:
        """One line for reports: what isolation the run had."""
        if not self.enabled:
            return (
                "UNSANDBOXED: student code ran as the grader, with the grader's access."
            )
        if self.kind == "user":
            return (
                f"Sandbox: as user {self.uid} with limits ({self.limits.describe()}); no "
                "namespaces (bwrap cannot run here): it could read what any user may read "
                "and reach the network, but not write the grader's files or its results."
            )
        user = f"as user {self.uid}" if self.uid is not None else "as the grader's user"
        return (
            f"Sandbox: bubblewrap, {user}, own PID namespace, loopback-only network, "
            f"read-only system; limits: {self.limits.describe()}."
        )

    def prepare(self, folder: Path) -> None:
        """Let the sandbox user write its project copy (it owns nothing else)."""
        if self.uid is None:
            return
        for root, dirs, files in os.walk(folder):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, self.uid, self.uid)
        if self.kind == "user":  # no bind mount: it must walk the real path to its copy
            make_traversable(folder.parent)

    def wrap(
        self, argv: list[str], writable: Path, starts_chromium: bool = False
    ) -> list[str]:
        """`argv` run in the sandbox, in `writable` (the project copy) as its working folder."""
        if not self.enabled:
            return list(argv)
        memory = "data" if starts_chromium else "as"
        if self.kind == "user":
            limits = limit_command(self.limits, self.limits.processes, memory)
            return become_user(self.uid)[1:] + limits + ["--", *argv]
        command = bwrap_options(self.readable, writable, as_root=self.uid is not None)
        command += ["--chdir", str(writable)]
        if self.uid is not None:
            command += become_user(self.uid)
        command += limit_command(self.limits, self.process_limit(), memory)
        return command + ["--", *argv]

    def end(self) -> None:
        """After a run: no process of its user may outlive it ("user" kind; bwrap's PID
        namespaces end with their first process)."""
        if self.kind == "user" and self.uid is not None:
            kill_processes_of(self.uid)

    def process_limit(self) -> int:
        """RLIMIT_NPROC counts every task of a user: for a user of its own, the limit; for
        the grader's own user, what the grader runs now plus the limit."""
        if self.uid is not None:
            return self.limits.processes
        return tasks_of_user(os.getuid()) + self.limits.processes

    def for_browser(self, programs) -> Sandbox:
        """The sandbox for the test browser while grading: Chromium is the grader's program,
        but a student's server drives what it loads and could talk to chromedriver on the
        loopback, so it too sees only the system, as a user of its own, with the limits of a
        student's Chromium (the memory it writes to, not its address space: see Limits)."""
        if not self.enabled:
            return self
        uid = claim_sandbox_user() if self.uid is not None else None
        folders = {Path(p).resolve().parent for p in programs if p}
        return Sandbox(self.kind, uid=uid, readable=tuple(sorted(folders)))

    def wrap_program(self, argv: list[str]) -> list[str]:
        """A trusted program (the browser) in this sandbox, with only a private /tmp."""
        if not self.enabled:
            return list(argv)
        # A page a student's server sends could eat memory or start processes without end.
        limits = limit_command(self.limits, self.process_limit(), "data")
        if self.kind == "user":
            return [
                "env",
                "HOME=/tmp",
                *become_user(self.uid)[1:],
                *limits,
                "--",
                *argv,
            ]
        command = bwrap_options(self.readable, None, as_root=self.uid is not None)
        command += ["--ro-bind", "/sys", "/sys", "--chdir", "/tmp"]
        command += ["--setenv", "HOME", "/tmp"]
        if self.uid is not None:
            command += become_user(self.uid)
        return command + limits + ["--", *argv]


NO_SANDBOX = Sandbox("none")


def system_links() -> dict[str, str | None]:
    """/bin, /lib, ...: a symlink's target into /usr (merged /usr), or None for a folder."""
    return {
        link: os.readlink(link) if os.path.islink(link) else None
        for link in SYSTEM_LINKS
        if os.path.lexists(link)
    }


def bwrap_options(
    readable, writable: Path | None, as_root: bool, links: dict | None = None
) -> list[str]:
    """bwrap's options: namespaces, the read-only system, private /tmp, and the bind mounts."""
    options = [
        "bwrap",
        "--unshare-pid",  # its own PID namespace: it sees only its own processes
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",  # the harness stops, everything inside stops
        "--new-session",  # no terminal to push keystrokes into (TIOCSTI)
    ]
    if as_root:
        # Only what setpriv needs to switch to the sandbox user; it then drops them all.
        options += ["--cap-drop", "ALL"]
        for capability in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            options += ["--cap-add", capability]
    for folder in SYSTEM_DIRS:
        options += ["--ro-bind", folder, folder]
    for link, target in (system_links() if links is None else links).items():
        if target is not None:
            options += ["--symlink", target, link]
        else:
            options += ["--ro-bind", link, link]
    options += ["--proc", "/proc", "--dev", "/dev"]
    # A private /tmp, and private shared memory for multiprocessing (the live server of a
    # student's own tests, stage 6).
    for folder in ("/tmp", "/dev/shm"):
        options += ["--size", str(LIMITS.tmp_bytes), "--perms", "1777"]
        options += ["--tmpfs", folder]
    made = {"/", "/tmp", *SYSTEM_DIRS}
    mounts = [("--ro-bind", Path(p)) for p in readable]
    if writable is not None:
        mounts.append(("--bind", writable))
    for how, path in mounts:
        if any(path.is_relative_to(d) for d in SYSTEM_DIRS):
            continue  # already visible (a system Python in /usr)
        # Parent folders bwrap would make are private (0700): make them traversable.
        for parent in reversed(path.parents):
            if str(parent) not in made:
                options += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        options += [how, str(path), str(path)]
        made.add(str(path))
    return options


def become_user(uid: int) -> list[str]:
    """setpriv (util-linux): become `uid`, no groups, no capabilities, no new privileges."""
    return [
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


def limit_command(limits: Limits, processes: int, memory: str = "as") -> list[str]:
    """prlimit (util-linux) sets the limits, then runs the command. `memory`: "as" limits
    the address space, "data" the memory written to (for Chromium, see Limits).
    The CPU limit's soft value sends SIGXCPU; five seconds later the hard one kills."""
    return [
        "--",
        "prlimit",
        f"--{memory}={limits.memory_bytes}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",
        f"--fsize={limits.output_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        f"--nproc={processes}",
    ]


def tasks_of_user(uid: int) -> int:
    """How many tasks (threads included) `uid` runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def network_namespace(argv: list[str]) -> list[str]:
    """`argv` (the test session) in a network namespace of its own: only a loopback, so
    nothing a student process does can reach another machine or another student's run."""
    return [
        "bwrap",
        "--dev-bind",
        "/",
        "/",
        "--unshare-net",
        "--die-with-parent",
        "--",
        *argv,
    ]


def runtime_paths() -> tuple[Path, ...]:
    """What a sandboxed Python needs to read: its installation, the virtualenv and the
    workshop's settings overlay."""
    from tools.grading.project import OVERLAY

    # The virtualenv at the path it is used by too (a symlinked .venv): its python finds
    # its packages from the path it was started with.
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), OVERLAY}
    paths.add(Path(sys.prefix).absolute())
    return tuple(sorted(paths))


def sandbox_problem() -> str | None:
    """Why bwrap cannot run here (None: it can), as one line."""
    if sys.platform != "linux":
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    missing = [p for p in ("setpriv", "prlimit") if shutil.which(p) is None]
    if missing:
        return f"{' and '.join(missing)} not found: run sudo apt-get install util-linux"
    as_root = os.geteuid() == 0
    trial = bwrap_options((), None, as_root)
    if as_root:
        trial += become_user(SANDBOX_UID_BASE)
    trial += limit_command(LIMITS, processes=tasks_of_user(os.geteuid()) + 64)
    trial += ["--", "true"]
    for argv in (trial, network_namespace(["true"])):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            why = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return (
                f"bwrap cannot create its namespaces here ({why}); a container "
                "without user namespaces cannot sandbox"
            )
    return None


_claimed_users: dict[int, int] = {}  # uid -> the lock file descriptor held for it


def claim_sandbox_user() -> int:
    """A uid for this run's student processes that no other run holds (a lock held until
    this process ends) and no process uses."""
    SANDBOX_USERS_DIR.mkdir(mode=0o700, exist_ok=True)
    start = os.getpid() % SANDBOX_UID_SLOTS
    for step in range(SANDBOX_UID_SLOTS):
        uid = SANDBOX_UID_BASE + (start + step) % SANDBOX_UID_SLOTS
        if uid in _claimed_users:
            continue  # this process already uses it (for the browser, say)
        lock = os.open(SANDBOX_USERS_DIR / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        if processes_of(uid):
            os.close(lock)
            continue
        _claimed_users[uid] = lock
        return uid
    raise SandboxUnavailable("every sandbox user is taken by another run")


def make_traversable(folder: Path) -> None:
    """Let other users pass through (not list) `folder` and the grader's folders above it
    (temporary folders are private), up to one they may pass already."""
    for path in [folder, *folder.parents]:
        info = path.stat()
        if info.st_mode & 0o001 or info.st_uid != os.geteuid():
            return
        os.chmod(path, info.st_mode | 0o001)


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except FileNotFoundError:
                continue
    return found


def descendants(pid: int) -> list[psutil.Process]:
    """Every process `pid` started, and every process those started (none when it is gone)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def signal_quietly(processes: list[psutil.Process], number: int) -> None:
    """Send signal `number` to each of `processes` that is still there."""
    for process in processes:
        try:
            process.send_signal(number)
        except psutil.Error:
            pass  # gone already


def kill_processes_of(uid: int) -> None:
    """SIGKILL every process of `uid`, again until none is left (a fork races the kill)."""
    for _ in range(50):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def resolve_kind(kind: str) -> str:
    """ "bwrap", "user" or "none" for a requested kind: "auto" (bwrap when it can run, else
    none: the workshop's own stages), "best" (bwrap, else a user of its own when root: the
    autograder), or one of the three. Raises SandboxUnavailable when it cannot be had."""
    if kind == "none":
        return "none"
    if kind == "user":
        if os.geteuid() != 0:
            raise SandboxUnavailable("a user of its own needs the grader to be root")
        return "user"
    problem = sandbox_problem()
    if problem is None:
        return "bwrap"
    if kind == "auto":
        return "none"
    if kind == "best" and os.geteuid() == 0:
        return "user"
    raise SandboxUnavailable(problem)


def make_sandbox(kind: str, limits: Limits = LIMITS) -> Sandbox:
    """The sandbox for this process' run (kinds: see resolve_kind)."""
    kind = resolve_kind(kind)
    if kind == "none":
        return Sandbox("none", limits=limits)
    if kind == "user":
        return Sandbox("user", uid=claim_sandbox_user(), limits=limits)
    uid = claim_sandbox_user() if os.geteuid() == 0 else None
    return Sandbox("bwrap", uid=uid, readable=runtime_paths(), limits=limits)


# Options and how many arguments each takes, to print one per line (docs/*/testing-and-grading).
ARITY = {
    "--ro-bind": 2, "--bind": 2, "--dev-bind": 2, "--symlink": 2, "--setenv": 2,
    "--proc": 1, "--dev": 1, "--tmpfs": 1, "--size": 1, "--perms": 1, "--dir": 1,
    "--cap-drop": 1, "--cap-add": 1, "--chdir": 1,
}  # fmt: skip


def example_command() -> str:
    """The command that serves a graded project's stage 5, on a typical Debian machine (root,
    merged /usr, Python in /opt), one option per line: what the docs show."""
    home = Path("/home/grader/channels-chat-workshop")
    sandbox = Sandbox(
        "bwrap",
        uid=SANDBOX_UID_BASE,
        readable=(Path("/opt/python3.11"), home / ".venv", home / "tools/overlay"),
    )
    project = Path("/tmp/workshop-run-1a2b3c/tmp/stage50/project")
    merged = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib"}
    merged["/lib64"] = "usr/lib64"
    options = bwrap_options(sandbox.readable, project, as_root=True, links=merged)
    options += ["--chdir", str(project), *become_user(sandbox.uid)]
    options += limit_command(sandbox.limits, processes=sandbox.limits.processes)
    options += ["--", str(home / ".venv/bin/python"), "-m", "daphne"]
    options += ["-b", "127.0.0.1", "-p", "41234", "mysite.asgi:application"]
    return " \\\n".join(option_lines(options))


def option_lines(options: list[str]) -> list[str]:
    """Group a command's options one per line: an option with its arguments, --perms and
    --size with the option they modify, and each program after "--" with its options; the
    last program on one line."""
    last_program = len(options) - options[::-1].index("--")
    lines, index, pending = [options[0]], 1, ""
    while index < len(options):
        if index + 1 >= last_program and options[index] == "--":
            lines.append("  " + " ".join(options[index:]))
            break
        option = options[index]
        width = 1 + ARITY.get(option, 0)
        if option == "--":
            width = 2  # the separator and the program after it
        text = pending + " ".join(options[index : index + width])
        if option in ("--perms", "--size"):
            pending = text + " "
        else:
            lines.append("  " + text)
            pending = ""
        index += width
    return lines
