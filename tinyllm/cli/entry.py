"""Console-script entry point of ``nl2cmd``: a plain request skips the click CLI.

``nl2cmd list large files`` is what the shell widgets and most users run, many times a day, so it
starts with only the standard library and `tinyllm.cli.frontend` (importing click and building the
command tree costs ~20 ms here). Anything else, a first word that starts with ``-`` or names a
sub-command, goes to `tinyllm.cli.app`, which gives the same result for plain requests.
"""

from __future__ import annotations

import sys

# Must equal the click group's commands (tests/test_cli.py checks it).
SUBCOMMANDS = frozenset({"daemon", "explain", "forget", "init", "learn", "repl", "suggest"})


def is_plain_request(argv: list[str]) -> bool:
    """True when argv is just instruction words: the click CLI would run the default command with no options."""
    return bool(argv) and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS


def fast_explain_args(args: list[str]) -> tuple[list[str], bool, int | None] | None:
    """(words, as_json, width) for ``nl2cmd explain ARGS`` when the arguments need no click (only
    --json, --width N and --); None otherwise (help, a bad option: click reports it)."""
    as_json, width = False, None
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg == "--json":
            as_json = True
        elif arg == "--width" and i + 1 < len(args) and args[i + 1].isdigit() and 20 <= int(args[i + 1]) <= 1000:
            width = int(args[i + 1])
            i += 1
        elif arg.startswith("--width=") and arg[8:].isdigit() and 20 <= int(arg[8:]) <= 1000:
            width = int(arg[8:])
        else:
            return None
        i += 1
    return args[i:], as_json, width


def console_main() -> None:
    """The ``nl2cmd`` console script: `main`, then, for a plain request, exit without tearing the
    interpreter down (its output is already flushed; the teardown costs ~3 ms of every call)."""
    try:
        main()
    except SystemExit as exc:
        if not is_plain_request(sys.argv[1:]):
            raise
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str) and sys.stderr is not None:
            print(exc.code, file=sys.stderr)
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def reserve_std_fds() -> None:
    """Keep descriptors 0-2 taken. Started with one closed (``nl2cmd ... >&-``), the first file or
    socket opened would get its number, and a later write meant for stdout would land there. They
    are pointed at /dev/null, while sys.stdout / sys.stderr stay None: writing the command then
    fails with EBADF (a one-line error), and diagnostics are dropped."""
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def main(argv: list[str] | None = None) -> None:
    """Run ``nl2cmd``; always exits via SystemExit."""
    reserve_std_fds()
    args = sys.argv[1:] if argv is None else list(argv)
    if is_plain_request(args):
        from .frontend import run_guarded, suggest_main

        run_guarded(lambda: suggest_main(args))
    fast = fast_explain_args(args[1:]) if args and args[0] == "explain" else None
    if fast is not None:  # `nl2cmd explain ...` without click, as fast as a plain request
        from .explain_view import explain_main
        from .frontend import run_guarded

        words, as_json, width = fast
        run_guarded(lambda: explain_main(words, as_json=as_json, width=width))
    from .app import main as cli_main

    cli_main(args)
