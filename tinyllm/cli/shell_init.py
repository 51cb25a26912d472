"""Render the shell widgets printed by `nl2cmd init SHELL` (bash, zsh, fish).

The scripts live in the `tinyllm.shell` package data (shell/nl2cmd.{bash,zsh,fish}).  Rendering
substitutes the key binding lines and the name of the nl2cmd executable, and writes the request
function the bash and zsh widgets share (shell/ask.sh) where their scripts say so.  Keys are accepted in a
friendly form ("ctrl-g", "alt-j", "ctrl-alt-g") or in the usual shell notations ("\\C-g", "^G",
"\\M-j", "\\ej", "\\cg") and converted for each shell.

Standard library only: `nl2cmd init` runs on the thin client path (no numpy/torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

SUPPORTED_SHELLS: tuple[str, ...] = ("bash", "zsh", "fish")
DEFAULT_KEY = "ctrl-g"
DEFAULT_EXPLAIN_KEY = "alt-e"
NO_KEY = frozenset({"none", "off", ""})
DEFAULT_EXE = "nl2cmd"

_EXE_MARK = "@NL2CMD_EXE@"
# The line in each script replaced by the key bindings (bash writes it after a `:` no-op command).
_BIND_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<colon>: )?# @NL2CMD_BINDINGS@[ \t]*$", re.MULTILINE)
_WIDGET = "__nl2cmd_widget"
_EXPLAIN_WIDGET = "__nl2cmd_explain_widget"
# The line in the bash and zsh scripts replaced by shell/ask.sh (valid in both shells).
_ASK_RE = re.compile(r"^(?P<indent>[ \t]*)# @NL2CMD_ASK@[ \t]*$", re.MULTILINE)

# Ctrl keys that cannot work or would break the line editor: ^C and ^Z are taken by the terminal
# (SIGINT, SIGTSTP); ^I is Tab, ^J and ^M are Enter.
_RESERVED_CTRL = {"c": "interrupt (SIGINT)", "z": "suspend (SIGTSTP)", "i": "Tab", "j": "Enter", "m": "Enter"}
# Characters usable with Alt: written unquoted/unescaped in all three shells' binding syntaxes.
_ALT_CHARS = re.compile(r"[A-Za-z0-9.,/]")

# Modifier prefixes, tried in order at the start of the (remaining) key text.
_PREFIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:ctrl|control|ctl|c)[-+]", re.IGNORECASE), "ctrl"),
    (re.compile(r"(?:alt|meta|opt|option|m)[-+]", re.IGNORECASE), "alt"),
    (re.compile(r"\\C-"), "ctrl"),  # readline \C-g
    (re.compile(r"\\M-"), "alt"),  # readline \M-j
    (re.compile(r"\\c(?=.)"), "ctrl"),  # fish \cg
    (re.compile(r"\\e|\^\["), "alt"),  # ESC prefix: \ej (readline, fish), ^[j (zsh)
    (re.compile(r"\^(?=.)"), "ctrl"),  # caret notation ^G
)


@dataclass(frozen=True)
class Key:
    """A parsed key: one character with optional Ctrl and Alt modifiers."""

    char: str
    ctrl: bool = False
    alt: bool = False

    def for_shell(self, shell: str) -> str:
        """The key sequence in `shell`'s binding notation (bash readline, zsh bindkey, fish bind)."""
        if shell == "bash":
            return ("\\e" if self.alt else "") + (f"\\C-{self.char}" if self.ctrl else self.char)
        if shell == "zsh":
            return ("^[" if self.alt else "") + (f"^{self.char.upper()}" if self.ctrl else self.char)
        if shell == "fish":
            return ("\\e" if self.alt else "") + (f"\\c{self.char}" if self.ctrl else self.char)
        raise ValueError(_shell_error(shell))

    def __str__(self) -> str:
        return ("ctrl-" if self.ctrl else "") + ("alt-" if self.alt else "") + self.char


def _shell_error(shell: str) -> str:
    return f"unsupported shell {shell!r}; choose one of: {', '.join(SUPPORTED_SHELLS)}"


def parse_key(key: str) -> Key:
    """Parse a key description such as "ctrl-g", "alt-j", "ctrl-alt-g", "\\C-g", "^G", "\\ej".

    Ctrl combines with a letter (case-insensitive); Alt alone combines with a letter, digit or
    one of ".,/".  Raises ValueError with a one-line explanation for anything else.
    """
    text = key.strip()
    rest = text
    ctrl = alt = False
    progress = True
    while progress and len(rest) > 1:
        progress = False
        for pattern, modifier in _PREFIXES:
            m = pattern.match(rest)
            if m and len(rest) > m.end():
                if modifier == "ctrl":
                    ctrl = True
                else:
                    alt = True
                rest = rest[m.end():]
                progress = True
                break
    hint = 'use a form like "ctrl-g", "alt-j" or "ctrl-alt-g"'
    if not text or len(rest) != 1 or not (ctrl or alt):
        raise ValueError(f"unsupported key {key!r}: {hint}")
    char = rest
    if ctrl:
        char = char.lower()
        if not ("a" <= char <= "z"):
            raise ValueError(f"unsupported key {key!r}: Ctrl combines with a letter only ({hint})")
        if char in _RESERVED_CTRL:
            raise ValueError(f"unsupported key {key!r}: ctrl-{char} is {_RESERVED_CTRL[char]}; pick another key")
    elif not _ALT_CHARS.fullmatch(char):
        raise ValueError(f"unsupported key {key!r}: Alt combines with a letter, a digit or one of . , / ({hint})")
    return Key(char=char, ctrl=ctrl, alt=alt)


def _bindings(shell: str, key: Key, widget: str = _WIDGET) -> list[str]:
    """Binding lines for every keymap the widget works in (emacs, vi insert, vi command)."""
    seq = key.for_shell(shell)
    if shell == "bash":
        # bind -x runs a shell function that may edit READLINE_LINE/READLINE_POINT.
        return [f"\\builtin bind -m {km} -x '\"{seq}\": {widget}'" for km in ("emacs-standard", "vi-insert", "vi-command")]
    if shell == "zsh":
        lines = [f"\\builtin bindkey -M {km} '{seq}' {widget}" for km in ("emacs", "viins", "vicmd")]
        if key == Key("g", ctrl=True) and widget == _WIDGET:
            # Keys unbound in the isearch keymap end a Ctrl-R search and then run their main-keymap
            # widget: keep Ctrl-G meaning "cancel the search" there, as it does by default.
            lines.append("\\builtin bindkey -M isearch '^G' send-break")
        return lines
    # fish: the "default" mode (emacs bindings, or vi normal mode) plus vi insert mode.
    return [f"bind {seq} {widget}", f"bind -M insert {seq} {widget}"]


def _quote(shell: str, word: str) -> str:
    """Quote `word` as a literal for `shell` (bare when it is a simple name or path)."""
    if re.fullmatch(r"[A-Za-z0-9_./+:@%-]+", word):
        return word
    if shell == "fish":
        # In fish single quotes only \\ and \' are escapes.
        return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + word.replace("'", "'\"'\"'") + "'"


def render(shell: str, key: str | None = None, bind: bool = True, *, exe: str = DEFAULT_EXE,
           explain_key: str | None = None) -> str:
    """The widget script for `shell`, ready for `eval "$(nl2cmd init SHELL)"` / `| source`.

    key: the key that triggers the suggestion widget (default ctrl-g); explain_key: the key that
    explains the command line (default alt-e; "none" binds none); bind=False only defines the widget
    functions (`__nl2cmd_widget`, `__nl2cmd_explain_widget`) so users can bind them themselves.  exe:
    the nl2cmd executable the script calls (NL2CMD_BIN overrides it at run time).  Raises ValueError
    for an unknown shell or key, or the same key for both widgets.
    """
    if shell not in SUPPORTED_SHELLS:
        raise ValueError(_shell_error(shell))
    parsed = parse_key(DEFAULT_KEY if key is None else key)
    explain_text = DEFAULT_EXPLAIN_KEY if explain_key is None else explain_key
    explain_parsed = None if explain_text.strip().lower() in NO_KEY else parse_key(explain_text)
    if explain_parsed == parsed:
        raise ValueError(f"the explain key {explain_text!r} is the suggestion key too; pick another (or 'none')")
    if not exe or "\n" in exe or "\0" in exe:
        raise ValueError(f"invalid nl2cmd executable {exe!r}")
    package = resources.files("tinyllm.shell")
    script = package.joinpath(f"nl2cmd.{shell}").read_text(encoding="utf-8")
    marker = _BIND_RE.search(script)
    if marker is None or _EXE_MARK not in script or (shell != "fish") != bool(_ASK_RE.search(script)):
        raise RuntimeError(f"the packaged {shell} widget script is missing its template markers")
    if shell != "fish":
        ask = package.joinpath("ask.sh").read_text(encoding="utf-8").rstrip("\n").split("\n")
        script = _ASK_RE.sub(lambda m: "\n".join(m.group("indent") + line if line else line for line in ask), script)
        marker = _BIND_RE.search(script)
    indent, colon = marker.group("indent"), marker.group("colon") or ""
    if bind:
        lines = _bindings(shell, parsed)
        if explain_parsed is not None:
            lines += _bindings(shell, explain_parsed, _EXPLAIN_WIDGET)
        block = "\n".join(indent + line for line in lines)
    else:
        # bash keeps its `:` so the enclosing branch is never empty.
        block = f"{indent}{colon}# key bindings skipped (--no-bind): bind {_WIDGET} and {_EXPLAIN_WIDGET} yourself"
    script = script[: marker.start()] + block + script[marker.end():]
    return script.replace(_EXE_MARK, _quote(shell, exe))
