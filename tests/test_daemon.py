"""Daemon and client lifecycle with the fake backend: start/stop, stale files, crashes, races, limits."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tinyllm import __version__
from tinyllm.formats import paths as state_paths
from tinyllm.knowledge import userpairs
from tinyllm.serve import client, process
from tinyllm.serve.daemon import Daemon, peer_uid
from tinyllm.serve.protocol import MAX_REQUEST_BYTES, PROTOCOL_VERSION, encode_request

from .conftest import daemon_pids, pid_alive, wait_gone
from .fake_backend import BACKEND as FAKE_BACKEND

linux_only = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def P() -> state_paths.StatePaths:
    return state_paths.resolve()


def start(idle_timeout: float = 60.0, model: str | None = None) -> dict:
    return client.ensure_daemon(P(), model, idle_timeout, start_timeout=20.0)


def ask(text: str, **kw) -> dict:
    return client.suggest(P(), text, start_timeout=20.0, timeout=10.0, **kw)


def expected(text: str) -> str:
    return f"printf '%s\\n' '{text}'" if " " in text else f"printf '%s\\n' {text}"


def raw_exchange(conn: socket.socket, data: bytes) -> dict:
    conn.sendall(data)
    return json.loads(conn.makefile("rb").readline())


def connect(timeout: float = 5.0) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    conn.connect(str(P().socket))
    return conn


# ---------------------------------------------------------------------------------------------- lifecycle


def test_start_ping_permissions_stop(nl2cmd_home: Path) -> None:
    info = start()
    p = P()
    assert info["pid"] == process.read_pid(p.pid) and pid_alive(info["pid"])
    assert (info["version"], info["protocol"], info["backend"]) == (__version__, PROTOCOL_VERSION, FAKE_BACKEND)
    assert info["model"] == "(fake)" and info["model_arg"] is None and info["model_loads"] == 1
    assert stat.S_ISSOCK(os.stat(p.socket).st_mode)
    assert stat.S_IMODE(os.stat(p.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(p.runtime_dir).st_mode) == 0o700
    assert start()["pid"] == info["pid"]  # idempotent
    assert client.stop_daemon(p) == info["pid"]
    assert wait_gone(info["pid"], 5)
    assert not p.socket.exists() and not p.pid.exists()
    assert client.stop_daemon(p) is None
    assert "stopped" in p.log.read_text()


def test_sigterm_cleans_up(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid, 5)
    assert not P().socket.exists() and not P().pid.exists()


def test_idle_timeout_exits_and_cleans_up(nl2cmd_home: Path) -> None:
    t0 = time.monotonic()
    pid = start(idle_timeout=0.4)["pid"]
    assert ask("still here")["command"] == expected("still here")
    assert wait_gone(pid, 10)
    assert time.monotonic() - t0 >= 0.4
    assert not P().socket.exists() and not P().pid.exists()
    assert "idle for" in P().log.read_text()


def test_stale_socket_and_dead_pid_file(nl2cmd_home: Path) -> None:
    p = P()
    state_paths.ensure_dir(p.runtime_dir, private=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(p.socket))
    stale.close()  # leaves the file behind: connect() is refused
    dead = subprocess.Popen(["true"])
    dead.wait()
    p.pid.write_text(f"{dead.pid}\n")
    reply = ask("after a crash")
    assert reply["command"] == expected("after a crash")
    assert process.read_pid(p.pid) not in (None, dead.pid)


def test_garbage_pid_file(nl2cmd_home: Path) -> None:
    state_paths.ensure_dir(P().runtime_dir, private=True)
    P().pid.write_text("not a pid")
    assert ask("hello")["command"] == expected("hello")


def test_pid_file_naming_an_unrelated_live_process(nl2cmd_home: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        state_paths.ensure_dir(P().runtime_dir, private=True)
        P().pid.write_text(f"{other.pid}\n")
        assert ask("recycled pid")["command"] == expected("recycled pid")
        assert other.poll() is None  # never signalled
        assert process.read_pid(P().pid) != other.pid
    finally:
        other.kill()
        other.wait()


def test_kill9_then_next_request_recovers(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid, 5)
    assert P().socket.exists() and P().pid.exists()  # SIGKILL leaves both behind
    assert ask("recovered")["command"] == expected("recovered")
    assert process.read_pid(P().pid) != pid


def test_kill9_mid_request_is_retried(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    result: dict = {}

    def slow() -> None:
        try:
            result["reply"] = ask("a slow request")
        except Exception as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    worker = threading.Thread(target=slow)
    t0 = time.monotonic()
    worker.start()
    time.sleep(0.5)  # the daemon is now inside its 1.5 s "slow" sleep
    os.kill(pid, signal.SIGKILL)
    worker.join(15)
    assert not worker.is_alive()
    assert "error" not in result, result
    assert result["reply"]["command"] == expected("a slow request")
    assert time.monotonic() - t0 < 10
    assert process.read_pid(P().pid) != pid


def test_request_timeout_is_reported(nl2cmd_home: Path) -> None:
    start()
    with pytest.raises(client.RequestTimeout, match="did not answer within 0.3 s"):
        client.suggest(P(), "slow one", timeout=0.3)


def test_socket_deleted_under_running_daemon(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    P().socket.unlink()
    # The client finds a live daemon in the pid file and waits for it to re-create its socket.
    assert ask("no socket")["command"] == expected("no socket")
    assert process.read_pid(P().pid) == pid
    assert stat.S_IMODE(os.stat(P().socket).st_mode) == 0o600
    assert "re-creating" in P().log.read_text()


@linux_only
def test_racing_clients_start_exactly_one_daemon(nl2cmd_home: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-m", "tinyllm.cli.app", "--json", f"race {i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(6)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for i, (proc, (out, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, err
        data = json.loads(out)
        assert data["via_daemon"] is True and data["command"] == expected(f"race {i}")
        assert err == b""
    assert len(daemon_pids(nl2cmd_home)) == 1
    assert daemon_pids(nl2cmd_home) == [process.read_pid(P().pid)]
    # Exactly one daemon was ever spawned (the start-up lock), not several that then sorted it out.
    log = P().log.read_text()
    assert log.count("serving on") == 1 and "already running" not in log


def test_warm_suggest_is_one_round_trip(nl2cmd_home: Path) -> None:
    """With a compatible daemon up, a suggestion costs one request: no ping first."""
    start()
    before = client.ping(P())["requests"]
    reply = ask("one trip")
    assert reply["command"] == expected("one trip")
    assert reply["daemon"]["version"] == client.__version__
    assert client.ping(P())["requests"] - before == 2  # the suggest and this ping


def test_daemon_for_another_model_is_replaced_on_first_answer(nl2cmd_home: Path, tmp_path: Path) -> None:
    """An answer from a daemon serving another model is discarded and that daemon replaced."""
    first = start()
    other = tmp_path / "other.npz"
    other.write_bytes(b"fake backend: any file")
    reply = ask("use the other model", model=str(other))
    assert reply["command"] == expected("use the other model")
    info = client.ping(P())
    assert info["pid"] != first["pid"] and info["model_arg"] == str(other.resolve())


def test_incompatible_daemon_is_replaced(nl2cmd_home: Path, tmp_path: Path) -> None:
    old = _start_old_daemon(tmp_path)
    try:
        reply = ask("new version please")
        assert reply["command"] == expected("new version please")
        assert old.wait(timeout=10) is not None
        info = client.ping(P())
        assert info["protocol"] == PROTOCOL_VERSION and info["pid"] != old.pid
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


def test_stop_escalates_to_sigterm_when_shutdown_is_ignored(nl2cmd_home: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "STOP_TIMEOUT", 0.5)
    old = _start_old_daemon(tmp_path, stubborn=True)
    try:
        t0 = time.monotonic()
        assert client.stop_daemon(P()) == old.pid
        # It ignores "shutdown", so only the SIGTERM after STOP_TIMEOUT can have ended it.
        assert 0.5 <= time.monotonic() - t0 < 5
        assert not pid_alive(old.pid)
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


OLD_DAEMON = textwrap.dedent("""
    import json, os, socket, sys
    path, pidfile, stubborn = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    with open(pidfile, "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        conn, _ = srv.accept()
        req = json.loads(conn.makefile("rb").readline() or b"{}")
        if req.get("op") == "ping":
            reply = {"v": 0, "ok": True, "version": "0.0.1", "protocol": 0, "pid": os.getpid(), "backend": "fake"}
        elif req.get("op") == "shutdown" and not stubborn:
            conn.sendall(b'{"v": 0, "ok": true}\\n')
            os.unlink(path)
            os.unlink(pidfile)
            sys.exit(0)
        else:
            reply = {"v": 0, "ok": False, "error": "old daemon"}
        conn.sendall(json.dumps(reply).encode() + b"\\n")
        conn.close()
""")


def _start_old_daemon(tmp_path: Path, stubborn: bool = False) -> subprocess.Popen:
    """A stand-in for a daemon of an older, incompatible version (protocol 0)."""
    p = P()
    state_paths.ensure_dir(p.runtime_dir, private=True)
    script = tmp_path / "old_daemon.py"
    script.write_text(OLD_DAEMON)
    proc = subprocess.Popen([sys.executable, str(script), str(p.socket), str(p.pid), "1" if stubborn else "0"])
    deadline = time.monotonic() + 10
    while client.ping(p) is None:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    return proc


def test_foreground_run_refuses_a_second_daemon_and_stops_on_sigterm(nl2cmd_home: Path) -> None:
    fg = subprocess.Popen([sys.executable, "-m", "tinyllm.cli.app", "daemon", "run", "--idle-timeout", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while client.ping(P()) is None:
            assert time.monotonic() < deadline and fg.poll() is None
            time.sleep(0.02)
        assert client.ping(P())["pid"] == fg.pid
        second = subprocess.run([sys.executable, "-m", "tinyllm.cli.app", "daemon", "run"],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines()[-1] == f"nl2cmd: error: a daemon is already running (pid {fg.pid})"
        assert ask("via foreground")["command"] == expected("via foreground")
        fg.send_signal(signal.SIGTERM)
        assert fg.wait(timeout=10) == 0
        assert not P().socket.exists() and not P().pid.exists()
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait()


def test_spawned_daemon_exits_4_when_another_owns_the_pid_file(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    proc = subprocess.run([sys.executable, "-m", "tinyllm.serve.daemon", "--no-lock"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == process.EXIT_RUNNING
    assert f"already running (pid {pid})" in proc.stderr
    assert client.ping(P())["pid"] == pid


# ---------------------------------------------------------------------------------------------- serving


def test_concurrent_clients(nl2cmd_home: Path) -> None:
    start()

    def worker(t: int) -> int:
        ok = 0
        for i in range(50):
            text = f"task {t} {i}"
            reply = ask(text, n=1 + i % 3)
            assert reply["command"] == expected(text)
            assert len(reply["alternatives"]) == 1 + i % 3
            ok += 1
        return ok

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 400
    assert client.ping(P())["requests"] >= 400


def test_malformed_requests_get_error_replies_and_the_daemon_keeps_serving(nl2cmd_home: Path) -> None:
    start()
    with connect() as conn:
        rfile = conn.makefile("rb")
        for bad, code in [(b"not json\n", "bad_request"), (b"\xff\xfe\n", "bad_request"),
                          (b'{"v": 1, "op": "suggest", "instruction": 5}\n', "bad_request"),
                          (b'{"v": 1, "op": "dance"}\n', "bad_op"),
                          (b'{"v": 9, "op": "suggest", "instruction": "x"}\n', "version"),
                          (b'{"v": 1, "op": "suggest", "instruction": "   "}\n', "bad_instruction"),
                          (b"[" * 60000 + b"\n", "bad_request")]:
            conn.sendall(bad)
            reply = json.loads(rfile.readline())
            assert reply["ok"] is False and reply["code"] == code and reply["error"]
        # The same connection still works after errors (blank lines are ignored).
        conn.sendall(b"\n" + encode_request("suggest", instruction="after errors"))
        assert json.loads(rfile.readline())["command"] == expected("after errors")
    with connect() as conn:
        conn.sendall(b"x" * (MAX_REQUEST_BYTES + 100) + b"\n")
        rfile = conn.makefile("rb")
        reply = json.loads(rfile.readline())
        assert reply["ok"] is False and reply["code"] == "too_large"
        assert rfile.readline() == b""  # then the connection is closed
    assert ask("still serving")["command"] == expected("still serving")


def test_backend_error_reply(nl2cmd_home: Path) -> None:
    start()
    with pytest.raises(client.RemoteError, match="fake backend failure requested") as info:
        ask("fail now")
    assert info.value.code == "backend"


def test_silent_client_does_not_wedge_the_daemon(nl2cmd_home: Path) -> None:
    start()
    with connect() as silent, connect() as partial:
        partial.sendall(b'{"v": 1, "op": "ping"')  # no newline, ever
        t0 = time.monotonic()
        assert ask("not blocked")["command"] == expected("not blocked")
        assert time.monotonic() - t0 < 2
        silent.sendall(encode_request("ping"))
        assert json.loads(silent.makefile("rb").readline())["ok"] is True


def test_learnt_pair_is_visible_to_a_running_daemon(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    assert ask("deploy the site")["source"] == "model"
    userpairs.add("Deploy the site", "rsync -av public/ web:/srv/www/")
    reply = ask("deploy the site")
    assert (reply["command"], reply["source"]) == ("rsync -av public/ web:/srv/www/", "user")
    userpairs.remove(1)
    assert ask("deploy the site")["command"] == expected("deploy the site")
    assert client.ping(P())["pid"] == pid  # same daemon throughout


def test_model_file_change_reloads_and_another_model_restarts(nl2cmd_home: Path) -> None:
    model = nl2cmd_home / "model.bin"
    model.write_text("v1")
    info = start(model=str(model))
    assert info["model"] == str(model.resolve()) and info["model_loads"] == 1
    ask("before", model=str(model))
    model.write_text("v2, longer")
    os.utime(model, (time.time() + 5, time.time() + 5))
    ask("after", model=str(model))
    after = client.ping(P())
    assert after["model_loads"] == 2 and after["pid"] == info["pid"]
    reload = client.request(P().socket, encode_request("reload"), 5.0)
    assert reload["ok"] and reload["model_loads"] == 3
    # A client asking for a different model gets a daemon serving it.
    other = nl2cmd_home / "other.bin"
    other.write_text("o")
    switched = start(model=str(other))
    assert switched["model"] == str(other.resolve()) and switched["pid"] != info["pid"]
    assert wait_gone(info["pid"], 5)


# ---------------------------------------------------------------------------------------------- in-process daemon


def _serve_in_thread(**kwargs) -> tuple[Daemon, threading.Thread]:
    daemon = Daemon(P(), idle_timeout=0, **kwargs)
    daemon.start(take_lock=True)
    thread = threading.Thread(target=daemon.serve, daemon=True)
    thread.start()
    return daemon, thread


def test_peer_uid_is_checked(nl2cmd_home: Path) -> None:
    daemon, thread = _serve_in_thread(expected_uid=os.getuid() + 1)
    try:
        with connect() as conn:
            if sys.platform.startswith("linux"):
                assert peer_uid(conn) == os.getuid()
            try:
                conn.sendall(encode_request("ping"))
                answer = conn.makefile("rb").readline()
            except (BrokenPipeError, ConnectionResetError):  # closed before or with our request unread
                answer = b""
            assert answer == b""  # closed without an answer
    finally:
        daemon.request_stop()
        thread.join(5)
    assert not thread.is_alive() and not P().socket.exists()


def test_connection_cap_answers_busy(nl2cmd_home: Path) -> None:
    daemon, thread = _serve_in_thread(max_connections=1)
    try:
        with connect() as first:
            first.sendall(encode_request("ping"))
            assert json.loads(first.makefile("rb").readline())["ok"]  # holds the only slot
            with connect() as second:
                reply = json.loads(second.makefile("rb").readline())
                assert reply["ok"] is False and reply["code"] == "busy"
        deadline = time.monotonic() + 5
        while client.ping(P()) is None:  # the slot is released when `first` closes
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        daemon.request_stop()
        thread.join(5)


def test_in_process_start_refuses_when_one_is_running(nl2cmd_home: Path) -> None:
    from tinyllm.serve.daemon import AlreadyRunning

    start()
    with pytest.raises(AlreadyRunning):
        Daemon(P()).start(take_lock=True)


# ---------------------------------------------------------------------------------------------- thin client


CLIENT_PATHS = [
    # (module, argv, modules it must not import, expected stdout check)
    ("tinyllm.cli.app", ["--json", "thin client"], ("numpy", "torch", "sentencepiece", "prompt_toolkit", "tinyllm.serve.suggest"),
     lambda out: json.loads(out)["via_daemon"] is True),
    # the console script's hot path: a plain request with the standard library only
    ("tinyllm.cli.entry", ["thin", "client"], ("click", "numpy", "torch", "sentencepiece", "tinyllm.cli.app"),
     lambda out: out == "printf '%s\\n' 'thin client'\n"),
]


@pytest.mark.parametrize(("module", "argv", "forbidden", "check"), CLIENT_PATHS, ids=["click-cli", "entry"])
def test_thin_client_paths_import_nothing_heavy(nl2cmd_home: Path, module: str, argv: list[str],
                                                forbidden: tuple[str, ...], check) -> None:
    start()
    code = textwrap.dedent(f"""
        import json, sys
        import {module}
        try:
            {module}.main({argv!r})
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print(json.dumps([m for m in {forbidden!r} if m in sys.modules]), file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert check(proc.stdout), proc.stdout
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_limit_heap_growth_sets_malloc_options() -> None:
    from tinyllm.serve.daemon import limit_heap_growth

    if sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver()):
        assert limit_heap_growth() is True
    else:
        assert limit_heap_growth() in (True, False)


# ---------------------------------------------------------------------------------------------- real backend


def test_real_backend_end_to_end(nl2cmd_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A micro model file served by the real backend: in-process and via the daemon, thin client stays thin."""
    pytest.importorskip("torch")
    pytest.importorskip("tinyllm.serve.suggest")
    from tinyllm.train.export import export_inference

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    model_file = nl2cmd_home / "micro.npz"
    export_inference(make_model(tok), tok, model_file, {"step": 1}, dtype="float32")
    monkeypatch.delenv("NL2CMD_BACKEND")
    # An untrained model says anything (possibly nothing): a learnt pair gives a known answer.
    userpairs.add("list all files", "ls -la")
    cmd = [sys.executable, "-m", "tinyllm.cli.app", "--json", "--model", str(model_file)]

    local = subprocess.run([*cmd, "--no-daemon", "list all files"], capture_output=True, text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    data = json.loads(local.stdout)
    assert (data["command"], data["source"], data["via_daemon"]) == ("ls -la", "user", False)

    code = textwrap.dedent(f"""
        import json, sys
        import tinyllm.cli.app
        try:
            tinyllm.cli.app.main({["--json", "--model", str(model_file), "list all files"]!r})
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print(json.dumps([m for m in ("numpy", "torch", "sentencepiece") if m in sys.modules]), file=sys.stderr)
    """)
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr
    data = json.loads(served.stdout)
    assert (data["command"], data["source"], data["via_daemon"]) == ("ls -la", "user", True)
    assert json.loads(served.stderr.strip().splitlines()[-1]) == []
    info = client.ping(P())
    assert info["backend"] == "real" and info["model"] == str(model_file.resolve())
    # The model itself answers through the daemon: one command line, or the one-line "no command" error.
    model_answer = subprocess.run([*cmd, "-n", "2", "show disk usage"], capture_output=True, text=True, timeout=120)
    if model_answer.returncode == 0:
        data = json.loads(model_answer.stdout)
        assert data["via_daemon"] is True and data["source"] == "model" and "\n" not in data["command"]
    else:
        assert model_answer.stderr == "nl2cmd: error: the model produced no command\n"
    assert client.ping(P())["pid"] == info["pid"]


def test_warm_plain_request_imports_only_light_modules(nl2cmd_home: Path) -> None:
    """`nl2cmd WORDS` with a daemon running: the request path leaves the slow-to-import modules alone."""
    client.ensure_daemon(P())
    code = textwrap.dedent("""
        import json, sys
        import tinyllm.cli.entry
        try:
            tinyllm.cli.entry.main(["list", "all", "files"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        heavy = ("pathlib", "socket", "contextlib", "dataclasses", "typing", "click", "numpy", "platformdirs")
        print(json.dumps([m for m in heavy if m in sys.modules]), file=sys.stderr)
    """)
    run = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()  # the fake backend's answer
    assert json.loads(run.stderr.strip().splitlines()[-1]) == []
    assert client.ping(P())["requests"] >= 2  # the answer came from the daemon


@pytest.mark.parametrize("argv, status, out, err", [
    (["list", "all", "files"], 0, "\n", ""),  # the fake backend's answer: one line
    (["x" * 600], 1, "", "nl2cmd: error: instruction too long"),
    (["--version"], 0, "nl2cmd", ""),  # not a plain request: the normal exit
])
def test_console_script_exit_status_and_output(nl2cmd_home: Path, argv: list[str], status: int, out: str,
                                                err: str) -> None:
    """console_main ends a plain request with os._exit: the status and every line still come out."""
    code = f"import sys; sys.argv = ['nl2cmd', *{argv!r}]; from tinyllm.cli.entry import console_main; console_main()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == status, run.stderr
    assert out in run.stdout and err in run.stderr
    if status == 0 and argv[0] != "--version":
        assert len(run.stdout.splitlines()) == 1 and run.stdout.strip()


# ---------------------------------------------------------------------------------------------- a daemon that does not answer


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    code = f"import sys; sys.argv = ['nl2cmd', *{list(args)!r}]; from tinyllm.cli.entry import console_main; console_main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


@linux_only
def test_stopped_daemon_costs_at_most_a_few_seconds(nl2cmd_home: Path) -> None:
    pid = start()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        result = _cli("list", "files")
        elapsed = time.monotonic() - t0
        assert result.returncode == 0, result.stderr
        assert result.stdout == "printf '%s\\n' 'list files'\n"  # generated in-process
        assert result.stderr == ("nl2cmd: daemon unavailable (the daemon accepted the request but did not answer "
                                 "within 3 s); generating in-process\n")
        assert elapsed < client.NO_ANSWER_TIMEOUT + 3
        # The library call gives up as quickly.
        t0 = time.monotonic()
        with pytest.raises(client.DaemonUnavailable, match="did not answer within 3 s"):
            client.suggest(P(), "still stopped", timeout=30.0)
        assert time.monotonic() - t0 < client.NO_ANSWER_TIMEOUT + 1
    finally:
        os.kill(pid, signal.SIGCONT)
    assert ask("continued")["command"] == expected("continued")
    assert client.ping(P())["pid"] == pid


def test_slow_answer_is_not_mistaken_for_no_answer(nl2cmd_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon acknowledges at once: an answer slower than the no-answer limit still comes through."""
    start()
    monkeypatch.setattr(client, "NO_ANSWER_TIMEOUT", 0.5)
    assert ask("a slow one")["command"] == expected("a slow one")  # the fake backend sleeps 1.5 s


def test_swamped_daemon_falls_back_within_a_few_seconds(nl2cmd_home: Path) -> None:
    daemon, thread = _serve_in_thread(max_connections=2, read_timeout=60)
    idle = [connect(), connect()]  # hold every slot, say nothing
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(client.DaemonUnavailable, match="daemon busy"):
            client.suggest(P(), "anyone there", timeout=30.0)
        assert time.monotonic() - t0 < client.NO_ANSWER_TIMEOUT + 1
        from .test_cli import run

        result = run("anyone there")
        assert result.exit_code == 0 and result.stdout == expected("anyone there") + "\n"
        assert result.stderr.startswith("nl2cmd: daemon unavailable (daemon busy for 3 s")
        assert result.stderr.rstrip().endswith("generating in-process") and result.stderr.count("\n") == 1
    finally:
        for conn in idle:
            conn.close()
        daemon.request_stop()
        thread.join(5)


def test_idle_and_dripping_connections_are_closed(nl2cmd_home: Path) -> None:
    daemon, thread = _serve_in_thread(read_timeout=0.5, max_connections=4)
    try:
        with connect() as silent, connect() as drip:
            t0 = time.monotonic()
            closed_at = None
            for _ in range(40):  # a byte every 0.1 s, never a whole line: the deadline is per line, not per byte
                try:
                    drip.sendall(b" ")
                except OSError:
                    closed_at = time.monotonic()
                    break
                time.sleep(0.1)
            assert closed_at is not None and closed_at - t0 < 2.5
            assert silent.recv(10) == b""  # the silent one was closed too
        assert ask("still serving")["command"] == expected("still serving")
    finally:
        daemon.request_stop()
        thread.join(5)


# ---------------------------------------------------------------------------------------------- a model that fails


@pytest.mark.parametrize("how", ["suggest", "start", "restart"])
def test_failing_model_never_stops_the_working_daemon(nl2cmd_home: Path, how: str) -> None:
    from .test_cli import run

    pid = start()["pid"]
    bad = str(nl2cmd_home / "BAD.npz")
    argv = {"suggest": ["--model", bad, "list files"], "start": ["daemon", "start", "--model", bad],
            "restart": ["daemon", "restart", "--model", bad]}[how]
    result = run(*argv)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("nl2cmd: error: cannot load the model: ") and "BAD.npz" in result.stderr
    assert result.stderr.rstrip().endswith("(the running daemon, if any, is left as it was)") == (how == "restart")
    info = client.ping(P())
    assert info is not None and info["pid"] == pid and pid_alive(pid) and info["model_arg"] is None
    assert ask("still the old one")["command"] == expected("still the old one")
    assert "replace" not in P().pid.read_text()


def test_restart_replaces_the_daemon_once_the_new_one_is_up(nl2cmd_home: Path) -> None:
    from .test_cli import run

    old = start()["pid"]
    result = run("daemon", "restart")
    assert result.exit_code == 0, result.stderr
    new = client.ping(P())["pid"]
    assert new != old and result.stdout == f"nl2cmd daemon replaced (pid {old})\nnl2cmd daemon running (pid {new})\n"
    assert wait_gone(old, 5)  # it saw the pid file name its successor and left
    assert client.ping(P())["pid"] == new and P().socket.exists()
