"""The nl2cmd daemon: keeps the model loaded and answers suggestions over a Unix domain socket.

Run as ``python -m tinyllm.serve.daemon`` (spawned by tinyllm.serve.client, or ``nl2cmd daemon run``).

* Socket in the private runtime dir (0700), socket file 0600, peer uid checked (SO_PEERCRED /
  LOCAL_PEERCRED) against our own uid.
* Line-delimited JSON (tinyllm.serve.protocol); a thread per connection, a cap on concurrent connections
  (beyond it: a "busy" reply), and a deadline for each request line (a connection that sends
  nothing, or drips bytes, is closed after `read_timeout` seconds); a suggest request asking for it
  is acknowledged with an empty line at once; generation is serialised by a lock (the model isn't
  thread-safe).
* The pid file is the authority on which daemon owns the socket. The main loop periodically checks
  that our socket file still exists (re-creating it if someone deleted it) and that the pid file
  still names us (exiting if another daemon took over); it exits after `idle_timeout` idle seconds.
* Before each suggestion it reloads the model if the model file changed and the user pairs if
  their file changed. An unreadable pairs file is reported once (log, and a note in the next reply)
  and the model serves without the pairs. SIGTERM/SIGINT/a shutdown request => clean exit, socket
  and pid file removed.
* ``--replace``: load the model first, then take the pid file and socket over from a running daemon
  (which notices and exits): a model that fails to load never takes the working daemon down.

Top-level imports are standard library only; the backend (numpy) is imported when loading.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from tinyllm import __version__
from tinyllm.formats.paths import APP, StateDirError, StatePaths, ensure_dir, resolve
from tinyllm.knowledge.text import safe_line

from .client import ping
from .process import (
    EXIT_ERROR,
    EXIT_MODEL,
    EXIT_RUNNING,
    REAL_BACKEND,
    backend_name,
    file_lock,
    is_daemon_process,
    peer_uid,
    pid_alive,
    read_pid,
)
from .protocol import (
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    encode,
    error_reply,
    ok_reply,
    parse_request,
)

log = logging.getLogger("nl2cmd.daemon")

READ_TIMEOUT = 5.0
"""Seconds a connection may take to deliver each request line (counted from when the daemon starts
waiting for it, so a client dripping a byte at a time is closed too)."""
MAX_CONNECTIONS = 64
CHECK_INTERVAL = 1.0
MAX_IDLE_TIMEOUT = 7 * 24 * 3600.0


class BackendUnavailable(Exception):
    """The generation backend could not be imported."""


class AlreadyRunning(Exception):
    """Another daemon owns the socket / pid file."""


class ModelLoadError(Exception):
    """The model (or the backend) could not be loaded."""


def limit_heap_growth() -> bool:
    """Make glibc return large numpy buffers to the OS instead of keeping them in the heap.

    By default glibc raises its mmap threshold after the first large free, so later per-request
    arrays (logits, attention, beam caches) come from the heap, which fragments and grows: daemon RSS
    rose 41 MiB over 1,000 requests. A fixed 64 KiB threshold and two arenas keep it flat
    (bench/memory.py). Returns False where this is not glibc.
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them (no ldconfig lookup)
        m_mmap_threshold, m_arena_max = -3, -8  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 64 * 1024)) and bool(libc.mallopt(m_arena_max, 2))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False


def load_suggester(model_path: str | None = None, user_pairs_path: str | None = None) -> Any:
    """Load the configured backend: tinyllm.serve.suggest.Suggester, or the `Suggester` class of the module
    that NL2CMD_BACKEND names (a test double; see process.backend_name).

    Any failure is raised as ModelLoadError with a one-line message.
    """
    try:
        backend = backend_name()
        if backend != REAL_BACKEND:
            import importlib

            cls = importlib.import_module(backend).Suggester
        else:
            # The int8 C engine has its own thread pool (NL2CMD_THREADS). For the numpy fallback,
            # single-stream decoding is a chain of memory-bound matrix-vector products: a second BLAS
            # thread gains only ~20% on an idle 2-core machine (bench/decode.py) and competes with
            # whatever else the user runs. Only effective before numpy is first imported.
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, "1")
            limit_heap_growth()
            try:
                from .suggest import Suggester as cls
            except ImportError as exc:
                raise BackendUnavailable(f"model backend unavailable ({exc})") from exc
        return cls.load(model_path, user_pairs_path)
    except Exception as exc:  # CheckpointError, OSError, BackendUnavailable, ...
        raise ModelLoadError(safe_line(str(exc)) or type(exc).__name__) from exc


def suggestion_fields(s: Any) -> dict[str, Any]:
    """The reply fields of a Suggestion (real or fake), JSON-safe."""
    return {
        "command": str(s.command),
        "alternatives": [[str(c), float(score)] for c, score in s.alternatives],
        "warnings": [str(w) for w in s.warnings],
        "source": str(s.source),
        "timing_ms": float(s.timing_ms),
        "confidence": None if getattr(s, "confidence", None) is None else float(s.confidence),
        "notes": [str(n) for n in getattr(s, "notes", [])],
    }


def _file_signature(path: str | None) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode) of a file, None if missing: a change means reload."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Daemon:
    """One daemon instance; `run()` does start-up, the serve loop and clean-up."""

    def __init__(
        self,
        paths: StatePaths,
        model_path: str | None = None,
        idle_timeout: float = 900.0,
        read_timeout: float = READ_TIMEOUT,
        expected_uid: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.paths = paths
        self.model_arg = os.path.abspath(model_path) if model_path else None
        self.idle_timeout = float(idle_timeout)
        self.read_timeout = read_timeout
        self.expected_uid = os.getuid() if expected_uid is None else expected_uid
        self.check_interval = CHECK_INTERVAL
        if self.idle_timeout > 0:
            self.check_interval = max(0.05, min(CHECK_INTERVAL, self.idle_timeout / 4))
        self.suggester: Any = None
        self._gen_lock = threading.Lock()  # the model isn't thread-safe
        self._reload_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._listener: socket.socket | None = None
        self._sock_ino: int | None = None
        self._model_sig: tuple[int, int, int] | None = None
        self._pairs_sig: tuple[int, int, int] | None = None
        self._started = time.monotonic()
        self._last_activity = time.monotonic()
        self._active = 0
        self.requests = 0
        self.model_loads = 0
        self.pid = os.getpid()
        self._notes: list[str] = []  # said once, in the next suggest reply (e.g. unreadable pairs)

    # ------------------------------------------------------------------------------------- start-up

    def start(self, take_lock: bool = True, lock_timeout: float = 30.0, replace: bool = False) -> None:
        """Claim the pid file, load the model and bind the socket.

        `take_lock=False` when spawned by a client that already holds the start-up lock.
        `replace`: take over from a running daemon, but only once the model has loaded (the running
        one sees the pid file name us and exits, leaving our socket alone).
        Raises AlreadyRunning, ModelLoadError, StateDirError/OSError.
        """
        ensure_dir(self.paths.runtime_dir, private=True)
        ensure_dir(self.paths.state_dir, private=True)
        lock = file_lock(self.paths.lock, lock_timeout) if take_lock else contextlib.nullcontext()
        with lock:
            if take_lock and not replace:
                info = ping(self.paths, timeout=1.0)
                if info is not None:
                    raise AlreadyRunning(f"a daemon is already running (pid {info.get('pid')})")
            other = read_pid(self.paths.pid)
            if (not replace and other is not None and other != self.pid and pid_alive(other)
                    and is_daemon_process(other, self.paths.socket)):
                raise AlreadyRunning(f"a daemon is already running (pid {other})")
            if replace:
                self._load()  # before touching anything of the running daemon's
            self._write_pid()
            try:
                if not replace:
                    self._load()
                self._bind()
            except BaseException:
                self._remove_pid()
                raise
        log.info("serving on %s (pid %d, backend %s, model %s)", self.paths.socket, self.pid, backend_name(),
                 getattr(self.suggester, "model_path", "?"))

    def _write_pid(self) -> None:
        tmp = self.paths.pid.with_name(f".{self.paths.pid.name}.{self.pid}")
        tmp.write_text(f"{self.pid}\n", encoding="ascii")
        os.replace(tmp, self.paths.pid)

    def _remove_pid(self) -> None:
        if read_pid(self.paths.pid) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                self.paths.pid.unlink()

    def _load(self) -> None:
        """(Re)load the suggester; on success record the model and pairs file signatures."""
        pairs = str(self.paths.user_pairs)
        suggester = load_suggester(self.model_arg, pairs)
        model_sig = _file_signature(getattr(suggester, "model_path", None))
        pairs_sig = _file_signature(pairs)
        with self._gen_lock:
            self.suggester = suggester
            self._model_sig = model_sig
            self._pairs_sig = pairs_sig
            self._note_pairs_problem()
        with self._stats_lock:
            self.model_loads += 1

    def _note_pairs_problem(self) -> None:
        """Log an unreadable pairs file once per (re)load and tell the next client (caller holds _gen_lock)."""
        problem = getattr(self.suggester, "user_pairs_problem", None)
        if problem:
            log.warning("learnt pairs not used: %s", problem)
            self._notes = [f"learnt pairs not used: {safe_line(str(problem))}"]
        else:
            self._notes = []

    def _bind(self) -> None:
        """Create the listening socket (0600 from birth: umask while binding, chmod to be sure)."""
        path = str(self.paths.socket)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
        if self._listener is not None:
            self._listener.close()
        self._listener = sock
        self._sock_ino = os.stat(path).st_ino

    # ------------------------------------------------------------------------------------- serving

    def request_stop(self) -> None:
        """Ask the serve loop to exit (thread- and signal-safe)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

    def serve(self) -> None:
        """Accept connections until stopped, idle for too long, or superseded."""
        assert self._listener is not None, "start() first"
        next_check = time.monotonic() + self.check_interval
        try:
            while not self._stop.is_set():
                timeout = max(0.0, next_check - time.monotonic())
                try:
                    ready, _, _ = select.select([self._listener, self._wake_r], [], [], timeout)
                except InterruptedError:
                    continue
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                if self._listener in ready and not self._stop.is_set():
                    self._accept()
                if time.monotonic() >= next_check:
                    self._periodic()
                    next_check = time.monotonic() + self.check_interval
        finally:
            self._cleanup()

    def run(self, take_lock: bool = True, install_signals: bool = True, replace: bool = False) -> None:
        """start() then serve(); signal handlers only when called from the main thread."""
        if install_signals and threading.current_thread() is threading.main_thread():
            self._install_signals()
        self.start(take_lock=take_lock, replace=replace)
        self.serve()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:  # EMFILE etc.: don't spin, don't die
            log.warning("accept failed: %s", exc)
            time.sleep(0.05)
            return
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):  # read what the client sent, so it gets the answer, not a reset
                conn.setblocking(False)
                conn.recv(MAX_REQUEST_BYTES)
            self._send_quietly(conn, error_reply("daemon busy: too many connections", "busy"))
            conn.close()
            return
        with self._stats_lock:
            self._last_activity = time.monotonic()
        threading.Thread(target=self._serve_conn, args=(conn,), daemon=True, name="nl2cmd-conn").start()

    @staticmethod
    def _send_quietly(conn: socket.socket, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(1.0)
            conn.sendall(encode(reply))

    def _serve_conn(self, conn: socket.socket) -> None:
        """Serve request lines on one connection until EOF, an error, or a line's read deadline."""
        try:
            try:
                uid = peer_uid(conn)
            except OSError:
                uid = None
            if uid is not None and uid != self.expected_uid:
                log.warning("rejected connection from uid %d", uid)
                return
            buf = b""
            while not self._stop.is_set():
                try:
                    line, buf = self._read_line(conn, buf)
                except ProtocolError as exc:  # oversized: answer, then drop the connection
                    self._send_quietly(conn, error_reply(str(exc), exc.code))
                    return
                except OSError:  # timed out, reset
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                reply, close = self._handle_line(line, lambda: conn.sendall(b"\n"))
                try:
                    conn.sendall(encode(reply))
                except OSError:
                    return
                if close:
                    return
        except Exception:  # a bug in one connection must not take the daemon down
            log.exception("connection handler failed")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._slots.release()

    def _read_line(self, conn: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
        """The next request line (b"" at EOF) and what was read beyond it, within `read_timeout`
        seconds in all; ProtocolError (too_large) for a line over MAX_REQUEST_BYTES, TimeoutError
        when the deadline passes."""
        deadline = time.monotonic() + self.read_timeout
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                if end + 1 > MAX_REQUEST_BYTES:
                    raise ProtocolError(f"message too large (over {MAX_REQUEST_BYTES} bytes)", code="too_large")
                return buf[: end + 1], buf[end + 1:]
            if len(buf) > MAX_REQUEST_BYTES:
                raise ProtocolError(f"message too large (over {MAX_REQUEST_BYTES} bytes)", code="too_large")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("request line not received in time")
            conn.settimeout(remaining)
            chunk = conn.recv(65536)
            if not chunk:
                return b"", b""
            buf += chunk

    def _handle_line(self, line: bytes, ack: Any = None) -> tuple[dict[str, Any], bool]:
        """Reply to one request line; returns (reply, close connection afterwards). `ack()` sends
        the acknowledgement a suggest request may ask for, before any waiting."""
        with self._stats_lock:
            self._active += 1
            self.requests += 1
        try:
            try:
                req = parse_request(line)
            except ProtocolError as exc:
                return error_reply(str(exc), exc.code), False
            if req.op == "ping":
                return ok_reply(**self.info()), False
            if req.op == "shutdown":
                log.info("shutdown requested")
                self.request_stop()
                return ok_reply(stopping=True, pid=self.pid), True
            if req.op == "reload":
                try:
                    with self._reload_lock:
                        self._load()
                except ModelLoadError as exc:
                    return error_reply(f"reload failed: {exc}", "model"), False
                return ok_reply(**self.info()), False
            if req.ack and ack is not None:
                try:
                    ack()
                except OSError:
                    return error_reply("connection lost", "error"), True
            self._maybe_reload()
            try:
                with self._gen_lock:
                    suggestion = self.suggester.suggest(req.instruction, platform=req.platform, n=req.n)
                    notes, self._notes = self._notes, []
                # the reply names its daemon, so a client can skip the ping round trip (client.suggest)
                fields = suggestion_fields(suggestion)
                fields["notes"] = notes + fields["notes"]
                return ok_reply(**fields, daemon=self.identity()), False
            except Exception as exc:
                log.warning("suggest failed for %r: %s", req.instruction[:80], exc, exc_info=not str(exc))
                return error_reply(safe_line(str(exc)) or type(exc).__name__, "backend"), False
        finally:
            with self._stats_lock:
                self._active -= 1
                self._last_activity = time.monotonic()

    def _maybe_reload(self) -> None:
        """Reload the model if its file changed, the user pairs if theirs did (checked per request)."""
        model_path = getattr(self.suggester, "model_path", None)
        sig = _file_signature(model_path)
        if sig is not None and sig != self._model_sig:
            with self._reload_lock:
                if _file_signature(model_path) != self._model_sig:
                    log.info("model file %s changed: reloading", model_path)
                    try:
                        self._load()
                    except ModelLoadError as exc:
                        log.warning("reload failed, keeping the old model: %s", exc)
                        self._model_sig = sig  # don't retry a broken file on every request
        pairs = str(self.paths.user_pairs)
        psig = _file_signature(pairs)
        if psig != self._pairs_sig:
            with self._gen_lock:
                if psig != self._pairs_sig:
                    log.info("user pairs changed: reloading")
                    try:
                        self.suggester.reload_user_pairs()
                    except Exception as exc:
                        log.warning("reloading user pairs failed: %s", exc)
                    self._pairs_sig = psig
                    self._note_pairs_problem()

    def identity(self) -> dict[str, Any]:
        """What a client checks before trusting an answer (client.incompatibility)."""
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "backend": backend_name(),
                "model_arg": self.model_arg}

    def info(self) -> dict[str, Any]:
        """Ping payload: the identity (versions, backend, model argument), pid, model, stats."""
        with self._stats_lock:
            requests, loads = self.requests, self.model_loads
        return {
            **self.identity(),
            "pid": self.pid,
            "model": str(getattr(self.suggester, "model_path", "")),
            "engine": getattr(getattr(self.suggester, "runtime", None), "engine", ""),
            "second": self._second_info(),
            "uptime_s": round(time.monotonic() - self._started, 3),
            "requests": requests,
            "model_loads": loads,
            "idle_timeout": self.idle_timeout,
            "socket": str(self.paths.socket),
        }

    def _second_info(self) -> dict[str, Any] | None:
        """The second model of a pair (tinyllm.infer.second) and when it is asked, if the model names one."""
        second = getattr(self.suggester, "second", None)
        return None if second is None else {"model": str(second.path), "below": second.settings.below}

    # ------------------------------------------------------------------------------------- housekeeping

    def _periodic(self) -> None:
        """Idle timeout, pid-file ownership, socket-file presence."""
        with self._stats_lock:
            idle = time.monotonic() - self._last_activity
            active = self._active
        if self.idle_timeout > 0 and active == 0 and idle >= self.idle_timeout:
            log.info("idle for %.1f s: exiting", idle)
            self._stop.set()
            return
        owner = read_pid(self.paths.pid)
        if owner is not None and owner != self.pid and pid_alive(owner):
            log.warning("pid file now names pid %d: another daemon took over; exiting", owner)
            self._listener_superseded()
            return
        if owner is None:
            with contextlib.suppress(OSError):
                self._write_pid()
        try:
            ino: int | None = os.stat(self.paths.socket).st_ino
        except OSError:
            ino = None
        if ino != self._sock_ino:
            log.warning("socket file %s was removed or replaced: re-creating it", self.paths.socket)
            try:
                ensure_dir(self.paths.runtime_dir, private=True)
                self._bind()
            except (OSError, StateDirError) as exc:
                log.error("cannot re-create the socket: %s; exiting", exc)
                self._stop.set()

    def _listener_superseded(self) -> None:
        """Another daemon owns the paths now: exit without touching its files."""
        self._sock_ino = None
        self._stop.set()

    def _cleanup(self) -> None:
        """Close the listener; remove the socket and pid file if they are still ours."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            if self._sock_ino is not None and os.stat(self.paths.socket).st_ino == self._sock_ino:
                os.unlink(self.paths.socket)
        self._remove_pid()
        with contextlib.suppress(ValueError, OSError):
            if threading.current_thread() is threading.main_thread():
                signal.set_wakeup_fd(-1)
        log.info("stopped")


def _seconds(text: str) -> float:
    """argparse type for --idle-timeout: a finite number of seconds from 0 to MAX_IDLE_TIMEOUT."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_IDLE_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_IDLE_TIMEOUT:g} seconds, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tinyllm.serve.daemon``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tinyllm.serve.daemon", description="nl2cmd suggestion daemon")
    parser.add_argument("--model", default=None, help="model file (default: the packaged model)")
    parser.add_argument("--idle-timeout", type=_seconds, default=900.0, help="exit after this many idle seconds (0: never)")
    parser.add_argument("--no-lock", action="store_true", help="the spawning client already holds the start-up lock")
    parser.add_argument("--socket", default=None,
                        help="the socket to serve (default: from NL2CMD_HOME / the platform); the client passes "
                             "it, so the command line says which socket a daemon serves")
    parser.add_argument("--replace", action="store_true",
                        help="load the model first, then take the socket over from a running daemon")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="%(asctime)s nl2cmd-daemon[%(process)d] %(levelname)s %(message)s",
    )
    paths = resolve()
    if args.socket is not None:
        from pathlib import Path

        sock = Path(os.path.abspath(args.socket))
        if sock.name != f"{APP}.sock":
            print(f"nl2cmd-daemon: error: --socket must name a file called {APP}.sock", file=sys.stderr, flush=True)
            return EXIT_ERROR
        paths = paths._replace(runtime_dir=sock.parent)
    daemon = Daemon(paths, model_path=args.model, idle_timeout=args.idle_timeout)
    try:
        daemon.run(take_lock=not args.no_lock, replace=args.replace)
    except AlreadyRunning as exc:
        print(f"nl2cmd-daemon: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_RUNNING
    except ModelLoadError as exc:
        print(f"nl2cmd-daemon: error: cannot load the model: {exc}", file=sys.stderr, flush=True)
        return EXIT_MODEL
    except Exception as exc:  # StateDirError, OSError binding the socket, ... — one line, full detail in the log
        log.debug("start-up failed", exc_info=True)
        print(f"nl2cmd-daemon: error: {safe_line(str(exc)) or type(exc).__name__}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
