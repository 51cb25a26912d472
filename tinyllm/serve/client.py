"""Thin client for the nl2cmd daemon: connect, start it on demand, ask, stop.

This module is on the fast path of every ``nl2cmd "..."``: standard library only, and it must
never import numpy/torch (tests check). `subprocess` is imported only when a daemon is spawned.

Start-up protocol (exactly one daemon, whatever the races):

1. ping the socket; a compatible daemon => use it (an incompatible one is asked to shut down);
2. otherwise take an flock on ``nl2cmd.lock`` and ping again (another client may have won);
3. the pid file is the authority: a live daemon pid => wait for it (it is loading the model or
   re-creating a deleted socket); a dead one => remove the stale pid file and socket;
4. spawn ``python -m tinyllm.serve.daemon --no-lock`` detached, poll ping until ready, child exit, or timeout;
5. release the lock.
"""

from __future__ import annotations

import _socket  # not `socket`: its enum set-up costs ~3 ms of every `nl2cmd` call, and a request needs none of it
import os
import sys
import time

from tinyllm import __version__
from tinyllm.formats.paths import HOME_ENV, StateDirError, StatePaths, ensure_dir

from .process import (
    DAEMON_MODULE,
    EXIT_MODEL,
    EXIT_RUNNING,
    LockTimeout,
    backend_name,
    file_lock,
    is_daemon_process,
    pid_alive,
    read_pid,
    wait_exit,
)
from .protocol import (
    MAX_REPLY_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    check_suggest_reply,
    encode_request,
    parse_reply,
)

# typing is not imported at run time: it costs ~3 ms of the thin client's start-up (every
# `nl2cmd` call); annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from tinyllm.formats.paths import Locations

CONNECT_TIMEOUT = 1.0
PING_TIMEOUT = 2.0
STOP_TIMEOUT = 5.0
MAX_LOG_BYTES = 1024 * 1024



class ClientError(Exception):
    """Base class of client failures; the message is one human-readable line."""


class DaemonUnavailable(ClientError):
    """No daemon could be reached or started; the caller may generate in-process instead."""


class DaemonStartFatal(ClientError):
    """The daemon failed to load the model: generating in-process would fail the same way."""


class RemoteError(ClientError):
    """The daemon answered with an error (bad instruction, generation failure)."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class RequestTimeout(ClientError):
    """The daemon accepted the request but did not answer in time."""


class ConnectFailed(ClientError):
    """Nothing is listening on the socket (missing, refused, or connect timed out)."""


class ConnectionLost(ClientError):
    """The connection dropped or the reply was garbage (daemon killed mid-request)."""


# ---------------------------------------------------------------------------------------------- requests


def _read_line(sock: Any, limit: int) -> bytes:
    """One newline-terminated reply of at most `limit` bytes (what was read, at EOF); ProtocolError
    (code too_large) beyond the limit. The same contract as protocol.read_message, on a raw socket."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
        end = buf.find(b"\n")
        if end >= 0:
            buf = buf[: end + 1]
        if len(buf) > limit:
            raise ProtocolError(f"message too large (over {limit} bytes)", code="too_large")
        if end >= 0:
            return buf


def request(sock_path: str | Path, payload: bytes, read_timeout: float,
            connect_timeout: float = CONNECT_TIMEOUT) -> dict:
    """Send one request line and return the parsed reply (ok or not)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(str(sock_path))
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {sock_path}: {exc.strerror or exc}") from None
        sock.settimeout(read_timeout)
        try:
            sock.sendall(payload)
            line = _read_line(sock, MAX_REPLY_BYTES)
        except TimeoutError:
            raise RequestTimeout(f"daemon did not answer within {read_timeout:g} s") from None
        except OSError as exc:
            raise ConnectionLost(f"connection to daemon lost: {exc.strerror or exc}") from None
        except ProtocolError as exc:
            raise ConnectionLost(f"bad reply from daemon: {exc}") from None
        if not line:
            raise ConnectionLost("daemon closed the connection without answering")
        try:
            return parse_reply(line)
        except ProtocolError as exc:
            raise ConnectionLost(f"bad reply from daemon: {exc}") from None
    finally:
        sock.close()


def ping(paths: StatePaths, timeout: float = PING_TIMEOUT) -> dict | None:
    """The daemon's ping reply (version, protocol, pid, model, stats), or None if none answers."""
    try:
        reply = request(paths.socket, encode_request("ping"), timeout, min(timeout, CONNECT_TIMEOUT))
    except ClientError:
        return None
    return reply if reply.get("ok") else None


def incompatibility(info: dict[str, Any], model: str | None) -> str | None:
    """Why a running daemon cannot serve this client (None if it can)."""
    if info.get("protocol", info.get("v")) != PROTOCOL_VERSION:
        return f"protocol {info.get('protocol', info.get('v'))} != {PROTOCOL_VERSION}"
    if info.get("version") != __version__:
        return f"version {info.get('version')} != {__version__}"
    if info.get("backend") != backend_name():
        return f"backend {info.get('backend')} != {backend_name()}"
    wanted = os.path.realpath(model) if model else None
    have = info.get("model_arg")
    if (os.path.realpath(have) if isinstance(have, str) else None) != wanted:
        return f"model {have or 'default'} != {wanted or 'default'}"
    return None


# ---------------------------------------------------------------------------------------------- lifecycle


def _log_tail(path: Path) -> str:
    """The daemon's last error line (or last line) from its log, for error messages."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "error:" in ln]
    return (errors or lines or [""])[-1][:300]


def _rotate_log(path: Path) -> None:
    """Keep the log bounded: move a large log aside (one old generation kept)."""
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError:
        pass


def spawn(paths: StatePaths, model: str | None, idle_timeout: float) -> Any:
    """Start ``python -m tinyllm.serve.daemon`` detached (new session, output to the log). Returns the Popen."""
    import subprocess
    from pathlib import Path

    ensure_dir(paths.state_dir)
    _rotate_log(paths.log)
    cmd = [sys.executable, "-m", DAEMON_MODULE, "--no-lock", "--idle-timeout", repr(float(idle_timeout))]
    if model:
        cmd += ["--model", os.path.abspath(model)]
    env = os.environ.copy()
    # The daemon runs in / (so it pins no directory): make a relative NL2CMD_HOME mean the same there.
    if env.get(HOME_ENV, "").strip():
        env[HOME_ENV] = str(Path(env[HOME_ENV].strip()).expanduser().absolute())
    # Run the same code as this client even when it is not installed.
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p)
    # The log holds users' instructions: private.
    log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with open(log_fd, "ab") as log:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, cwd="/", env=env,
        )


def _wait_ready(paths: StatePaths, deadline: float, proc: Any = None, pid: int | None = None) -> dict:
    """Poll ping until the daemon answers; fail early if the spawned process exits."""
    delay = 0.01
    while True:
        info = ping(paths, timeout=1.0)
        if info is not None:
            return info
        if proc is not None and proc.poll() is not None:
            rc = proc.returncode
            why = _log_tail(paths.log) or f"exit status {rc}"
            if rc == EXIT_MODEL:
                why = why.split("error:", 1)[-1].strip()
                raise DaemonStartFatal(why.removeprefix("cannot load the model:").strip())
            if rc == EXIT_RUNNING:
                proc, pid = None, read_pid(paths.pid)  # lost a race after all: wait for the winner
                continue
            raise DaemonUnavailable(f"daemon exited during start-up ({why})")
        if proc is None and pid is not None and not pid_alive(pid):
            raise DaemonUnavailable(f"daemon (pid {pid}) exited during start-up ({_log_tail(paths.log)})")
        if time.monotonic() >= deadline:
            raise DaemonUnavailable(f"daemon did not answer within the start timeout (log: {paths.log})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def _remove_stale(paths: StatePaths) -> None:
    """Remove the pid file and socket of a daemon that is gone (caller holds the start-up lock)."""
    pid = read_pid(paths.pid)
    if pid is None or not pid_alive(pid) or not is_daemon_process(pid):
        paths.pid.unlink(missing_ok=True)
        paths.socket.unlink(missing_ok=True)


def ensure_daemon(
    paths: StatePaths, model: str | None = None, idle_timeout: float = 900.0, start_timeout: float = 15.0
) -> dict:
    """Return the ping info of a compatible running daemon, starting one if needed.

    Raises DaemonUnavailable (fall back in-process) or DaemonStartFatal (model cannot load).
    """
    info = ping(paths)
    if info is not None:
        if incompatibility(info, model) is None:
            return info
        _stop_for_restart(paths, info)
    try:
        ensure_dir(paths.runtime_dir, private=True)
    except StateDirError as exc:
        raise DaemonUnavailable(str(exc)) from None
    except OSError as exc:  # permission denied, read-only file system, ...
        raise DaemonUnavailable(f"cannot create {paths.runtime_dir}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + start_timeout
    try:
        with file_lock(paths.lock, start_timeout):
            return _start_locked(paths, model, idle_timeout, deadline)
    except LockTimeout as exc:
        raise DaemonUnavailable(str(exc)) from None
    except OSError as exc:  # lock file, log file or exec failed
        raise DaemonUnavailable(f"cannot start the daemon: {exc.strerror or exc}") from None


def _start_locked(paths: StatePaths, model: str | None, idle_timeout: float, deadline: float) -> dict:
    """ensure_daemon's part under the start-up lock."""
    info = ping(paths)
    if info is not None and incompatibility(info, model) is not None:
        _stop_for_restart(paths, info)  # an incompatible one started between our two pings
        info = None
    if info is not None:
        return info
    pid = read_pid(paths.pid)
    if pid is not None and pid != os.getpid() and pid_alive(pid) and is_daemon_process(pid):
        # Alive but not answering: still loading its model, or re-creating a deleted socket.
        info = _wait_ready(paths, deadline, pid=pid)
        if incompatibility(info, model) is None:
            return info
        _stop_for_restart(paths, info)
    _remove_stale(paths)
    proc = spawn(paths, model, idle_timeout)
    return _wait_ready(paths, deadline, proc=proc)


def _stop_for_restart(paths: StatePaths, info: dict) -> None:
    """Stop an incompatible daemon; failing that, the caller falls back in-process."""
    try:
        stop_daemon(paths, info=info)
    except (DaemonUnavailable, DaemonStartFatal):
        raise
    except ClientError as exc:
        raise DaemonUnavailable(f"cannot replace the running daemon: {exc}") from None


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_daemon(paths: StatePaths, timeout: float | None = None, info: dict | None = None) -> int | None:
    """Stop the running daemon (shutdown request, then SIGTERM, then SIGKILL). Returns its pid, or None.

    `timeout` (default STOP_TIMEOUT) is how long each step waits for the process to exit.
    """
    timeout = STOP_TIMEOUT if timeout is None else timeout
    info = info if info is not None else ping(paths)
    file_pid = read_pid(paths.pid)
    pid: int | None = None
    if info is not None and isinstance(info.get("pid"), int) and not isinstance(info.get("pid"), bool):
        pid = info["pid"]
        try:
            request(paths.socket, encode_request("shutdown"), PING_TIMEOUT)
        except ClientError:
            pass
        if wait_exit(pid, timeout):
            _cleanup_after(paths, pid)
            return pid
        # Only signal a pid two sources agree on (or that looks like our daemon).
        if pid != file_pid and not is_daemon_process(pid):
            raise ClientError(f"daemon (pid {pid}) did not shut down")
    elif file_pid is not None and file_pid != os.getpid() and pid_alive(file_pid) and is_daemon_process(file_pid):
        pid = file_pid
    if pid is None:
        return None
    import signal

    _signal(pid, signal.SIGTERM)
    if not wait_exit(pid, timeout):
        _signal(pid, signal.SIGKILL)
        if not wait_exit(pid, 2.0):
            raise ClientError(f"daemon (pid {pid}) did not exit")
    _cleanup_after(paths, pid)
    return pid


def _cleanup_after(paths: StatePaths, pid: int) -> None:
    """After `pid` died: remove its pid file and socket if they are still there (SIGKILL leaves them)."""
    if read_pid(paths.pid) == pid:
        paths.pid.unlink(missing_ok=True)
        if ping(paths, timeout=0.5) is None:
            paths.socket.unlink(missing_ok=True)


def suggest(
    paths: StatePaths | Locations,
    instruction: str,
    platform: str = "linux",
    n: int = 1,
    model: str | None = None,
    idle_timeout: float = 900.0,
    start_timeout: float = 15.0,
    timeout: float = 30.0,
) -> dict:
    """Ask the daemon (started on demand) for a suggestion.

    The request goes straight to the socket, and the reply names the daemon that answered it, so
    the usual case is one round trip. When nothing answers, or an incompatible daemon did (another
    version, backend or model), a compatible daemon is made ready (ensure_daemon) and the request
    sent again; a connection that drops mid-request gets one more such retry.
    Returns the checked reply dict (command, alternatives, warnings, source, timing_ms).
    """
    payload = encode_request("suggest", instruction=instruction, platform=platform, n=n)
    last: ClientError | None = None
    for attempt in range(3):
        if attempt:
            ensure_daemon(paths.paths(), model, idle_timeout, start_timeout)
        try:
            reply = request(paths.socket, payload, timeout)
        except (ConnectFailed, ConnectionLost) as exc:
            last = exc  # no daemon yet, or it died or vanished mid-request
            continue
        if not reply["ok"]:
            if reply.get("code") == "version" or not attempt:
                # from a daemon not vetted yet, an error may only mean that it is another version
                last = ConnectionLost(reply["error"])
                continue
            raise RemoteError(reply["error"], str(reply.get("code", "error")))
        daemon = reply.get("daemon")
        why = incompatibility(daemon if isinstance(daemon, dict) else {}, model)
        if why is not None:
            last = ConnectionLost(f"incompatible daemon ({why})")  # ensure_daemon replaces it
            continue
        try:
            return check_suggest_reply(reply)
        except ProtocolError as exc:
            raise DaemonUnavailable(f"bad reply from daemon: {exc}") from None
    raise DaemonUnavailable(str(last))
