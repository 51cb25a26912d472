"""``nl2cmd repl``: type instructions, get commands; history kept in the state dir.

Uses prompt_toolkit on a terminal; with piped stdin it reads plain lines (scripts, tests).
prompt_toolkit is imported here only, never on the one-shot path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROMPT = "nl2cmd> "
QUIT_WORDS = frozenset({"exit", "quit", ":q"})


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
        interactive = input is not None or (sys.stdin.isatty() and sys.stdout.isatty())
    if not interactive:
        for line in sys.stdin:
            text = line.strip()
            if text in QUIT_WORDS:
                break
            if text:
                answer(text)
        return 0

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = FileHistory(str(history_path)) if history_path is not None else InMemoryHistory()
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
