"""End-to-end tests of the shell widgets: real bash/zsh/fish in tmux, the real `nl2cmd` entry point.

Each test starts a shell in a detached tmux session with a clean rc file that installs the widget
exactly as users do (`eval "$(nl2cmd init bash)"`, ...), types a request, presses Ctrl-G and reads
the screen back with `capture-pane`.  The CLI runs with the fake backend (deterministic answers,
see tests/fake_backend.py) through its default daemon path, with NL2CMD_HOME in a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import fake_backend
from tests.conftest import kill_home_processes
from tinyllm.knowledge.text import normalize_instruction

SHELLS = ("bash", "zsh", "fish")
PROMPT = "P>"
TIMEOUT = 10.0
# Typed requests and what the fake backend answers.
TRICKY = "it's $HOME & 100% \\ ünïcode \"q\" $(touch marker-a) `touch marker-b`; touch marker-c"
PLACEHOLDER = "cp {{path/to/source}} {{path/to/target}}"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _printf(instruction: str) -> str:
    """The fake backend's answer for an ordinary request."""
    return f"printf '%s\\n' {shlex.quote(normalize_instruction(instruction))}"


def _find_nl2cmd() -> str | None:
    # Prefer the entry point installed next to this interpreter (avoids pyenv-style shims).
    beside = Path(sys.executable).with_name("nl2cmd")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("nl2cmd")


def _utf8_locale() -> str:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    for name in ("C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"):
        if name in out:
            return name
    return "C.UTF-8"


@pytest.fixture(scope="module")
def nl2cmd_env() -> Iterator[dict[str, str]]:
    """Environment for the shells: fake backend, private NL2CMD_HOME, the real nl2cmd first on PATH."""
    exe = _find_nl2cmd()
    if exe is None:
        pytest.skip("the nl2cmd entry point is not installed (pip install -e .)")
    home = tempfile.mkdtemp(prefix="n2c-w", dir="/tmp")  # short: the daemon's socket lives in it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NL2CMD_", "TMUX", "LC_"))}
    env = fake_backend.environment(env)
    env.update(NL2CMD_HOME=home, PATH=str(Path(exe).parent) + os.pathsep + env.get("PATH", ""))
    env["LANG"] = env["LC_ALL"] = _utf8_locale()  # non-ASCII requests must survive the round trip
    try:
        yield env
    finally:
        # The widgets started a daemon on demand (outside the tmux server): stop it the user's way,
        # then make sure nothing with this NL2CMD_HOME survives.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([exe, "daemon", "stop"], env=env, capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
        kill_home_processes(Path(home))
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def tmux(nl2cmd_env: dict[str, str]) -> Iterator[Tmux]:
    server = Tmux(f"nl2cmd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}", nl2cmd_env)
    try:
        yield server
    finally:
        server.kill()


class Tmux:
    """A private tmux server (own socket, no user config)."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def cmd(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, env=self.env, timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> Pane:
        name = f"s{uuid.uuid4().hex[:8]}"
        env_args = [f"{k}={v}" for k, v in {**self.env, **(extra_env or {})}.items()]
        # `env -i` so the pane sees exactly our environment, whatever the server inherited.
        self.cmd("new-session", "-d", "-x", "200", "-y", "50", "-s", name, "-c", str(cwd),
                 "env", "-i", *env_args, *argv)
        return Pane(self, name)

    def kill(self) -> None:
        """Kill the server (and every shell in it) and remove its socket file, which tmux leaves behind."""
        socket_path = ""
        with contextlib.suppress(Exception):
            socket_path = self.cmd("list-sessions", "-F", "#{socket_path}").splitlines()[0].strip()
        with contextlib.suppress(Exception):
            self.cmd("kill-server")
        if socket_path:
            with contextlib.suppress(OSError):
                os.unlink(socket_path)


class Pane:
    """One shell running in a tmux session."""

    def __init__(self, tmux: Tmux, name: str) -> None:
        self.tmux = tmux
        self.name = name

    def type(self, text: str) -> None:
        self.tmux.cmd("send-keys", "-t", self.name, "-l", text)

    def key(self, *keys: str) -> None:
        self.tmux.cmd("send-keys", "-t", self.name, *keys)

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.tmux.cmd("capture-pane", "-p", "-t", self.name).splitlines()]

    def prompt_line(self, screen: list[str] | None = None) -> str | None:
        """The text after the last prompt on screen (None when no prompt is visible)."""
        lines = [line for line in (screen or self.screen()) if line.startswith(PROMPT)]
        return lines[-1][len(PROMPT):].strip() if lines else None

    def cursor_x(self) -> int:
        return int(self.tmux.cmd("display-message", "-p", "-t", self.name, "#{cursor_x}").strip())

    def wait(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = TIMEOUT) -> list[str]:
        """Poll the screen until `predicate` holds; fail with a screen dump after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                dump = "\n".join(line for line in screen if line)
                pytest.fail(f"timed out waiting for {what}; screen:\n{dump}")
            time.sleep(0.05)

    def wait_line(self, expected: str, timeout: float = TIMEOUT) -> list[str]:
        """Wait until the command line (after the last prompt) reads `expected`."""
        return self.wait(lambda s: self.prompt_line(s) == expected, f"command line {expected!r}", timeout)

    def wait_text(self, text: str, timeout: float = TIMEOUT) -> list[str]:
        return self.wait(lambda s: any(text in line for line in s), f"{text!r} on screen", timeout)


def start_shell(
    tmux: Tmux, shell: str, tmp: Path, vi: bool = False, extra_env: dict[str, str] | None = None, init_args: str = ""
) -> Pane:
    """Start `shell` with a minimal rc file that installs the widget; wait for its first prompt."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    env = {"HISTFILE": str(tmp / "history"), **(extra_env or {})}
    if shell == "bash":
        rc = tmp / "bashrc"
        rc.write_text(
            f"PS1='{PROMPT} '\nunset PROMPT_COMMAND\n"
            'eval "$(nl2cmd init bash' + init_args + ')"\n' + ("set -o vi\n" if vi else ""),
            encoding="utf-8",
        )
        argv = ["bash", "--noprofile", "--rcfile", str(rc), "-i"]
    elif shell == "zsh":
        (tmp / ".zshrc").write_text(
            f"PS1='{PROMPT} '\nunset RPROMPT\n"
            'eval "$(nl2cmd init zsh' + init_args + ')"\n' + ("bindkey -v\n" if vi else ""),
            encoding="utf-8",
        )
        env["ZDOTDIR"] = str(tmp)
        argv = ["zsh", "-d", "-i"]  # -d: skip the system-wide rc files; $ZDOTDIR/.zshrc is ours
    else:
        rc = tmp / "init.fish"
        rc.write_text(
            f"function fish_prompt; printf '{PROMPT} '; end\n"
            "function fish_right_prompt; end\nfunction fish_mode_prompt; end\n"
            "set -g fish_greeting ''\nset -g fish_autosuggestion_enabled 0\n"
            f"nl2cmd init fish{init_args} | source\n"
            # Without config fish has no handler for $fish_key_bindings, which fish_vi_key_bindings
            # relies on when the variable is not yet set: set it first.  Called after the init on
            # purpose: switching key bindings must not drop the widget's (user) bindings.
            + ("set -g fish_key_bindings fish_vi_key_bindings\nfish_vi_key_bindings\n" if vi else ""),
            encoding="utf-8",
        )
        env.update(XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"))
        argv = ["fish", "--no-config", "-C", f"source {shlex.quote(str(rc))}"]
    pane = tmux.start(argv, cwd=tmp, extra_env=env)
    pane.wait(lambda s: pane.prompt_line(s) == "", f"the first {shell} prompt", timeout=20)
    return pane


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return request.param


def test_suggestion_replaces_line_and_nothing_runs(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path)
    pane.type(TRICKY)
    pane.wait_line(TRICKY)
    pane.key("C-g")
    expected = _printf(TRICKY)
    screen = pane.wait_line(expected)
    # Cursor at the end of the suggestion (no placeholder).
    assert pane.cursor_x() == len(f"{PROMPT} {expected}")
    # Nothing was executed: no new prompt, and the $(...)/`...`/; parts of the request never ran.
    time.sleep(0.3)
    screen = pane.screen()
    assert sum(line.startswith(PROMPT) for line in screen) == 1, screen
    assert not any(line.startswith("it's") for line in screen)
    assert not list(tmp_path.glob("marker-*"))
    assert pane.prompt_line() == expected


def test_cursor_on_first_placeholder(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path)
    pane.type("copy a file with a placeholder")
    pane.key("C-g")
    pane.wait_line(PLACEHOLDER)
    pane.type("X")
    pane.wait_line("cp X{{path/to/source}} {{path/to/target}}")


def test_error_keeps_text_and_shows_message(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path)
    pane.type("please fail now")
    pane.key("C-g")
    # wait for both: the shell prints the message, then redraws the prompt with the text kept
    pane.wait(lambda s: pane.prompt_line(s) == "please fail now" and any("nl2cmd: error:" in line for line in s),
              "the error message and the kept text")
    pane.type("X")  # still editing the same line, cursor where it was
    pane.wait_line("please fail nowX")


def test_danger_warning_is_shown_and_command_only_placed(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path)
    pane.type("danger zone")
    pane.key("C-g")
    screen = pane.wait(
        lambda s: pane.prompt_line(s) == "rm -rf /" and any("nl2cmd: warning:" in line for line in s),
        "the dangerous suggestion and its warning",
    )
    # Only placed on the line: below the last prompt there is at most the warning, no output of a run.
    last = max(i for i, line in enumerate(screen) if line.startswith(PROMPT))
    assert all(not line or "nl2cmd: warning:" in line for line in screen[last + 1:]), screen
    time.sleep(0.3)
    assert pane.prompt_line() == "rm -rf /"


def test_empty_line_shows_hint_without_calling(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    # With NL2CMD_BIN pointing nowhere, any attempt to call nl2cmd would report "not found".
    missing = str(tmp_path / "nowhere" / "nl2cmd")
    pane = start_shell(tmux, shell, tmp_path, extra_env={"NL2CMD_BIN": missing})
    pane.type("   ")
    pane.key("C-g")
    screen = pane.wait_text("nl2cmd: type a request first")
    assert not any("not found" in line for line in screen)


def test_missing_executable_keeps_text(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "nl2cmd")
    # The widget was installed by the real nl2cmd; at key-press time NL2CMD_BIN points nowhere.
    pane = start_shell(tmux, shell, tmp_path, extra_env={"NL2CMD_BIN": missing})
    pane.type("list files")
    pane.key("C-g")
    screen = pane.wait_text("not found")
    assert pane.prompt_line(screen) == "list files"


def test_exit_status_is_preserved(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path)
    pane.type("false")
    pane.key("Enter")
    pane.wait(lambda s: sum(line.startswith(PROMPT) for line in s) == 2, "the prompt after `false`")
    pane.type("keep status")
    pane.key("C-g")
    pane.wait_line(_printf("keep status"))
    pane.key("C-e", "C-u")  # clear the line (the suggestion is not run)
    pane.wait_line("")
    pane.type('echo "st=$status"' if shell == "fish" else 'echo "st=$?"')
    pane.key("Enter")
    # The typed command holds "st=" too: wait for the output line itself.
    screen = pane.wait(lambda s: any(line.startswith("st=") for line in s), "the output of echo")
    assert "st=1" in screen


def test_vi_insert_mode(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    pane = start_shell(tmux, shell, tmp_path, vi=True)
    pane.type("copy with a placeholder")
    pane.key("C-g")
    pane.wait_line(PLACEHOLDER)
    pane.type("X")  # still in insert mode, at the first placeholder
    pane.wait_line("cp X{{path/to/source}} {{path/to/target}}")


def test_custom_key(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    """`--key alt-j` binds Alt-J (sent as ESC j) instead of Ctrl-G."""
    pane = start_shell(tmux, shell, tmp_path, init_args=" --key alt-j")
    pane.type("custom key")
    pane.key("M-j")
    pane.wait_line(_printf("custom key"))
    pane.key("C-e", "C-u")
    pane.wait_line("")
    pane.type("other key")
    pane.key("C-g")  # the shell's own Ctrl-G (abort / send-break): no suggestion
    time.sleep(0.5)
    assert not any(_printf("other key") in line for line in pane.screen())


@pytest.mark.parametrize("slow_shell", ["bash", "zsh"])
def test_thinking_indicator(tmux: Tmux, slow_shell: str, tmp_path: Path) -> None:
    if slow_shell == "bash" and shutil.which("bash"):
        version = subprocess.run(["bash", "-c", "echo $((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1]))"],
                                 capture_output=True, text=True).stdout.strip()
        if int(version or 0) < 502:
            pytest.skip("bash < 5.2 does not clear the line for bind -x output: no indicator there")
    pane = start_shell(tmux, slow_shell, tmp_path)
    pane.type("a slow request")
    pane.key("C-g")
    pane.wait_text("nl2cmd: thinking...")
    screen = pane.wait_line(_printf("a slow request"))
    assert not any("thinking" in line for line in screen)


@pytest.mark.parametrize("search_shell", ["bash", "zsh"])
def test_ctrl_g_still_cancels_history_search(tmux: Tmux, search_shell: str, tmp_path: Path) -> None:
    """Ctrl-G inside a Ctrl-R search keeps its usual meaning (cancel the search), not the widget."""
    pane = start_shell(tmux, search_shell, tmp_path)
    pane.type("echo hello")
    pane.key("Enter")
    pane.wait(lambda s: "hello" in s, "the output of echo")  # a line of its own, not the typed command
    pane.type("typed")
    pane.key("C-r")
    pane.type("hel")
    pane.wait_text("echo hello")  # the search found the history entry
    pane.key("C-g")
    pane.wait_line("typed")  # search cancelled, original line back, nothing suggested
    time.sleep(0.3)
    assert pane.prompt_line() == "typed"


def _needs_ls_page() -> None:
    from tinyllm.knowledge.manpages import locate_page

    if shutil.which("man") is None or locate_page("ls") is None:
        pytest.skip("the ls man page is not installed")


def test_explain_key_shows_explanation_and_keeps_line(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    """Alt-E (the default explain key) prints the explanation and leaves the command line unchanged."""
    _needs_ls_page()
    pane = start_shell(tmux, shell, tmp_path)
    pane.type("ls -l")
    pane.wait_line("ls -l")
    pane.key("M-e")
    screen = pane.wait(lambda s: pane.prompt_line(s) == "ls -l" and any("use a long listing format" in line for line in s),
                       "the explanation and the unchanged line", timeout=20)
    assert any("list directory contents" in line for line in screen)
    pane.type("X")  # still editing the same line
    pane.wait_line("ls -lX")
    time.sleep(0.2)
    assert not any(line.startswith("total ") for line in pane.screen())  # nothing ran: no `ls -l` output


def test_custom_explain_key_and_empty_line(tmux: Tmux, shell: str, tmp_path: Path) -> None:
    _needs_ls_page()
    pane = start_shell(tmux, shell, tmp_path, init_args=" --explain-key alt-x")
    pane.key("M-x")
    pane.wait_text("nl2cmd: type a command first")
    pane.type("ls -a")
    pane.key("M-x")
    pane.wait(lambda s: pane.prompt_line(s) == "ls -a" and any("do not ignore entries" in line for line in s),
              "the explanation with the custom key", timeout=20)
