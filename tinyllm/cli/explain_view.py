"""``nl2cmd explain``: print a command's explanation (tinyllm.knowledge.explain) for a terminal or as JSON.

Text output is aligned in two columns (what is explained, then the manual's words) and wrapped to the
terminal width; colours only when stdout is a terminal (and NO_COLOR is unset). Nothing here starts
the model daemon: explanations need only the man pages and the model's index file.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from tinyllm.knowledge.explain import Explanation, Part, explain
from tinyllm.knowledge.text import strip_control

from .frontend import FrontendError, write_line

MAX_COMMAND = 4000
LABEL_MAX = 24
_BOLD, _DIM, _YELLOW, _RED, _RESET = "\033[1m", "\033[2m", "\033[33m", "\033[31m", "\033[0m"


class UsageError(FrontendError):
    """Bad arguments to ``nl2cmd explain`` (exit status 2)."""

    exit_code = 2


def index_path() -> Path | None:
    """The retrieval index beside the configured model (``model.idx``), else the shipped one."""
    from tinyllm.formats.paths import locate
    from tinyllm.formats.settings import load

    try:
        settings, _ = load(locate().config_file)
        model = settings.model
    except Exception:
        model = None
    if model:
        return Path(os.path.expanduser(model)).with_suffix(".idx")
    return Path(__file__).resolve().parents[1] / "models" / "default.idx"


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(20, width), break_long_words=True, break_on_hyphens=False) or [""]


def _shown(part: Part) -> bool:
    return bool(part.text) and part.kind not in ("warning", "error")


def _source(part: Part) -> str:
    if part.source.startswith("man:"):
        return part.source[4:]
    return part.source if part.source in ("tldr", "bash help") else ""


def render_text(exp: Explanation, width: int = 80, color: bool = False) -> list[str]:
    """The explanation as terminal lines (no trailing newlines), at most `width` columns each."""
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color and text else text

    lines: list[str] = []
    for part in exp.parts:
        if part.kind == "warning":
            lines += [paint(_YELLOW, line) for line in _wrap(f"warning: {strip_control(part.text)}", width)]
    shown = [p for p in exp.parts if _shown(p)]
    indents = [2 * p.depth + (0 if p.kind in ("program", "operator", "comment") else 2) for p in shown]
    labels = [" ".join(strip_control(p.label).split()) for p in shown]
    fitting = [len(lab) + ind for lab, ind in zip(labels, indents) if len(lab) + ind <= LABEL_MAX]
    column = min(LABEL_MAX, max(fitting, default=8)) + 2
    text_width = max(24, width - column)
    if text_width + column > width:
        column = max(4, width - text_width)
    for part, label, indent in zip(shown, labels, indents):
        text = strip_control(part.text)
        source = _source(part) if part.kind in ("program", "subcommand") else ""
        if source:
            text = f"{text} ({source})"
        body = _wrap(text, max(20, width - column))
        head = " " * indent + label
        if not part.found:
            body = [paint(_DIM, b) for b in body]
        elif source and color:
            body[-1] = body[-1][: len(body[-1]) - len(source) - 2] + paint(_DIM, f"({source})")
        if len(head) + 1 < column:
            lines.append(paint(_BOLD, head) + " " * (column - len(head)) + body[0])
            rest = body[1:]
        else:
            lines.append(paint(_BOLD, head))
            rest = body
        lines += [" " * column + b for b in rest]
    for part in exp.parts:
        if part.kind == "error":
            lines += [paint(_RED, line) for line in _wrap(strip_control(part.text), width)]
    if not shown and not exp.parts:
        lines.append("nothing to explain")
    return lines


def terminal_width(stream: object) -> int:
    """Columns of the terminal `stream` writes to; $COLUMNS or 80 when it is not one."""
    try:
        if stream is not None and stream.isatty():  # type: ignore[attr-defined]
            columns = os.get_terminal_size(stream.fileno()).columns  # type: ignore[attr-defined]
            if columns > 0:  # a pseudo-terminal without a size says 0
                return max(20, columns)
    except (AttributeError, ValueError, OSError):
        pass
    try:
        return max(20, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 80


def commands_from(words: list[str], stdin: object = None) -> list[str]:
    """The command(s) to explain: the words joined, or each non-empty line of stdin for ``-``."""
    if words == ["-"]:
        stream = stdin if stdin is not None else sys.stdin
        try:
            text = stream.read()  # type: ignore[attr-defined]
        except UnicodeDecodeError:
            raise FrontendError("standard input is not valid UTF-8") from None
        commands = [line.strip() for line in text.splitlines() if line.strip()]
        if not commands:
            raise UsageError("standard input holds no command to explain")
    else:
        command = " ".join(words).strip()
        if not command:
            raise UsageError("give a command to explain: nl2cmd explain COMMAND (or - to read it from stdin)")
        commands = [command]
    for command in commands:
        if len(command) > MAX_COMMAND:
            raise FrontendError(f"the command is too long ({len(command)} characters; at most {MAX_COMMAND})")
    return [strip_control(c.replace("\t", " ")) for c in commands]


def explain_main(words: list[str], *, as_json: bool = False, width: int | None = None) -> int:
    """Explain the command(s) in `words` on stdout; returns the exit status (0)."""
    from .frontend import clean_arg

    commands = commands_from([clean_arg(w) for w in words])
    idx = index_path()
    out = sys.stdout
    color = not as_json and out.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    cols = width or terminal_width(out)
    for n, command in enumerate(commands):
        exp = explain(command, index_path=idx)
        if as_json:
            write_line(out, json.dumps(exp.to_json(), ensure_ascii=False))
            continue
        if n:
            write_line(out, "")
        if len(commands) > 1:
            write_line(out, command)
        for line in render_text(exp, cols, color):
            write_line(out, line)
    return 0
