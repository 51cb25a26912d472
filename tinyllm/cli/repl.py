"""``nl2cmd repl``: type instructions, get commands; history kept in the state dir.

Uses prompt_toolkit on a terminal; with piped stdin it reads plain lines (scripts, tests).
prompt_toolkit is imported here only, never on the one-shot path. The history holds what was
asked: the file is created 0600 (an existing one of ours is made 0600), like the daemon's log.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROMPT = "nl2cmd> "
QUIT_WORDS = frozenset({"exit", "quit", ":q"})


def private_history(path: Path) -> Path:
    """Create `path` 0600 if missing and make an existing one 0600; OSError if it is not a regular
    file of ours (a symlink is refused, not followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise OSError(f"{path} is not a regular file of yours")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def run_repl(
    answer: Callable[[str], None],
    history_path: Path | None = None,
    *,
    input: Any = None,  # noqa: A002 - prompt_toolkit's name
    output: Any = None,
    interactive: bool | None = None,
) -> int:
    """Read instructions until EOF (Ctrl-D) or "exit", calling `answer(text)` for each non-empty line.

    `answer` prints the suggestion (or an error line) itself and must not raise.
    Ctrl-C abandons the current line. `input`/`output` are prompt_toolkit objects (tests).
    """
    if interactive is None:
        interactive = input is not None or (
            sys.stdin is not None and sys.stdout is not None and sys.stdin.isatty() and sys.stdout.isatty())
    if not interactive:
        for line in sys.stdin if sys.stdin is not None else ():  # stdin closed (<&-): nothing to read
            text = line.strip()
            if text in QUIT_WORDS:
                break
            if text:
                answer(text)
        return 0

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history: Any = InMemoryHistory()
    if history_path is not None:
        try:
            history = FileHistory(str(private_history(history_path)))
        except OSError as exc:
            from .frontend import warn

            warn(f"history not kept: {getattr(exc, 'strerror', None) or exc}")
    session: PromptSession[str] = PromptSession(history=history, input=input, output=output)
    while True:
        try:
            text = session.prompt(PROMPT).strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if text in QUIT_WORDS:
            break
        if text:
            answer(text)
    return 0
