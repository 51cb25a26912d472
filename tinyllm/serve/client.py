"""Thin client for the nl2cmd daemon: connect, start it on demand, ask, stop.

This module is on the fast path of every ``nl2cmd "..."``: standard library only, and it must
never import numpy/torch (tests check). `subprocess` is imported only when a daemon is spawned.

Start-up protocol (exactly one daemon, whatever the races):

1. ping the socket; a compatible daemon => use it (an incompatible one is asked to shut down);
2. otherwise take an flock on ``nl2cmd.lock`` and ping again (another client may have won);
3. the pid file is the authority: a live daemon pid => wait for it (it is loading the model or
   re-creating a deleted socket); a dead one => remove the stale pid file and socket;
4. spawn ``python -m tinyllm.serve.daemon --no-lock --socket PATH`` detached, poll ping until ready, child
   exit, or timeout;
5. release the lock.

Trust: before connecting, the socket's directory must be a real directory of this user with mode
0700 (`formats.paths.check_private_dir`); after connecting, the process listening must run as this user
(SO_PEERCRED, LOCAL_PEERCRED on macOS). Otherwise nothing is sent (UnsafeSocket). A pid is only
signalled when the daemon answered on this socket or its command line names this socket.
"""

from __future__ import annotations

import _socket  # not `socket`: its enum set-up costs ~3 ms of every `nl2cmd` call, and a request needs none of it
import os
import sys
import time

from tinyllm import __version__
from tinyllm.formats.paths import HOME_ENV, StateDirError, StatePaths, check_private_dir, ensure_dir

from .process import (
    DAEMON_MODULE,
    EXIT_MODEL,
    EXIT_RUNNING,
    LockTimeout,
    backend_name,
    file_lock,
    is_daemon_process,
    peer_credentials,
    pid_alive,
    process_stopped,
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
NO_ANSWER_TIMEOUT = 3.0
"""Longest wait on a daemon that accepted a request but shows no sign of working on it (stopped with
SIGSTOP, wedged, or swamped with connections); the client then generates in-process."""
BUSY_RETRY = 0.05
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


class UnsafeSocket(ClientError):
    """The socket's directory, or the process listening on the socket, is not this user's own:
    nothing was sent to it."""


class NoAnswer(ClientError):
    """The daemon accepted the connection but did not acknowledge the request in time."""


# ---------------------------------------------------------------------------------------------- requests


def _connect(sock_path: str | Path, connect_timeout: float) -> tuple[Any, int | None]:
    """A socket connected to `sock_path` and the listening process's pid (None if unknown).

    Before connecting: the directory must be this user's private one (UnsafeSocket otherwise, and
    nothing is attempted). After: the listener must run as this user, else the connection is
    closed before a byte is sent.
    """
    directory = os.path.dirname(str(sock_path)) or "."
    try:
        check_private_dir(directory)
    except StateDirError as exc:
        raise UnsafeSocket(f"not using {sock_path}: {exc}") from None
    except OSError as exc:  # missing directory: no daemon yet
        raise ConnectFailed(f"cannot connect to {sock_path}: {exc.strerror or exc}") from None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(str(sock_path))
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {sock_path}: {exc.strerror or exc}") from None
        try:
            uid, pid = peer_credentials(sock)
        except OSError:
            uid, pid = None, None
        if uid is not None and uid != os.getuid():
            raise UnsafeSocket(f"not using {sock_path}: the process listening on it runs as uid {uid}, "
                               f"not as you (uid {os.getuid()})")
        return sock, pid
    except BaseException:
        sock.close()
        raise


def _read_reply(sock: Any, limit: int, timeout: float, ack_timeout: float | None) -> bytes:
    """One newline-terminated reply of at most `limit` bytes (what was read, at EOF); ProtocolError
    (code too_large) beyond the limit. The same contract as protocol.read_message, on a raw socket.

    With `ack_timeout`, the daemon must show within that many seconds that it read the request
    (the empty line it sends first, or the reply itself), else NoAnswer; the whole reply must come
    within `timeout` seconds, else RequestTimeout.
    """
    start = time.monotonic()
    deadline = start + timeout
    ack_by = None if ack_timeout is None else start + min(ack_timeout, timeout)
    buf = b""
    while True:
        remaining = (deadline if ack_by is None else ack_by) - time.monotonic()
        if remaining <= 0:
            if ack_by is not None:
                raise NoAnswer(f"the daemon accepted the request but did not answer within "
                               f"{min(ack_timeout or 0.0, timeout):g} s")
            raise RequestTimeout(f"daemon did not answer within {timeout:g} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # the check above says which deadline passed
        if not chunk:
            return buf
        ack_by = None  # the daemon is working on it
        if not buf:
            chunk = chunk.lstrip(b"\n")  # the acknowledgement: an empty line before the reply
            if not chunk:
                continue
        buf += chunk
        end = buf.find(b"\n")
        if end >= 0:
            buf = buf[: end + 1]
        if len(buf) > limit:
            raise ProtocolError(f"message too large (over {limit} bytes)", code="too_large")
        if end >= 0:
            return buf


def _exchange(sock_path: str | Path, payload: bytes, read_timeout: float,
              connect_timeout: float = CONNECT_TIMEOUT, ack_timeout: float | None = None) -> tuple[dict, int | None]:
    """Send one request line; return the parsed reply (ok or not) and the listener's pid (or None)."""
    sock, pid = _connect(sock_path, connect_timeout)
    try:
        sock.settimeout(read_timeout)
        try:
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                # Closed on us before we spoke: a daemon with no free connection slot does that
                # after saying "busy", and that reply may still be waiting to be read.
                ack_timeout = None
            line = _read_reply(sock, MAX_REPLY_BYTES, read_timeout, ack_timeout)
        except TimeoutError:
            raise RequestTimeout(f"daemon did not answer within {read_timeout:g} s") from None
        except OSError as exc:
            raise ConnectionLost(f"connection to daemon lost: {exc.strerror or exc}") from None
        except ProtocolError as exc:
            raise ConnectionLost(f"bad reply from daemon: {exc}") from None
        if not line:
            raise ConnectionLost("daemon closed the connection without answering")
        try:
            return parse_reply(line), pid
        except ProtocolError as exc:
            raise ConnectionLost(f"bad reply from daemon: {exc}") from None
    finally:
        sock.close()


def request(sock_path: str | Path, payload: bytes, read_timeout: float,
            connect_timeout: float = CONNECT_TIMEOUT, ack_timeout: float | None = None) -> dict:
    """Send one request line and return the parsed reply (ok or not); see _connect for the checks."""
    return _exchange(sock_path, payload, read_timeout, connect_timeout, ack_timeout)[0]


def probe(paths: StatePaths, timeout: float = PING_TIMEOUT) -> dict | None:
    """The daemon's ping reply (version, protocol, pid, model, stats, and ``peer_pid``: the pid the
    kernel names as the socket's listener, None if unknown), or None if none answers. Raises
    UnsafeSocket when the socket's directory or its listener is not this user's own."""
    try:
        reply, pid = _exchange(paths.socket, encode_request("ping"), timeout, min(timeout, CONNECT_TIMEOUT))
    except UnsafeSocket:
        raise
    except ClientError:
        return None
    if not reply.get("ok"):
        return None
    reply["peer_pid"] = pid
    return reply


def listener(paths: StatePaths) -> tuple[bool, int | None]:
    """(True, its pid or None) if a process of this user listens on the socket, whether or not it
    answers (busy, stopped, wedged); (False, None) if nothing of ours does. Sends nothing."""
    try:
        sock, pid = _connect(paths.socket, CONNECT_TIMEOUT)
    except ClientError:
        return False, None
    sock.close()
    return True, pid


def ping(paths: StatePaths, timeout: float = PING_TIMEOUT) -> dict | None:
    """The daemon's ping reply (see probe), or None if none answers or it is not to be trusted."""
    try:
        return probe(paths, timeout)
    except UnsafeSocket:
        return None


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


def spawn(paths: StatePaths, model: str | None, idle_timeout: float, replace: bool = False) -> Any:
    """Start ``python -m tinyllm.serve.daemon`` detached (new session, output to the log). Returns the Popen.

    `replace`: the new daemon loads its model first and only then takes the socket over from the
    running one, which then exits by itself; a model that fails to load leaves it serving.
    """
    import subprocess
    from pathlib import Path

    ensure_dir(paths.state_dir, private=True)
    _rotate_log(paths.log)
    cmd = [sys.executable, "-m", DAEMON_MODULE, "--no-lock", "--idle-timeout", repr(float(idle_timeout)),
           "--socket", str(paths.socket)]
    if model:
        cmd += ["--model", os.path.abspath(model)]
    if replace:
        cmd.append("--replace")
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


def _wait_ready(paths: StatePaths, deadline: float, proc: Any = None, pid: int | None = None,
                existing: bool = False) -> dict:
    """Poll ping until the daemon answers (the spawned `proc` itself, when given); fail early if the
    spawned process exits, or if the `existing` daemon (`pid`, when known) exits or stops."""
    delay = 0.01
    while True:
        info = ping(paths, timeout=1.0)
        if info is not None and (proc is None or info.get("pid") == proc.pid):
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
        if proc is None and pid is not None:
            if not pid_alive(pid):
                raise DaemonUnavailable(f"daemon (pid {pid}) exited during start-up ({_log_tail(paths.log)})")
            if process_stopped(pid):
                raise DaemonUnavailable(f"daemon (pid {pid}) is stopped")
        if time.monotonic() >= deadline:
            if existing:
                raise DaemonUnavailable(f"daemon (pid {pid or '?'}) is busy or not answering (log: {paths.log})")
            raise DaemonUnavailable(f"daemon did not answer within the start timeout (log: {paths.log})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def _remove_stale(paths: StatePaths) -> None:
    """Remove the pid file and socket of a daemon that is gone (caller holds the start-up lock)."""
    pid = read_pid(paths.pid)
    if pid is None or not pid_alive(pid) or not is_daemon_process(pid, paths.socket):
        paths.pid.unlink(missing_ok=True)
        paths.socket.unlink(missing_ok=True)


def _same_build(info: dict[str, Any]) -> bool:
    """True if a daemon runs this very version, protocol and backend (it may serve another model)."""
    return (info.get("protocol", info.get("v")) == PROTOCOL_VERSION and info.get("version") == __version__
            and info.get("backend") == backend_name())


def _private_runtime_dir(paths: StatePaths) -> None:
    """Create the socket directory (0700) or say, as DaemonUnavailable, why it cannot be used."""
    try:
        ensure_dir(paths.runtime_dir, private=True)
    except StateDirError as exc:
        raise DaemonUnavailable(f"unsafe socket directory: {exc}") from None
    except OSError as exc:  # permission denied, read-only file system, ...
        raise DaemonUnavailable(f"cannot create {paths.runtime_dir}: {exc.strerror or exc}") from None


def ensure_daemon(
    paths: StatePaths, model: str | None = None, idle_timeout: float = 900.0, start_timeout: float = 15.0
) -> dict:
    """Return the ping info of a compatible running daemon, starting one if needed.

    A running daemon of this version that serves another model is replaced only once the new one
    has loaded its model. Raises DaemonUnavailable (fall back in-process) or DaemonStartFatal
    (model cannot load).
    """
    info = ping(paths)
    if info is not None and incompatibility(info, model) is None:
        return info
    _private_runtime_dir(paths)
    deadline = time.monotonic() + start_timeout
    try:
        with file_lock(paths.lock, start_timeout):
            return _start_locked(paths, model, idle_timeout, deadline)
    except LockTimeout as exc:
        raise DaemonUnavailable(str(exc)) from None
    except OSError as exc:  # lock file, log file or exec failed
        raise DaemonUnavailable(f"cannot start the daemon: {exc.strerror or exc}") from None


def _start_locked(paths: StatePaths, model: str | None, idle_timeout: float, deadline: float,
                  restart: bool = False) -> dict:
    """ensure_daemon's part under the start-up lock (`restart`: a fresh daemon even if one is compatible)."""
    info = ping(paths)
    if info is None:
        # Alive but not answering: busy, stopped, still loading its model, or re-creating a deleted
        # socket. Never replaced while it lives, and not waited on for the whole start timeout
        # either: a daemon that does not answer within seconds is wedged.
        listening, pid = listener(paths)
        if not listening:
            pid = read_pid(paths.pid)
            if pid is None or pid == os.getpid() or not pid_alive(pid) or not is_daemon_process(pid, paths.socket):
                pid = None
        if listening or pid is not None:
            info = _wait_ready(paths, min(deadline, time.monotonic() + NO_ANSWER_TIMEOUT), pid=pid, existing=True)
    if info is not None:
        if incompatibility(info, model) is None and not restart:
            return info
        if _same_build(info):
            proc = spawn(paths, model, idle_timeout, replace=True)
            return _wait_ready(paths, deadline, proc=proc)
        _stop_for_restart(paths, info)
    _remove_stale(paths)
    proc = spawn(paths, model, idle_timeout)
    return _wait_ready(paths, deadline, proc=proc)


def restart_daemon(
    paths: StatePaths, model: str | None = None, idle_timeout: float = 900.0, start_timeout: float = 15.0
) -> tuple[int | None, dict]:
    """Start a fresh daemon: (pid of the one it replaces or None, ping info of the new one). The old
    one keeps serving until the new one has loaded its model, and exits by itself then."""
    old = ping(paths)
    _private_runtime_dir(paths)
    deadline = time.monotonic() + start_timeout
    try:
        with file_lock(paths.lock, start_timeout):
            return (old or {}).get("pid"), _start_locked(paths, model, idle_timeout, deadline, restart=True)
    except LockTimeout as exc:
        raise DaemonUnavailable(str(exc)) from None
    except OSError as exc:
        raise DaemonUnavailable(f"cannot start the daemon: {exc.strerror or exc}") from None


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

    `timeout` (default STOP_TIMEOUT) is how long each step waits for the process to exit. Only the
    daemon of this socket is signalled: the one that answered on it (the kernel names the
    listener's pid), or the pid file's when its command line names this socket. UnsafeSocket when
    the socket's directory or listener is not this user's own.
    """
    timeout = STOP_TIMEOUT if timeout is None else timeout
    try:
        check_private_dir(paths.runtime_dir)
    except FileNotFoundError:
        return None  # never created: nothing runs
    except StateDirError as exc:
        raise UnsafeSocket(f"not using {paths.socket}: {exc}") from None
    except OSError as exc:
        raise ClientError(f"cannot inspect {paths.runtime_dir}: {exc.strerror or exc}") from None
    info = info if info is not None else probe(paths)
    file_pid = read_pid(paths.pid)
    pid: int | None = None
    if info is not None and isinstance(info.get("pid"), int) and not isinstance(info.get("pid"), bool):
        peer = info.get("peer_pid")
        listener = peer if isinstance(peer, int) and not isinstance(peer, bool) and peer > 0 else None
        pid = listener or info["pid"]
        try:
            request(paths.socket, encode_request("shutdown"), PING_TIMEOUT)
        except ClientError:
            pass
        if wait_exit(pid, timeout):
            _cleanup_after(paths, pid)
            return pid
        # Only signal the socket's listener, or a pid two sources agree on, or one started for this socket.
        if listener is None and pid != file_pid and not is_daemon_process(pid, paths.socket):
            raise ClientError(f"daemon (pid {pid}) did not shut down")
    elif (file_pid is not None and file_pid != os.getpid() and pid_alive(file_pid)
          and is_daemon_process(file_pid, paths.socket)):
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
    sent again; a connection that drops mid-request gets one more such retry. A daemon that takes
    the request but does not acknowledge it within NO_ANSWER_TIMEOUT seconds (stopped, wedged), or
    stays busy that long, is given up on: DaemonUnavailable, and the caller generates in-process.
    Returns the checked reply dict (command, alternatives, warnings, source, timing_ms).
    """
    payload = encode_request("suggest", instruction=instruction, platform=platform, n=n, ack=True)
    patience = min(NO_ANSWER_TIMEOUT, timeout)
    last: ClientError | None = None
    starts = 0
    busy_since: float | None = None
    while True:
        try:
            reply = request(paths.socket, payload, timeout, ack_timeout=patience)
        except NoAnswer as exc:
            raise DaemonUnavailable(str(exc)) from None
        except (ConnectFailed, ConnectionLost, UnsafeSocket) as exc:
            last = exc  # no daemon yet, it died or vanished mid-request, or it is not ours to use
            if busy_since is not None and isinstance(exc, ConnectionLost):  # a busy daemon hung up on us
                if time.monotonic() - busy_since >= patience:
                    raise DaemonUnavailable(f"daemon busy for {patience:g} s") from None
                time.sleep(BUSY_RETRY)
                continue
        else:
            if reply["ok"]:
                daemon = reply.get("daemon")
                why = incompatibility(daemon if isinstance(daemon, dict) else {}, model)
                if why is None:
                    try:
                        return check_suggest_reply(reply)
                    except ProtocolError as exc:
                        raise DaemonUnavailable(f"bad reply from daemon: {exc}") from None
                last = ConnectionLost(f"incompatible daemon ({why})")  # ensure_daemon replaces it
            elif reply.get("code") == "busy":  # every connection slot taken: wait a little, not for ever
                busy_since = busy_since if busy_since is not None else time.monotonic()
                if time.monotonic() - busy_since >= patience:
                    raise DaemonUnavailable(f"daemon busy for {patience:g} s ({reply['error']})")
                time.sleep(BUSY_RETRY)
                continue
            elif reply.get("code") == "version" or not starts:
                # from a daemon not vetted yet, an error may only mean that it is another version
                last = ConnectionLost(reply["error"])
            else:
                raise RemoteError(reply["error"], str(reply.get("code", "error")))
        if starts == 2:
            raise DaemonUnavailable(str(last))
        starts += 1
        ensure_daemon(paths.paths(), model, idle_timeout, start_timeout)
