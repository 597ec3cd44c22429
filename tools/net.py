"""Ports on this machine: find a free one, tell whether one is taken, and list the TCP
sockets the kernel knows (which process listens where, who is connected to whom)."""

import os
import socket
from dataclasses import dataclass

HOST = "127.0.0.1"
LISTEN, ESTABLISHED = "0A", "01"  # a socket's state in /proc/net/tcp


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class TcpSocket:
    """One TCP socket, as /proc/net/tcp lists it."""

    port: int  # its own (local) port
    remote: str  # the other end: address:port in the kernel's hex ("0100007F:1F90")
    state: str  # LISTEN, ESTABLISHED, ...
    inode: str  # the socket's inode: /proc/<pid>/fd/N links to "socket:[inode]"


def tcp_sockets() -> list[TcpSocket]:
    """Every TCP socket of this network namespace (/proc/net/tcp and tcp6; tcp6 is missing
    where IPv6 is off)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                rows = [line.split() for line in lines][1:]  # after the header
        except FileNotFoundError:
            continue
        for row in rows:
            port = int(row[1].rpartition(":")[2], 16)
            found.append(TcpSocket(port, row[2], row[3], row[9]))
    return found


def established_connections(ports: set[int]) -> dict[int, set[tuple[str, str]]]:
    """The established TCP connections to each of `ports`, as (the address they come from,
    their socket's inode)."""
    found: dict[int, set[tuple[str, str]]] = {port: set() for port in ports}
    for tcp in tcp_sockets():
        if tcp.state == ESTABLISHED and tcp.port in found:
            found[tcp.port].add((tcp.remote, tcp.inode))
    return found


def listens_on(pids: list[int], port: int) -> bool | None:
    """Whether one of the processes `pids` holds the socket listening on `port`; None when
    their open files cannot be read (another user's, without the right to look)."""
    listeners = {
        f"socket:[{s.inode}]"
        for s in tcp_sockets()
        if s.port == port and s.state == LISTEN
    }
    unreadable = False
    for pid in pids:
        try:
            fds = [
                os.path.join(f"/proc/{pid}/fd", fd)
                for fd in os.listdir(f"/proc/{pid}/fd")
            ]
            if any(readlink(fd) in listeners for fd in fds):
                return True
        except PermissionError:
            unreadable = True
        except FileNotFoundError:  # it exited meanwhile
            continue
    return None if unreadable else False


def readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""
