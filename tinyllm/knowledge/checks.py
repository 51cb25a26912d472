"""Cheap checks of a candidate command against its request (standard library only, microseconds to a
millisecond each): does it parse as shell, does each pipeline stage start with a known (and, when
serving, installed) program, are its options ones the training commands use with that program, does it
keep the request's values and invent none, and does it stutter.

`check` returns the failed checks by name; the ranker (tinyllm.infer.rank) turns them into penalties.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from functools import lru_cache

from .shellparse import Token, crontab_command, lex, parse_commands, pipelines, syntax_problem
from .tools import ToolLexicon, request_words
from .values import invented_values, missing_values

CHECKS = ("syntax", "unknown_program", "not_installed", "unknown_option", "missing_value", "invented_value",
          "stutter", "named_unused", "wrong_direction")
"""Every check, in the order features are stored."""

STRUCTURE_CHECKS = ("syntax", "unknown_program", "stutter")
"""The checks whose failure makes an answer nonsense rather than a command to edit (measured in docs/ranking.md)."""

# Shell reserved words and builtins: never "unknown programs", never looked up on PATH.
SHELL_WORDS = frozenset({
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "select", "in",
    "function", "{", "}", "[[", "]]", "!", "[", "test", "cd", "echo", "printf", "read", "export", "set", "unset",
    "alias", "unalias", "source", ".", "eval", "exec", "exit", "return", "shift", "trap", "type", "umask",
    "ulimit", "wait", "jobs", "fg", "bg", "kill", "declare", "local", "readonly", "let", "pushd", "popd", "dirs",
    "history", "hash", "help", "times", "true", "false", ":", "builtin", "command", "enable", "getopts",
    "mapfile", "readarray", "shopt", "complete", "compgen", "disown", "suspend", "logout", "caller", "coproc",
    "typeset", "bind", "fc", "time", "break", "continue", "setopt", "autoload", "bindkey", "zle", "rehash",
    "where", "whence", "functions", "print", "noglob", "emulate",
})

MAX_CHAR_RUN = 12
"""A character repeated more than this many times in a row is a stutter (``sssss...``)."""
MAX_UNIT_REPEATS = 6
"""A 2-6 character unit repeated more than this many times in a row is a stutter (``abababab...``)."""
MAX_WORD_REPEATS = 2
"""The same word more than this many times in a row is a stutter (``ls ls ls``)."""
EXPRESSION_PROGRAMS = frozenset({"find", "test", "[", "[[", "expr"})
"""Programs whose arguments are an expression that may repeat a primary (``-name a -o -name b``)."""
SAME_OPERANDS = frozenset({"cp", "mv", "ln", "rsync", "scp", "diff", "cmp"})
"""Programs whose last two operands must differ (source and destination, or the two files compared)."""

_CHAR_RUN_RE = re.compile(rf"(\S)\1{{{MAX_CHAR_RUN},}}")
_UNIT_RUN_RE = re.compile(rf"(\S{{2,6}}?)\1{{{MAX_UNIT_REPEATS},}}")
_OPTION_RE = re.compile(r"^--?[A-Za-z][\w-]*$")
_PLACEHOLDER_RE = re.compile(r"\{\{.*?\}\}")


def stutter(command: str) -> str | None:
    """Why `command` stutters (a character or short unit repeated past a bound, the same word three times
    in a row, identical source and destination of cp/mv/ln/rsync/scp, a flag given twice), or None."""
    m = _CHAR_RUN_RE.search(command) or _UNIT_RUN_RE.search(command)
    if m:
        return f"{m.group(1)!r} repeated"
    tokens = lex(command)
    words = [t for t in tokens if t.kind == "word"]
    run = 1
    for a, b in zip(words, words[1:]):
        run = run + 1 if a.raw == b.raw and not (len(a.raw) == 2 and a.raw.startswith("-")) else 1
        if run > MAX_WORD_REPEATS:
            return f"{b.raw!r} repeated"
    for segment in _stages(tokens):
        if segment and segment[0] in SAME_OPERANDS:
            operands = [w for w in segment[1:] if not w.startswith("-")]
            if len(operands) >= 2 and operands[-1] == operands[-2]:
                return f"{segment[0]} with the same source and destination"
        flag = repeated_flag(segment)
        if flag:
            return f"{flag!r} given twice"
    return None


def repeated_flag(words: list[str]) -> str | None:
    """A flag (a long option or bundled short flags, taking no value here) that one simple command gives
    twice, apart (``git clean -fd -u -fd``, ``git log --oneline -n 5 --oneline``), or None. Side by side
    repeats (``--verbose --verbose``) and one-letter flags (``-v -v``) raise a level on purpose; `find`
    and `test` expressions repeat primaries by design."""
    if not words or words[0] in EXPRESSION_PROGRAMS:
        return None
    seen: dict[str, int] = {}
    for i, word in enumerate(words):
        if len(word) <= 2 or not _OPTION_RE.match(word):
            continue
        following = words[i + 1] if i + 1 < len(words) else "-"
        if not following.startswith("-"):  # it may take a value: `-e a -e b`, `-p 80:80 -p 443:443`
            continue
        if word in seen and seen[word] != i - 1:
            return word
        seen[word] = i
    return None


def _stages(tokens: list[Token]) -> list[list[str]]:
    """The words (raw text) of each simple command (`shellparse.pipelines`), sudo dropped and the program
    reduced to its name."""
    out = []
    for pipe in pipelines(tokens):
        for simple in pipe:
            words = [t.raw for t in simple.tokens if t.raw != "sudo"]
            if words:
                out.append([words[0].rsplit("/", 1)[-1], *words[1:]])
    return out


def _acceptable_program(name: str) -> bool:
    """A first word that is no program name to judge: a variable, placeholder, path-like or empty word."""
    return not name or name[0] in "$({`\"'" or "{{" in name or name in SHELL_WORDS


@lru_cache(maxsize=4096)
def installed(name: str) -> bool:
    """Is `name` a program on this machine's PATH (or a shell word)? Cached per process."""
    return name in SHELL_WORDS or shutil.which(name) is not None


def unknown_programs(command: str, request: str, tools: ToolLexicon) -> list[str]:
    """First programs of the pipeline stages that the training set never starts a command with and the
    request does not name."""
    said = set(request_words(request))
    return [name for name, _ in parse_commands(command)
            if not _acceptable_program(name) and name not in tools.known and name.lower() not in said]


def unknown_options(command: str, tools: ToolLexicon) -> list[str]:
    """Options the training commands never pass to that program (only programs the option lexicon covers)."""
    bad = []
    for name, flags in parse_commands(command):
        known = tools.options.get(name)
        if known is None:
            continue
        bad += [f for f in sorted(flags) if _OPTION_RE.match(f) and f not in known]
    return bad


def named_unused(command: str, request: str, tools: ToolLexicon) -> list[str]:
    """Programs the request names ("... with zellij") of which the command uses none: the named words when
    no word of the command is one of them, else []."""
    named = tools.named_in(request)
    if not named:
        return []
    words = {w for w, _ in parse_commands(command)} | set(command.split())
    return [] if any(n in words for n in named) else named


_PACK_RE = re.compile(r"\b(?:compress|pack|(?:create|make|build)\s+(?:an?\s+)?(?:\w+\s+)?(?:archive|zip|tarball|tar)"
                      r"|zip\s+up)\b|^(?:please\s+)?(?:zip|gzip|bzip2|xz|zstd)\b", re.I)
_UNPACK_RE = re.compile(r"(?<!without )(?<!not )\b(?:extract|decompress|uncompress|unpack|unzip|untar|unarchive|inflate)(?:s|ing)?\b"
                        r"|\bpull\b.*\bout of\b", re.I)
_COMPRESSORS = frozenset({"gzip", "pigz", "bzip2", "pbzip2", "xz", "zstd", "lz4", "lzma", "brotli", "lzip", "compress"})
_UNPACKERS = frozenset({"gunzip", "bunzip2", "unxz", "unzstd", "unlzma", "uncompress", "unzip", "unrar", "zcat",
                        "bzcat", "xzcat", "zstdcat", "lz4cat"})


def request_direction(request: str) -> str | None:
    """"pack" when the request asks to compress or archive, "unpack" when it asks to extract or
    decompress, None when it asks neither or both."""
    pack, unpack = bool(_PACK_RE.search(request)), bool(_UNPACK_RE.search(request))
    return "pack" if pack and not unpack else "unpack" if unpack and not pack else None


def command_directions(command: str) -> set[str]:
    """What the archive and compression programs of `command` do: "pack", "unpack" or "list" (tar by its
    -c/-x/-t, compressors by -d/-l, unzip-style programs by name)."""
    out = set()
    for name, flags in parse_commands(command):
        if name == "tar":
            out |= {d for d, f in (("pack", {"-c", "--create"}), ("unpack", {"-x", "--extract", "--get"}),
                                   ("list", {"-t", "--list"})) if flags & f}
        elif name in _COMPRESSORS:
            if flags & {"-d", "--decompress", "--uncompress"}:
                out.add("unpack")
            elif flags & {"-l", "--list"}:
                out.add("list")
            else:
                out.add("pack")
        elif name in _UNPACKERS:
            out.add("unpack")
        elif name == "zip":
            out.add("pack")
    return out


def wrong_direction(command: str, request: str) -> bool:
    """Does the command extract (or only list) where the request asks to compress, or the other way round?"""
    want = request_direction(request)
    does = command_directions(command)
    return bool(want and does and want not in does)


def check(command: str, request: str, tools: ToolLexicon | None = None,
          is_installed: Callable[[str], bool] | None = None) -> dict[str, int]:
    """How many times `command` fails each check (name -> count; checks it passes are left out).

    `tools` enables the program and option checks; `is_installed` (e.g. `installed`, when serving on the
    user's machine for their own platform) the installed-program check. A crontab line
    (`15 4 * * * /opt/x.sh`) is judged by the command it schedules; its values by the whole line."""
    failed: dict[str, int] = {}
    line = command
    scheduled = crontab_command(command)
    command = line if scheduled is None else scheduled  # the schedule is no program and no stutter
    if syntax_problem(command):
        failed["syntax"] = 1
    if tools is not None:
        unknown = unknown_programs(command, request, tools)
        if unknown:
            failed["unknown_program"] = len(unknown)
        opts = unknown_options(command, tools)
        if opts:
            failed["unknown_option"] = len(opts)
        if named_unused(command, request, tools):
            failed["named_unused"] = 1
    if is_installed is not None:
        said = set(request_words(request))
        missing = [n for n, _ in parse_commands(command)
                   if not _acceptable_program(n) and n.lower() not in said and not is_installed(n)]
        if missing:
            failed["not_installed"] = len(missing)
    miss = missing_values(request, line)
    if miss:
        failed["missing_value"] = len(miss)
    invented = invented_values(request, _PLACEHOLDER_RE.sub(" ", line))
    if invented:
        failed["invented_value"] = len(invented)
    if stutter(command):
        failed["stutter"] = 1
    if wrong_direction(command, request):
        failed["wrong_direction"] = 1
    return failed
