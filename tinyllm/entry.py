"""Console-script entry point of ``nl2cmd``: a plain request skips the click CLI.

``nl2cmd list large files`` is what the shell widgets and most users run, many times a day, so it
starts with only the standard library and `tinyllm.frontend` (importing click and building the
command tree costs ~20 ms here). Anything else, a first word that starts with ``-`` or names a
sub-command, goes to `tinyllm.cli`, which gives the same result for plain requests.
"""

from __future__ import annotations

import sys

# Must equal the click group's commands (tests/test_cli.py checks it).
SUBCOMMANDS = frozenset({"daemon", "forget", "init", "learn", "repl", "suggest"})


def is_plain_request(argv: list[str]) -> bool:
    """True when argv is just instruction words: the click CLI would run the default command with no options."""
    return bool(argv) and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS


def main(argv: list[str] | None = None) -> None:
    """Run ``nl2cmd``; always exits via SystemExit."""
    args = sys.argv[1:] if argv is None else list(argv)
    if is_plain_request(args):
        from .frontend import run_guarded, suggest_main

        run_guarded(lambda: suggest_main(args))
    from .cli import main as cli_main

    cli_main(args)
