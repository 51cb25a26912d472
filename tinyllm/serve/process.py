"""Process helpers shared by the thin client and the daemon: pid files, liveness, the start-up lock,
and who is at the other end of a Unix socket.

Standard library only (os, fcntl, time, _socket): this module is on the thin client's path.
`subprocess` is imported only on systems without /proc.
"""

from __future__ import annotations

import _socket  # not `socket`: its enum set-up costs ~3 ms of every `nl2cmd` call
import fcntl
import os
import sys
import time

# typing is not imported at run time (start-up cost on the thin client's path): annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# The daemon's module: what the client runs (`python -m ...`) and what a daemon's command line contains.
DAEMON_MODULE = "tinyllm.serve.daemon"

# The generation backend: unset (or "real") for tinyllm.serve.suggest; otherwise the import path of a
# module whose `Suggester` class has the same interface (the tests' double: tests.fake_backend).
BACKEND_ENV = "NL2CMD_BACKEND"
REAL_BACKEND = "real"

# Exit statuses of `python -m tinyllm.serve.daemon` that the spawner understands.
EXIT_ERROR = 1
EXIT_MODEL = 3  # the model could not be loaded: in-process generation would fail the same way
EXIT_RUNNING = 4  # another daemon already owns the pid file


class LockTimeout(Exception):
    """The start-up lock was not free within the timeout."""


def backend_name() -> str:
    """The generation backend this environment asks for: "real", or the module named by NL2CMD_BACKEND."""
    name = os.environ.get(BACKEND_ENV, "").strip()
    return name if name and name.lower() != REAL_BACKEND else REAL_BACKEND


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None if it is missing or garbage."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None


def pid_alive(pid: int) -> bool:
    """True if `pid` is a running (non-zombie) process."""
    try:
        # Reap it if it is our own exited child (a client that spawned a daemon that later exited).
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except (ChildProcessError, OSError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def is_daemon_process(pid: int, socket_path: str | Path | None = None) -> bool:
    """True if `pid` is an nl2cmd daemon run by this user and, given `socket_path`, one started for
    that socket (``--socket PATH`` on its command line, as `spawn` passes it).

    Guards against a recycled pid in a stale pid file, and against a pid file that names the
    daemon of another NL2CMD_HOME: only the daemon serving this socket may be signalled.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
        owner = os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False  # Linux and the process is gone
        args, owner = None, None
    except OSError:
        return socket_path is None  # cannot tell: never signal on a guess
    if args is None:  # no /proc (macOS): ask ps
        import subprocess

        try:
            out = subprocess.run(["ps", "-o", "uid=,command=", "-p", str(pid)], capture_output=True, timeout=2).stdout
        except (OSError, subprocess.SubprocessError):
            return socket_path is None
        uid, _, command = out.strip().partition(b" ")
        if not uid.isdigit():
            return False
        owner = int(uid)
        args = command.split()
    if owner != os.getuid() or not any(DAEMON_MODULE.encode() in a for a in args):
        return False
    if socket_path is None:
        return True
    wanted = os.fsencode(str(socket_path))
    return any(a == b"--socket" and b == wanted for a, b in zip(args, args[1:]))


def process_stopped(pid: int) -> bool:
    """True if `pid` is stopped (SIGSTOP, a debugger): it will not answer until continued (Linux only)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` is gone; True if it exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class file_lock:  # noqa: N801 (a context manager used like a function)
    """Exclusive flock on `path`, polling until `timeout` (then LockTimeout); `with file_lock(...):`.

    A class rather than @contextlib.contextmanager: contextlib is not imported on the request path.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout, self.fd = path, timeout, -1

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(f"timed out waiting for the start-up lock {self.path}") from None
                time.sleep(0.02)
            except BaseException:
                os.close(fd)
                raise
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock


def peer_credentials(sock: Any) -> tuple[int | None, int | None]:
    """(uid, pid) of the process at the other end of a Unix socket; None for what the OS can't tell.

    For a connected client this is the process that called listen() on the socket.
    """
    if hasattr(_socket, "SO_PEERCRED"):  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        return int.from_bytes(creds[4:8], sys.byteorder), int.from_bytes(creds[0:4], sys.byteorder, signed=True)
    if sys.platform == "darwin":  # getpeereid(): struct xucred {u_int cr_version; uid_t cr_uid; ...}
        sol_local, local_peercred, local_peerpid = 0, 0x001, 0x002
        try:
            uid = int.from_bytes(sock.getsockopt(sol_local, local_peercred, 76)[4:8], sys.byteorder)
        except OSError:
            return None, None
        try:
            pid: int | None = int.from_bytes(sock.getsockopt(sol_local, local_peerpid, 4)[:4], sys.byteorder)
        except OSError:
            pid = None
        return uid, pid
    return None, None  # elsewhere the 0700 socket directory is the only guard


def peer_uid(sock: Any) -> int | None:
    """The uid of the process at the other end of a Unix socket, or None if the OS can't tell us."""
    return peer_credentials(sock)[0]
