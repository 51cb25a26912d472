"""The nl2cmd command line (fake backend): every command and option, input checks, settings, paths."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyllm import __version__
from tinyllm.cli import entry
from tinyllm.cli.app import DefaultGroup, clean_arg, cli
from tinyllm.formats import paths, settings
from tinyllm.knowledge.text import MAX_REQUEST_CHARS

from .fake_backend import BACKEND as FAKE_BACKEND


def run(*args: str, input: str | None = None):  # noqa: A002
    """Invoke the CLI in-process; stdout and stderr are kept apart."""
    kwargs = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}
    result = CliRunner(**kwargs).invoke(cli, list(args), input=input, catch_exceptions=False)
    return result


def one_error_line(result, code: int = 1) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nl2cmd: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------- suggest


@pytest.mark.parametrize("args", [["--no-daemon", "list large files"], ["--no-daemon", "list", "large", "files"],
                                  ["suggest", "--no-daemon", "list large files"],
                                  ["suggest", "--no-daemon", "list", "large", "files"]])
def test_quoted_and_unquoted_instruction(nl2cmd_home: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "printf '%s\\n' 'list large files'\n"
    assert result.stderr == ""


def test_entry_subcommands_match_the_click_group() -> None:
    assert entry.SUBCOMMANDS == set(cli.commands)


@pytest.mark.parametrize(("argv", "plain"), [
    (["list", "large", "files"], True), (["list large files"], True), (["find", "-name", "x"], True),
    ([], False), (["--no-daemon", "list"], False), (["-n", "3", "x"], False), (["--", "learn"], False),
    (["learn", "x", "y"], False), (["daemon", "status"], False), (["suggest", "x"], False),
])
def test_entry_routes_only_plain_requests_past_click(argv: list[str], plain: bool) -> None:
    assert entry.is_plain_request(argv) is plain


@pytest.mark.parametrize("argv", [["list", "large", "files"], ["find", "files", "-name", "foo"], ["   "],
                                  ["x" * (MAX_REQUEST_CHARS + 1)], ["list caf\udce9 files"]])
def test_entry_fast_path_matches_the_click_cli(nl2cmd_home: Path, argv: list[str]) -> None:
    """Same stdout, stderr and exit status through tinyllm.cli.entry (no click) and through the click CLI."""
    config = paths.resolve().config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("no_daemon = true\n")
    results = []
    for module in ("tinyllm.cli.entry", "tinyllm.cli.app"):
        code = f"import sys, {module} as m; m.main(sys.argv[1:])"
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                              errors="surrogateescape")
        results.append((proc.returncode, proc.stdout, proc.stderr))
    assert results[0] == results[1]


def test_options_after_the_first_word_are_instruction_text(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "find", "files", "-name", "foo", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "printf '%s\\n' 'find files -name foo --json'\n"


@pytest.mark.parametrize("args", [["--no-daemon", "--", "-rf is scary"], ["suggest", "--no-daemon", "--", "-rf is scary"]])
def test_double_dash_passes_leading_dash_text(nl2cmd_home: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "printf '%s\\n' '-rf is scary'\n"


def test_double_dash_allows_a_subcommand_name_as_first_word(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "--", "learn", "to", "juggle")
    assert result.stdout == "printf '%s\\n' 'learn to juggle'\n"


def test_num_prints_alternatives_one_per_line(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "-n", "3", "list files")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["printf '%s\\n' 'list files'", "echo 2", "echo 3"]
    assert run("--no-daemon", "--num", "11", "x").exit_code == 2
    assert run("--no-daemon", "--num", "0", "x").exit_code == 2


def test_json_output(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "--json", "-n", "2", "--platform", "macos", "copy a placeholder")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["command"] == "cp {{path/to/source}} {{path/to/target}}"
    assert data["alternatives"] == [{"command": data["command"], "score": 0.0}, {"command": "echo 2", "score": -1.0}]
    assert data["warnings"] == [] and data["source"] == "model" and data["via_daemon"] is False
    assert isinstance(data["timing_ms"], float)


def test_danger_warning_goes_to_stderr(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "do something danger")
    assert result.exit_code == 0
    assert result.stdout == "rm -rf /\n"
    warnings = result.stderr.splitlines()
    assert warnings and all(w.startswith("nl2cmd: warning: ") for w in warnings)
    data = json.loads(run("--no-daemon", "--json", "danger").stdout)
    assert data["warnings"]


def test_backend_failure_is_one_error_line(nl2cmd_home: Path) -> None:
    line = one_error_line(run("--no-daemon", "please fail"))
    assert line == "nl2cmd: error: fake backend failure requested"


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "\x1b[31m\x07"])
def test_empty_instruction(nl2cmd_home: Path, text: str) -> None:
    assert "empty instruction" in one_error_line(run("--no-daemon", "--", text))


def test_no_words_at_all_is_an_empty_instruction(nl2cmd_home: Path) -> None:
    assert "empty instruction" in one_error_line(run("suggest", "--no-daemon"))


def test_too_long_instruction(nl2cmd_home: Path) -> None:
    line = one_error_line(run("--no-daemon", "x" * (MAX_REQUEST_CHARS + 1)))
    assert "too long" in line and str(MAX_REQUEST_CHARS) in line
    assert run("--no-daemon", "x" * MAX_REQUEST_CHARS).exit_code == 0


def test_control_characters_and_ansi_are_stripped(nl2cmd_home: Path) -> None:
    result = run("--no-daemon", "list \x1b[31mred\x1b[0m files\x07\x9b")
    assert result.exit_code == 0
    assert result.stdout == "printf '%s\\n' 'list red files'\n"


def test_invalid_utf8_argv_is_replaced(nl2cmd_home: Path) -> None:
    arg = b"list caf\xe9 files".decode("utf-8", "surrogateescape")
    assert clean_arg(arg) == "list caf\ufffd files"
    assert clean_arg("lone \ud800") == "lone ?"
    result = run("--no-daemon", arg)
    assert result.exit_code == 0
    assert result.stdout == "printf '%s\\n' 'list caf\ufffd files'\n"


def test_invalid_utf8_argv_in_a_real_process(nl2cmd_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tinyllm.cli.app", "--no-daemon", b"caf\xe9 \xff\xfe"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == "printf '%s\\n' 'caf\ufffd \ufffd\ufffd'\n"
    assert b"Traceback" not in proc.stderr


def test_usage_errors_exit_2_with_one_line(nl2cmd_home: Path) -> None:
    for args in (["--no-daemon", "--platform", "windows", "x"], ["--bogus", "x"], ["-n", "many", "x"],
                 ["daemon", "explode"], ["init", "tcsh"], ["forget", "one"]):
        line = one_error_line(run(*args), code=2)
        assert "--help" in line


def test_version_and_help() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith(f"nl2cmd {__version__} (protocol ")
    for args in ([], ["--help"], ["-h"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout and "learn" in result.stdout
    assert "--num" in run("suggest", "--help").stdout


def test_missing_model_is_an_error_not_a_fallback(nl2cmd_home: Path) -> None:
    line = one_error_line(run("--no-daemon", "--model", str(nl2cmd_home / "nope.npz"), "x"))
    assert "cannot load the model" in line and "nope.npz" in line


def test_default_group_only_redirects_non_commands() -> None:
    assert isinstance(cli, DefaultGroup)
    assert {"suggest", "repl", "daemon", "init", "learn", "forget"} <= set(cli.commands)


# ---------------------------------------------------------------------------------------------- daemon path


def test_default_path_uses_the_daemon(nl2cmd_home: Path) -> None:
    first = run("--json", "hello there")
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["via_daemon"] is True and data["command"] == "printf '%s\\n' 'hello there'"
    pid = int((nl2cmd_home / "run" / "nl2cmd.pid").read_text())
    second = run("hello", "again")
    assert second.stdout == "printf '%s\\n' 'hello again'\n" and second.stderr == ""
    assert int((nl2cmd_home / "run" / "nl2cmd.pid").read_text()) == pid
    assert one_error_line(run("fail via daemon")) == "nl2cmd: error: fake backend failure requested"


def test_unusable_runtime_dir_falls_back_in_process(nl2cmd_home: Path) -> None:
    (nl2cmd_home / "run").write_text("not a directory")
    result = run("list files")
    assert result.exit_code == 0
    assert result.stdout == "printf '%s\\n' 'list files'\n"
    assert result.stderr.startswith("nl2cmd: daemon unavailable (")
    assert result.stderr.rstrip().endswith("; generating in-process")
    assert json.loads(run("--json", "x").stdout)["via_daemon"] is False


def test_daemon_missing_model_is_fatal_without_fallback(nl2cmd_home: Path) -> None:
    line = one_error_line(run("--model", str(nl2cmd_home / "nope.npz"), "list files"))
    assert "cannot load the model" in line and "nope.npz" in line
    line = one_error_line(run("daemon", "start", "--model", str(nl2cmd_home / "nope.npz")))
    assert "cannot load the model" in line


def test_daemon_commands(nl2cmd_home: Path) -> None:
    status = run("daemon", "status")
    assert status.exit_code == 1 and "not running" in status.stdout
    started = run("daemon", "start", "--idle-timeout", "60")
    assert started.exit_code == 0 and "running (pid" in started.stdout
    status = run("daemon", "status")
    assert status.exit_code == 0 and f"backend {FAKE_BACKEND}" in status.stdout and "idle timeout: 60.0" in status.stdout
    info = json.loads(run("daemon", "status", "--json").stdout)
    assert info["running"] is True and info["protocol"] == 1 and info["version"] == __version__
    restarted = run("daemon", "restart")
    assert restarted.exit_code == 0
    new_info = json.loads(run("daemon", "status", "--json").stdout)
    assert new_info["pid"] != info["pid"]
    stopped = run("daemon", "stop")
    assert stopped.exit_code == 0 and f"stopped (pid {new_info['pid']})" in stopped.stdout
    assert run("daemon", "stop").stdout == "nl2cmd daemon not running\n"
    assert json.loads(run("daemon", "status", "--json").stdout) == {"running": False}


# ---------------------------------------------------------------------------------------------- learn / forget


def test_learn_list_forget_round_trip(nl2cmd_home: Path) -> None:
    listed = run("learn", "--list")
    assert listed.exit_code == 0 and listed.stdout == "" and "no learnt pairs" in listed.stderr
    learnt = run("learn", "Deploy the site", "rsync -av public/ web:/srv/www/")
    assert learnt.exit_code == 0 and learnt.stdout.startswith("learnt 1: Deploy the site")
    run("learn", "--platform", "macos", "show uptime", "uptime")
    listed = run("learn", "--list").stdout.splitlines()
    assert listed == ["  1  Deploy the site  =>  rsync -av public/ web:/srv/www/", "  2  show uptime  =>  uptime [macos]"]
    # The fake backend answers a learnt instruction (exact, case-insensitive) from the pair.
    data = json.loads(run("--no-daemon", "--json", "deploy the SITE").stdout)
    assert (data["command"], data["source"]) == ("rsync -av public/ web:/srv/www/", "user")
    forgot = run("forget", "1")
    assert forgot.exit_code == 0 and "forgot 1: Deploy the site" in forgot.stdout
    assert run("learn", "--list").stdout.splitlines() == ["  1  show uptime  =>  uptime [macos]"]
    assert "no pair number 5" in one_error_line(run("forget", "5"))


def test_spaces_inside_quotes_survive_output(nl2cmd_home: Path) -> None:
    run("learn", "say hi", 'echo "a   b"\x1b[2J')
    assert run("--no-daemon", "say hi").stdout == 'echo "a   b"\n'


def test_learn_warns_about_dangerous_commands(nl2cmd_home: Path) -> None:
    result = run("learn", "clean everything", "rm -rf /")
    assert result.exit_code == 0 and "nl2cmd: warning: " in result.stderr


def test_learn_usage_and_validation(nl2cmd_home: Path) -> None:
    one_error_line(run("learn"), code=2)
    one_error_line(run("learn", "only instruction"), code=2)
    one_error_line(run("learn", "--list", "x", "y"), code=2)
    assert "empty command" in one_error_line(run("learn", "x", "  "))
    assert "empty instruction" in one_error_line(run("learn", "\x07", "ls"))


def test_learn_import(nl2cmd_home: Path, tmp_path: Path) -> None:
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"instruction": "a b", "command": "ls"}\nnot json\n{"instruction": "c d", "command": "pwd"}\n')
    result = run("learn", "--import", str(src))
    assert result.exit_code == 0
    assert result.stdout == "imported 2 new, 0 updated, 1 skipped\n"
    assert result.stderr.startswith("nl2cmd: warning: skipped ") and ":2: invalid JSON" in result.stderr
    assert len(run("learn", "--list").stdout.splitlines()) == 2
    assert "no such file" in one_error_line(run("learn", "--import", str(tmp_path / "missing.jsonl")))


def test_malformed_pairs_file_is_reported_not_fatal(nl2cmd_home: Path) -> None:
    pairs = nl2cmd_home / "data" / "user_pairs.jsonl"
    pairs.parent.mkdir(parents=True)
    pairs.write_text('garbage\n{"instruction": "x y", "command": "ls"}\n')
    listed = run("learn", "--list")
    assert listed.exit_code == 0 and listed.stdout == "  1  x y  =>  ls\n"
    assert ":1: invalid JSON" in listed.stderr
    assert run("--no-daemon", "x y").stdout == "ls\n"


# ---------------------------------------------------------------------------------------------- init, repl


def test_init_prints_a_shell_script(nl2cmd_home: Path) -> None:
    pytest.importorskip("tinyllm.cli.shell_init")
    for shell in ("bash", "zsh", "fish"):
        result = run("init", shell)
        assert result.exit_code == 0 and "nl2cmd" in result.stdout and "\x1b" not in result.stdout
    bound, unbound = run("init", "bash").stdout, run("init", "bash", "--no-bind").stdout
    assert bound != unbound
    assert run("init", "zsh", "--key", "ctrl-t").exit_code == 0
    one_error_line(run("init", "bash", "--key", "not a key at all!"))


def test_repl_with_piped_input(nl2cmd_home: Path) -> None:
    result = run("repl", "--no-daemon", "-n", "2", input="list files\n\nplease fail\n  \nshow danger\nexit\nnever\n")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["printf '%s\\n' 'list files'", "echo 2", "rm -rf /", "echo 2"]
    errors = result.stderr.splitlines()
    assert errors[0] == "nl2cmd: error: fake backend failure requested"
    assert errors[1].startswith("nl2cmd: warning: ")


def test_repl_prompt_toolkit_session_writes_history(tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from tinyllm.cli.repl import run_repl

    seen: list[str] = []
    history = tmp_path / "history"
    with create_pipe_input() as pipe:
        pipe.send_text("list files\r\r  show disk usage \r")
        pipe.send_text("\x04")  # Ctrl-D on an empty line exits
        assert run_repl(seen.append, history, input=pipe, output=DummyOutput()) == 0
    assert seen == ["list files", "show disk usage"]
    assert "list files" in history.read_text() and "show disk usage" in history.read_text()


# ---------------------------------------------------------------------------------------------- settings, paths


def test_config_file_sets_defaults(nl2cmd_home: Path) -> None:
    config = nl2cmd_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('# defaults\nnum = 2  # two\nplatform = "macos"\nno_daemon = true\n')
    result = run("--json", "x")
    data = json.loads(result.stdout)
    assert len(data["alternatives"]) == 2 and data["via_daemon"] is False
    assert result.stderr == ""
    # Command-line options win over the file.
    assert run("-n", "1", "x").stdout.count("\n") == 1
    assert json.loads(run("--daemon", "--json", "x").stdout)["via_daemon"] is True


def test_bad_config_lines_are_warnings(nl2cmd_home: Path) -> None:
    config = nl2cmd_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("num = 99\ncolour = 'red'\nnonsense\nno_daemon = true\n")
    result = run("x")
    assert result.exit_code == 0 and result.stdout == "printf '%s\\n' x\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3 and all(w.startswith("nl2cmd: warning: ") for w in warnings)
    assert "config.toml:1: num must be" in warnings[0] and ":2: unknown setting 'colour'" in warnings[1]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('platform = "linux"', {"platform": "linux"}),
        ("platform = 'macos' # comment", {"platform": "macos"}),
        ("num = 3\nidle_timeout = 1.5\nstart_timeout = 2\ntimeout = 1_000", {"num": 3, "idle_timeout": 1.5,
                                                                               "start_timeout": 2.0, "timeout": 1000.0}),
        ("no_daemon = false\nno-daemon = true", {"no_daemon": True}),
        ('model = "~/m#1.npz" # the model', {"model": os.path.expanduser("~/m#1.npz")}),
        ('model = "a \\"b\\" c"', {"model": 'a "b" c'}),
        ("idle_timeout = 0", {"idle_timeout": 0.0}),
    ],
)
def test_settings_parser_accepts(text: str, expected: dict) -> None:
    values, warnings = settings.parse_text(text)
    assert (values, warnings) == (expected, [])


@pytest.mark.parametrize(
    "text",
    ["num = 0", "num = true", "num = 2.5", "platform = windows", "platform = 'windows'", "no_daemon = 1",
     "timeout = 0", "timeout = -1", "idle_timeout = nan", "idle_timeout = inf", "model = ''", 'model = "unclosed',
     "[section]", "just words", "unknown = 1", "num ="],
)
def test_settings_parser_rejects(text: str) -> None:
    values, warnings = settings.parse_text(text, "cfg")
    assert values == {} and len(warnings) == 1 and warnings[0].startswith("cfg:1: ")


def test_settings_load_and_overrides(tmp_path: Path) -> None:
    assert settings.load(tmp_path / "missing.toml") == (settings.Settings(), [])
    (tmp_path / "c.toml").write_bytes(b"num = 4\n\xff\xfe = 1\n")
    loaded, warnings = settings.load(tmp_path / "c.toml")
    assert loaded.num == 4 and len(warnings) == 1
    assert loaded.with_overrides(num=None, platform="linux").num == 4
    assert loaded.with_overrides(num=1).num == 1


def test_nl2cmd_home_moves_all_state(nl2cmd_home: Path) -> None:
    p = paths.resolve()
    for location in (p.config_file, p.user_pairs, p.history, p.log, p.socket, p.pid, p.lock, p.cache_dir):
        assert nl2cmd_home in location.parents
    assert len(str(p.socket)) < paths.MAX_SOCKET_PATH


def test_default_paths_without_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NL2CMD_HOME", raising=False)
    p = paths.resolve()
    assert p.config_dir.name == "nl2cmd" and p.data_dir.name == "nl2cmd"
    assert len(str(p.socket)) <= paths.MAX_SOCKET_PATH


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rules are computed directly on Linux only")
@pytest.mark.parametrize("xdg", [False, True])
def test_default_dirs_follow_platformdirs_without_importing_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               xdg: bool) -> None:
    import platformdirs

    monkeypatch.delenv("NL2CMD_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var, sub in (("XDG_CONFIG_HOME", "c"), ("XDG_DATA_HOME", "d"), ("XDG_STATE_HOME", "s"), ("XDG_CACHE_HOME", "k")):
        if xdg:
            monkeypatch.setenv(var, str(tmp_path / sub))
        else:
            monkeypatch.delenv(var, raising=False)
    loc = paths.locate()
    assert (loc.config_dir, loc.data_dir, loc.state_dir, loc.cache_dir) == (
        platformdirs.user_config_dir("nl2cmd", appauthor=False), platformdirs.user_data_dir("nl2cmd", appauthor=False),
        platformdirs.user_state_dir("nl2cmd", appauthor=False), platformdirs.user_cache_dir("nl2cmd", appauthor=False))
    assert loc.paths() == paths.resolve() and str(loc.paths().socket) == loc.socket


def test_ensure_private_dir(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir(mode=0o755)
    paths.ensure_dir(target, private=True)
    assert (target.stat().st_mode & 0o777) == 0o700
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(paths.StateDirError):
        paths.ensure_dir(link, private=True)
