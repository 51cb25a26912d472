"""Tests for tinyllm.cli.shell_init: rendering the bash/zsh/fish widgets and key parsing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tinyllm.cli.shell_init import SUPPORTED_SHELLS, Key, parse_key, render


def _check_syntax(shell: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"widget.{shell}"
    path.write_text(script, encoding="utf-8")
    return subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=30)


def test_supported_shells() -> None:
    assert SUPPORTED_SHELLS == ("bash", "zsh", "fish")


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_render_defaults(shell: str) -> None:
    script = render(shell)
    assert "__nl2cmd_widget" in script
    assert "@NL2CMD" not in script, "a template marker was left in the rendered script"
    assert "nl2cmd suggest" not in script  # the executable goes through a variable, not hard-coded
    assert " suggest -- " in script
    assert "</dev/null" in script  # the CLI never reads the terminal
    expected = {
        "bash": ["bind -m emacs-standard -x '\"\\C-g\": __nl2cmd_widget'", "bind -m vi-insert -x '\"\\C-g\""],
        "zsh": ["bindkey -M emacs '^G' __nl2cmd_widget", "bindkey -M viins '^G' __nl2cmd_widget"],
        "fish": ["bind \\cg __nl2cmd_widget", "bind -M insert \\cg __nl2cmd_widget"],
    }[shell]
    for line in expected:
        assert line in script
    guard = {"bash": "[[ $- == *i* ]]", "zsh": "[[ -o interactive ]]", "fish": "status is-interactive"}[shell]
    assert guard in script


def test_zsh_registers_widget_before_binding() -> None:
    script = render("zsh")
    assert script.index("zle -N __nl2cmd_widget") < script.index("bindkey")


def test_zsh_keeps_ctrl_g_cancelling_isearch() -> None:
    assert "bindkey -M isearch '^G' send-break" in render("zsh")
    assert "isearch" not in render("zsh", key="alt-j")


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
@pytest.mark.parametrize("bind", [True, False])
def test_rendered_script_syntax(shell: str, bind: bool, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    result = _check_syntax(shell, render(shell, key="alt-j", bind=bind), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("bind", [True, False])
def test_shellcheck_bash(bind: bool, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (CI installs it)")
    path = tmp_path / "widget.bash"
    path.write_text(render("bash", bind=bind), encoding="utf-8")
    result = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_problems(tmp_path: Path) -> None:
    """The shellcheck test above can fail: a broken script is reported."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (CI installs it)")
    path = tmp_path / "bad.bash"
    path.write_text(render("bash") + "echo $undefined_and_unquoted\n", encoding="utf-8")
    result = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("key", "bash", "zsh", "fish"),
    [
        ("ctrl-g", "\\C-g", "^G", "\\cg"),
        ("Ctrl+G", "\\C-g", "^G", "\\cg"),
        ("C-x", "\\C-x", "^X", "\\cx"),
        ("\\C-g", "\\C-g", "^G", "\\cg"),
        ("^G", "\\C-g", "^G", "\\cg"),
        ("^t", "\\C-t", "^T", "\\ct"),
        ("\\cg", "\\C-g", "^G", "\\cg"),
        ("alt-j", "\\ej", "^[j", "\\ej"),
        ("M-j", "\\ej", "^[j", "\\ej"),
        ("meta-.", "\\e.", "^[.", "\\e."),
        ("\\M-j", "\\ej", "^[j", "\\ej"),
        ("\\ej", "\\ej", "^[j", "\\ej"),
        ("^[j", "\\ej", "^[j", "\\ej"),
        ("alt-J", "\\eJ", "^[J", "\\eJ"),
        ("ctrl-alt-g", "\\e\\C-g", "^[^G", "\\e\\cg"),
        ("alt-ctrl-g", "\\e\\C-g", "^[^G", "\\e\\cg"),
        ("  ctrl-g  ", "\\C-g", "^G", "\\cg"),
    ],
)
def test_key_conversion(key: str, bash: str, zsh: str, fish: str) -> None:
    parsed = parse_key(key)
    assert parsed.for_shell("bash") == bash
    assert parsed.for_shell("zsh") == zsh
    assert parsed.for_shell("fish") == fish


def test_key_str() -> None:
    assert str(parse_key("^G")) == "ctrl-g"
    assert str(parse_key("\\e\\C-x")) == "ctrl-alt-x"
    assert parse_key("alt-j") == Key(char="j", alt=True)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "unsupported key"),
        ("g", "unsupported key"),  # no modifier: would take over a plain letter
        ("ctrl-", "unsupported key"),
        ("ctrl-gg", "unsupported key"),
        ("ctrl-1", "Ctrl combines with a letter"),
        ("ctrl-c", "interrupt"),
        ("ctrl-m", "Enter"),
        ("ctrl-i", "Tab"),
        ("alt-'", "Alt combines"),
        ("alt-;", "Alt combines"),
        ("alt- ", "unsupported key"),
        ("shift-g", "unsupported key"),
        ("F5", "unsupported key"),
    ],
)
def test_bad_key(key: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        parse_key(key)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError):
        render("bash", key=key)


@pytest.mark.parametrize("shell", ["tcsh", "powershell", "", "Bash", "sh"])
def test_bad_shell(shell: str) -> None:
    with pytest.raises(ValueError, match="unsupported shell") as info:
        render(shell)
    assert "bash, zsh, fish" in str(info.value)


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_key_changes_binding(shell: str) -> None:
    default = render(shell)
    custom = render(shell, key="alt-j")
    seq = {"bash": '"\\ej": __nl2cmd_widget', "zsh": "'^[j' __nl2cmd_widget", "fish": "\\ej __nl2cmd_widget"}[shell]
    old = {"bash": '"\\C-g"', "zsh": "'^G'", "fish": "\\cg"}[shell]
    assert seq in custom and seq not in default
    assert old in default and old not in custom
    assert render(shell, key="ctrl-g") == default


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_no_bind_only_defines_widget(shell: str) -> None:
    script = render(shell, bind=False)
    assert "__nl2cmd_widget()" in script or "function __nl2cmd_widget" in script
    for word in ("bindkey ", "bind -m", "bind \\", "bind -M"):
        assert word not in script
    assert "--no-bind" in script
    if shell == "zsh":
        assert "zle -N __nl2cmd_widget" in script  # still usable with the user's own bindkey
    # The key is still validated, so a typo is reported even with --no-bind.
    with pytest.raises(ValueError):
        render(shell, key="nope", bind=False)


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_executable_name_is_substituted(shell: str) -> None:
    assert "${NL2CMD_BIN:-nl2cmd}" in render("bash") and "${NL2CMD_BIN:-nl2cmd}" in render("zsh")
    assert "set -l bin nl2cmd\n" in render("fish")
    custom = render(shell, exe="/opt/my tools/nl2cmd")
    quoted = "'/opt/my tools/nl2cmd'"
    assert quoted in custom
    assert "NL2CMD_BIN" in custom  # still overridable at run time
    with pytest.raises(ValueError):
        render(shell, exe="")


def test_fish_quoting_of_executable() -> None:
    assert "'/o\\'dd\\\\/nl2cmd'" in render("fish", exe="/o'dd\\/nl2cmd")
    assert "'/o'\"'\"'dd/nl2cmd'" in render("bash", exe="/o'dd/nl2cmd")


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_rendered_script_loads_once_and_defines_widget(shell: str, tmp_path: Path) -> None:
    """Source the script twice in a forced-interactive shell: it defines the widget, no errors."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"widget.{shell}"
    path.write_text(render(shell, bind=False), encoding="utf-8")
    if shell == "fish":
        argv = ["fish", "--no-config", "-i", "-c", f"source {path}; source {path}; functions -q __nl2cmd_widget; and echo DEFINED"]
    elif shell == "zsh":
        argv = ["zsh", "-f", "-i", "-c", f"source {path}; source {path}; whence -w __nl2cmd_widget"]
    else:
        argv = ["bash", "--norc", "--noprofile", "-i", "-c", f"source {path}; source {path}; type -t __nl2cmd_widget"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert ("DEFINED" if shell == "fish" else "function") in result.stdout
    assert "nl2cmd" not in result.stderr  # no warnings from the script itself


@pytest.mark.parametrize("shell", SUPPORTED_SHELLS)
def test_guard_variable_prevents_reloading(shell: str, tmp_path: Path) -> None:
    """With the guard already set (a second eval), the script defines and binds nothing."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"widget.{shell}"
    path.write_text(render(shell), encoding="utf-8")
    if shell == "fish":
        code = f"set -g __nl2cmd_loaded 1; source {path}; functions -q __nl2cmd_widget; or echo ABSENT"
        argv = ["fish", "--no-config", "-i", "-c", code]
    elif shell == "zsh":
        argv = ["zsh", "-f", "-i", "-c", f"__NL2CMD_LOADED=1; source {path}; whence -w __nl2cmd_widget || echo ABSENT"]
    else:
        code = f"__NL2CMD_LOADED=1; source {path}; type -t __nl2cmd_widget || echo ABSENT"
        argv = ["bash", "--norc", "--noprofile", "-i", "-c", code]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert "ABSENT" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_not_loaded_in_non_interactive_shell(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"widget.{shell}"
    path.write_text(render(shell), encoding="utf-8")
    check = "whence -w __nl2cmd_widget" if shell == "zsh" else "type -t __nl2cmd_widget"
    result = subprocess.run([shell, "-c", f"source {path}; {check} || echo ABSENT"], capture_output=True, text=True, timeout=30)
    assert "ABSENT" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(("shell", "default_seq"), [("bash", '"\\ee": __nl2cmd_explain_widget'),
                                                     ("zsh", "'^[e' __nl2cmd_explain_widget"),
                                                     ("fish", "bind \\ee __nl2cmd_explain_widget")])
def test_explain_key_default_custom_and_none(shell: str, default_seq: str) -> None:
    from tinyllm.cli.shell_init import render

    assert default_seq in render(shell)
    custom = render(shell, explain_key="alt-x")
    assert "__nl2cmd_explain_widget" in custom and default_seq not in custom
    off = render(shell, explain_key="none")
    assert not any("explain_widget" in line and ("bind" in line) for line in off.splitlines())
    assert "__nl2cmd_explain_widget" in off  # the widget is still defined, for binding by hand
    with pytest.raises(ValueError, match="suggestion key too"):
        render(shell, key="alt-e")
    with pytest.raises(ValueError):
        render(shell, explain_key="ctrl-c")
