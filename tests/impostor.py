"""A listener of another user on a daemon's socket path: the hostile local user's test double.

Used by tests/test_security.py and bench/faults.py (which puts the repository root on sys.path, as it
does for tests/fake_backend.py). Acting as another user needs root: the child binds the socket as
root, so that it may live in any directory whoever may traverse it, then drops to the other uid and
listens; SO_PEERCRED reports the uid of the process that called listen(). The child makes only
system calls after the switch: the interpreter may sit in a directory that uid cannot read.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

OTHER_UID = 65534
"""The other user: nobody."""


class Impostor:
    """A listener on `path` run by uid `uid` (a forked child), answering `reply` to every connection;
    `received()` is every byte any client sent it. A context manager, or `start()` and `stop()`."""

    def __init__(self, path: str | Path, reply: bytes, uid: int = OTHER_UID) -> None:
        self.path, self.reply, self.uid = str(path), reply, uid
        self.pid = 0
        self._data_r = -1

    def start(self) -> Impostor:
        """Fork the listener and return once it listens (RuntimeError if it could not)."""
        ready_r, ready_w = os.pipe()
        self._data_r, data_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: system calls only, then _exit
            status = 1
            try:
                os.close(ready_r)
                os.close(self._data_r)
                srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                srv.bind(self.path)
                os.setgroups([])
                os.setgid(self.uid)
                os.setuid(self.uid)
                srv.listen(16)
                os.write(ready_w, b"r")
                while True:
                    conn, _ = srv.accept()
                    conn.settimeout(2.0)
                    with contextlib.suppress(OSError):
                        data = conn.recv(65536)
                        if data:
                            os.write(data_w, data)
                            conn.sendall(self.reply)
                    conn.close()
            except BaseException:
                status = 2
            finally:
                os._exit(status)
        os.close(ready_w)
        os.close(data_w)
        try:
            ready = os.read(ready_r, 1)
        finally:
            os.close(ready_r)
        if ready != b"r":
            self.stop()
            raise RuntimeError(f"the impostor did not start listening on {self.path}")
        os.set_blocking(self._data_r, False)
        return self

    def received(self) -> bytes:
        """Every byte sent to the listener so far."""
        chunks = []
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._data_r, 65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def stop(self) -> None:
        """Kill the listener and wait for it; idempotent."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, 9)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0
        if self._data_r >= 0:
            os.close(self._data_r)
            self._data_r = -1

    def __enter__(self) -> Impostor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
