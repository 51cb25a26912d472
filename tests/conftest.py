"""Shared pytest fixtures (kept generic: anything test-file specific lives in that file)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import fake_backend


def processes_with_home(home: Path) -> list[int]:
    """Pids of processes whose environment has NL2CMD_HOME=`home` (Linux /proc; [] elsewhere)."""
    needle = f"NL2CMD_HOME={home}".encode()
    pids = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return pids


def daemon_pids(home: Path) -> list[int]:
    """Pids of live nl2cmd daemons started with NL2CMD_HOME=`home`."""
    out = []
    for pid in processes_with_home(home):
        with contextlib.suppress(OSError):
            if b"tinyllm.serve.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
    return out


def pid_alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie (reaping it if it is our child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited; True if it did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_home_processes(home: Path) -> None:
    """Stop every process a test started for `home`: anything in /proc with that NL2CMD_HOME, else the pid file's."""
    pids = set(processes_with_home(home))
    if not Path("/proc").is_dir():  # no /proc: trust the pid file (a private temp dir: it is ours)
        with contextlib.suppress(OSError, ValueError):
            pids.add(int((home / "run" / "nl2cmd.pid").read_text().split()[0]))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_gone(pid, 3.0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 2.0)


@pytest.fixture
def nl2cmd_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private, short NL2CMD_HOME (AF_UNIX paths are limited to ~107 bytes) with the fake backend.

    Any daemon or other process started with this home is stopped at teardown.
    """
    home = Path(tempfile.mkdtemp(prefix="n2c", dir="/tmp"))
    monkeypatch.setenv("NL2CMD_HOME", str(home))
    for key, value in fake_backend.environment(dict(os.environ)).items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("NL2CMD_DEBUG", raising=False)
    try:
        yield home
    finally:
        kill_home_processes(home)
        shutil.rmtree(home, ignore_errors=True)
