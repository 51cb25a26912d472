"""The shell lexer: one reading of shell text for the whole project, without running a shell.

* `lex`: quote-aware tokens: operators, and words that remember whether they held quotes or tldr
  ``{{placeholders}}``; ``$(...)`` and backticks stay inside one word.
* `argv_key`: the key under which two commands that the shell reads as the same words are equal
  (quoting that changes nothing dropped): exact match in evaluation.
* `pipelines`: the simple commands of a token list, pipeline by pipeline, with their redirections.
* `crontab_command`: the command a crontab line (`0 2 * * * rsync ...`) schedules.
* `WRAPPERS` and `wrapper_length`/`strip_wrappers`: the one table of command prefixes (``sudo``,
  ``env X=1``, ``nohup``, ``xargs``, ``timeout`` ...) with the options of each that take an argument;
  `COMMAND_RUNNERS`: the other programs whose arguments end with a command (``watch``, ``flock`` ...).
* Evaluation and serving (`parse_commands`, `utilities`, `command_name`: tinyllm.train.metrics,
  tinyllm.knowledge.tools, tinyllm.infer.runtime) skip only the `PREFIXES` (xargs, watch, timeout ...
  *are* the utility there, as in NLC2CMD). The danger classifier (tinyllm.knowledge.safety) reads a
  line the cautious way (`line_tokens`, `shell_words`, `simple_commands`): comments dropped, every
  wrapper and leading keyword skipped, and a rough split when a quote is never closed, so that a
  stray quote cannot hide a command.

Standard library only, and no `dataclasses`: the thin client imports this (through the danger
classifier, which checks every printed suggestion).
"""

from __future__ import annotations

import re
from collections import namedtuple
from functools import lru_cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

# Prefixes that are not "the" utility for evaluation (a subset of WRAPPERS: xargs, watch, timeout ...
# *are* the utility for evaluation purposes, as in NLC2CMD).
PREFIXES = frozenset({"sudo", "doas", "env", "time", "nohup", "command", "builtin", "exec", "nice"})
# Wrapper -> options of that wrapper that take a separate argument.
WRAPPER_OPTIONS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-p", "-C", "-U", "-r", "-t", "-T", "-D", "-h", "--user", "--group", "--prompt"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "-S", "--unset", "--chdir"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "-o", "--format", "--output"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "xargs": frozenset({"-a", "-d", "-E", "-e", "-I", "-i", "-L", "-l", "-n", "-P", "-s", "--arg-file", "--delimiter",
                        "--max-args", "--max-procs", "--max-chars", "--max-lines", "--replace"}),
    "busybox": frozenset(),
    "caffeinate": frozenset({"-t", "-w"}),
    "chronic": frozenset(),
    "unbuffer": frozenset(),
}
WRAPPERS = frozenset({*WRAPPER_OPTIONS, "timeout"})
"""Names `strip_wrappers` knows how to skip (``timeout [options] DURATION`` has its own rule)."""
# Programs that run the command given after their own options and operands (``watch -n 5 df -h``,
# ``flock -n LOCK cmd``), beyond `WRAPPER_OPTIONS`: their options that take a value. Evaluation and serving
# count them as the utility (only ``timeout`` is also in `WRAPPERS`, skipped by its own rule); the option
# validator and ``explain`` read the command they run as a stage of its own.
COMMAND_RUNNERS: dict[str, frozenset[str]] = {
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "watch": frozenset({"-n", "--interval"}),
    "flock": frozenset({"-w", "-E"}),
    "strace": frozenset({"-o", "-e", "-p", "-s"}),
    "chroot": frozenset(),
    "taskset": frozenset(),
    "setsid": frozenset(),
    "systemd-inhibit": frozenset({"--what", "--who", "--why", "--mode"}),
    "torsocks": frozenset(),
    "proxychains": frozenset({"-f"}),
}
RUNNER_OPERANDS: dict[str, int] = {"timeout": 1, "taskset": 1, "chroot": 1, "flock": 1}
"""Operands a command runner takes before the command: the duration, the CPU mask, the new root, the lock."""
# Shell keywords that may precede a command in a compound statement.
KEYWORDS = frozenset({"{", "}", "!", "then", "do", "else", "elif", "if", "while", "until", "time", "fi", "done"})
# Tools whose options are single-dash long words (-name, -type): never split into letters.
SINGLE_DASH_LONG = frozenset({
    "find", "java", "javac", "ffmpeg", "ffprobe", "ffplay", "convert", "magick", "mogrify", "identify", "montage",
    "gcc", "g++", "cc", "clang", "clang++", "xrandr", "xdotool", "xmllint", "openssl", "go", "terraform",
    "qemu-system-x86_64", "qemu-img", "mplayer", "tcpdump", "xset", "xwininfo", "ant", "gs", "pdftoppm", "swift",
})
# tldr "{{[-r|--recursive]}}" = "either spelling of the same option".
_ALTERNATIVES_RE = re.compile(r"\{\{\[([^\]{}]*)\]\}\}")
OPERATOR_CHARS = frozenset("();<>|&")
OP_RE = re.compile(r"\|\||&&|;;|\|&|&>>|&>|\d*(?:>>|>&|>\||<<<|<<-?|<>|<&|>|<)(?:&?\d+|&-)?|[|;&()]")
# Inside double quotes a backslash escapes only these (POSIX).
_DQUOTE_ESCAPE_RE = re.compile(r'\\([$`"\\\n])')
# A redirection operator: its fd number, the operator, and a target glued to it ("2>&1", ">&-").
_REDIRECT_RE = re.compile(r"\d*(\D*?)(\d+|(?<=&)-)?")
ASSIGN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
NUMBER_RE = re.compile(r"^[+-]?\d[\d.,:]*[A-Za-z%]{0,2}$")
NEGATIVE_RE = re.compile(r"^-\d+(?:\.\d+)?$")
KEY_RE = re.compile(r"^(-{0,2}[\w.-]+)=")
PATHISH_RE = re.compile(r"[/~*?$@\[\]]|^\.|\w\.\w|://")
# The rough split of text with an unclosed quote: the fd number glued to a redirection goes, then
# operators or runs of other characters (quotes dropped).
_FD_NUMBER_RE = re.compile(r"(^|[\s;&|(])\d+(?=[<>])")
_ROUGH_TOKEN_RE = re.compile(r"\|\||&&|;;|\|&|[<>]+&?|&>>?|[;&|()]|[^\s;&|()<>]+")


class Token(namedtuple("Token", "kind raw value quoted placeholder", defaults=(False, False))):
    """A lexed token: `kind` is "op" or "word"; `value` has quotes removed; flags (`quoted`,
    `placeholder`) describe the raw text. Immutable."""

    __slots__ = ()


def resolve_alternatives(command: str) -> tuple[str, dict[str, str]]:
    """Replace ``{{[a|b|c]}}`` with ``a``; return the text and the map {b: a, c: a} for single-word forms."""
    mapping: dict[str, str] = {}

    def first(m: re.Match[str]) -> str:
        forms = m.group(1).split("|")
        for form in forms[1:]:
            if form and " " not in form:
                mapping.setdefault(form, forms[0])
        return forms[0]

    return _ALTERNATIVES_RE.sub(first, command), mapping


def lex(command: str) -> list[Token]:
    """Quote-aware shell lexer: operators, and words that remember whether they held quotes/placeholders.

    ``$(...)`` and backticks stay inside one word. Never raises (an unclosed quote runs to the end).
    """
    return _lex(command)[0]


def _lex(command: str) -> tuple[list[Token], bool]:
    """`lex`'s tokens, and whether every quote, placeholder and substitution was closed."""
    toks: list[Token] = []
    closed = True
    i, n = 0, len(command)
    while i < n:
        if command[i].isspace():
            i += 1
            continue
        m = OP_RE.match(command, i)
        if m:
            toks.append(Token("op", m.group(0), m.group(0)))
            i = m.end()
            continue
        raw_start, value, quoted, placeholder = i, [], False, False
        while i < n and not command[i].isspace():
            c = command[i]
            if command.startswith("{{", i):
                j = command.find("}}", i + 2)
                closed = closed and j >= 0
                j = n if j < 0 else j + 2
                value.append(command[i:j])
                placeholder, i = True, j
            elif c in "'\"":
                j = i + 1
                while j < n and command[j] != c:
                    j += 2 if c == '"' and command[j] == "\\" else 1
                closed = closed and j < n
                inner = command[i + 1:min(j, n)]
                value.append(_DQUOTE_ESCAPE_RE.sub(r"\1", inner) if c == '"' else inner)
                placeholder = placeholder or "{{" in value[-1]
                quoted, i = True, min(j + 1, n)
            elif c == "\\" and i + 1 < n:
                value.append(command[i + 1])
                i += 2
            elif command.startswith("$(", i) or c == "`":
                depth, j = 0, i
                while j < n:
                    if c == "`":
                        if j > i and command[j] == "`":
                            break
                    elif command[j] == "(":
                        depth += 1
                    elif command[j] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                closed = closed and j < n
                value.append(command[i:j + 1])
                i = j + 1
            elif c in "|;&()<>":
                break
            else:
                value.append(c)
                i += 1
        toks.append(Token("word", command[raw_start:i], "".join(value), quoted, placeholder))
    return toks, closed


# Characters a bare word may hold without the shell doing anything to them (no glob, expansion, split).
_INERT_WORD_RE = re.compile(r"[A-Za-z0-9_./:=,+@%^-]*")


def _word_key(raw: str) -> str:
    """One word in the form `argv_key` compares: its literal text, bare when nothing in it is special,
    single-quoted when every special character was quoted or escaped, else the word as written."""
    chars: list[tuple[str, bool]] = []  # (character, protected by quotes or a backslash)
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            j = raw.find("'", i + 1)
            if j < 0:
                return raw
            chars += [(x, True) for x in raw[i + 1:j]]
            i = j + 1
        elif c == '"':
            j = raw.find('"', i + 1)
            inner = raw[i + 1:j]
            if j < 0 or any(x in inner for x in "$`\\!"):  # expansions inside: the quotes matter
                return raw
            chars += [(x, True) for x in inner]
            i = j + 1
        elif c == "\\" and i + 1 < n:
            chars.append((raw[i + 1], True))
            i += 2
        else:
            chars.append((c, False))
            i += 1
    literal = "".join(c for c, _ in chars)
    if literal == "{}" or (literal and _INERT_WORD_RE.fullmatch(literal)):  # bash leaves a lone {} alone
        return literal
    if all(protected for c, protected in chars if not _INERT_WORD_RE.fullmatch(c)):
        return "'" + literal.replace("'", "'\\''") + "'"
    return raw


@lru_cache(maxsize=1 << 16)  # ranking fits compare the same candidates many times
def argv_key(command: str) -> str:
    """Key under which two commands the shell reads as the same words compare equal.

    Quoting that changes nothing is dropped (``'*.py'``, ``"*.py"`` and ``\\*.py`` are one word; ``'fix'``
    is ``fix``), and spacing around operators does not count (``a|b`` is ``a | b``). A word whose quotes
    matter (an expansion inside double quotes, special characters both quoted and bare) is kept as
    written, so ``*.py`` and ``'*.py'`` stay different.
    """
    return " ".join(t.raw if t.kind == "op" else _word_key(t.raw) for t in lex(command))


def _rough(line: str) -> list[Token]:
    """The rough split of a line whose quotes do not close: operators or runs of other characters."""
    toks = []
    for raw in _ROUGH_TOKEN_RE.findall(_FD_NUMBER_RE.sub(r"\1", line)):
        value = raw.replace("'", "").replace('"', "")
        kind = "op" if raw and all(c in OPERATOR_CHARS for c in raw) else "word"
        toks.append(Token(kind, raw, value, quoted=value != raw))
    return toks


def line_tokens(line: str) -> list[Token]:
    """One line read the cautious way: tldr ``{{[a|b]}}`` alternatives resolved to ``a``, a word that
    starts with ``#`` ends the line (comment), and if a quote, placeholder or substitution is never
    closed, the rough split (operators, or runs of other characters, quotes dropped) instead of `lex`.
    """
    text = resolve_alternatives(line)[0]
    toks, closed = _lex(text)
    if not closed:
        toks = _rough(text)
    for i, tok in enumerate(toks):
        if tok.kind == "word" and tok.raw.startswith("#"):
            return toks[:i]
    return toks


def split_redirect(op: str) -> tuple[str, str]:
    """A redirection operator without its fd number, and the target glued to it (``2>&1`` -> ``>&``, ``1``)."""
    m = _REDIRECT_RE.fullmatch(op)
    return (m.group(1), m.group(2) or "") if m else (op, "")


def shell_words(line: str) -> list[str]:
    """`line_tokens` as strings: quotes removed as the shell would, redirections without their fd
    number, a target glued to a redirection as a word of its own. Never raises."""
    words: list[str] = []
    for tok in line_tokens(line):
        if tok.kind == "op" and ("<" in tok.value or ">" in tok.value):
            words += [w for w in split_redirect(tok.value) if w]
        else:
            words.append(tok.value)
    return words


def substitutions(text: str) -> list[tuple[int, int]]:
    """The spans ``(start, end)`` of the outermost closed ``$(...)`` and backtick command substitutions in
    `text`, in order. Quotes are not considered: a cautious reader looks inside them too. Linear time."""
    spans: list[tuple[int, int]] = []
    opened: list[int] = []  # where each open "(" started; -1 for a plain one
    tick = -1
    for i, c in enumerate(text):
        if c == "`":
            if tick < 0:
                tick = i
            else:
                spans.append((tick, i + 1))
                tick = -1
        elif c == "(":
            opened.append(i - 1 if i and text[i - 1] == "$" else -1)
        elif c == ")" and opened:
            start = opened.pop()
            if start >= 0:
                spans.append((start, i + 1))
    outer: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if not outer or start >= outer[-1][1]:
            outer.append((start, end))
    return outer


class SimpleCommand:
    """A simple command: its words (wrappers not yet stripped) and redirections (operator, target)."""

    __slots__ = ("tokens", "redirects")

    def __init__(self, tokens: list[Token] | None = None, redirects: list[tuple[str, str]] | None = None) -> None:
        self.tokens: list[Token] = [] if tokens is None else tokens
        self.redirects: list[tuple[str, str]] = [] if redirects is None else redirects

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimpleCommand):
            return NotImplemented
        return (self.tokens, self.redirects) == (other.tokens, other.redirects)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"SimpleCommand(tokens={self.tokens!r}, redirects={self.redirects!r})"

    @property
    def words(self) -> list[str]:
        """The words' values (quotes removed)."""
        return [t.value for t in self.tokens]


def _closing_paren(toks: list[Token], i: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``toks[i]`` (``len(toks)`` when none does)."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "op" and toks[j].value in ("(", ")"):
            depth += 1 if toks[j].value == "(" else -1
            if depth == 0:
                return j
    return len(toks)


def _joined(toks: list[Token]) -> str:
    """Tokens as text again, one space apart (no space inside parentheses)."""
    return " ".join(t.raw for t in toks).replace("( ", "(").replace(" )", ")")


def _process_substitution(toks: list[Token], i: int) -> tuple[str, int] | None:
    """When ``toks[i]`` starts a process substitution (``<`` or ``>`` then ``(``): its text and the index of
    its ``)``; else None."""
    if (toks[i].kind == "op" and toks[i].value in ("<", ">") and i + 1 < len(toks) and toks[i + 1].kind == "op"
            and toks[i + 1].value == "("):
        end = _closing_paren(toks, i + 1)
        return toks[i].value + _joined(toks[i + 1:end + 1]), end
    return None


MAX_SUBSTITUTION_DEPTH = 16
"""Process substitutions nested deeper than this are not read for their commands (bounded work on any input)."""


def pipelines(toks: list[Token], _depth: int = 0) -> list[list[SimpleCommand]]:
    """Tokens as a list of pipelines, each a list of simple commands (control operators end a pipeline,
    ``|`` and ``|&`` continue it). A redirection takes the next word as its target (or the one glued to it).

    A process substitution ``<(...)`` or ``>(...)`` is one (quoted) word of the command it belongs to, or
    the target of a redirection (``done < <(ls)``), so ``diff <(sort a) b`` stays one command with the
    operands ``<(sort a)`` and ``b``; the commands inside it follow as pipelines of their own, after the
    others (to `MAX_SUBSTITUTION_DEPTH`). An array value ``a=(x y)`` stays in its word."""
    out: list[list[SimpleCommand]] = [[]]
    inner: list[list[SimpleCommand]] = []

    def substitution(j: int) -> tuple[str, int] | None:
        """`_process_substitution` at ``toks[j]``, its commands added to `inner` (within the depth bound)."""
        sub = _process_substitution(toks, j)
        if sub and _depth < MAX_SUBSTITUTION_DEPTH:
            inner.extend(pipelines(toks[j + 2:sub[1]], _depth + 1))
        return sub

    current = SimpleCommand()
    i = 0
    while i < len(toks):
        tok = toks[i]
        sub = substitution(i)
        if sub:
            text, end = sub
            current.tokens.append(Token("word", text, text, quoted=True))
            i = end + 1
            continue
        if tok.kind == "op" and tok.value == "(" and current.tokens and current.tokens[-1].raw.endswith("="):
            end = _closing_paren(toks, i)
            last = current.tokens[-1]
            text = _joined(toks[i:end + 1])
            current.tokens[-1] = Token("word", last.raw + text, last.value + text, last.quoted, last.placeholder)
            i = end + 1
            continue
        if tok.kind == "op" and ("<" in tok.value or ">" in tok.value):
            op, target = split_redirect(tok.value)
            sub = None if target or i + 1 >= len(toks) else substitution(i + 1)
            if sub:
                target, i = sub
            elif not target and i + 1 < len(toks) and toks[i + 1].kind == "word":
                target = toks[i + 1].value
                i += 1
            current.redirects.append((op, target))
        elif tok.kind == "op":
            if current.tokens or current.redirects:
                out[-1].append(current)
            current = SimpleCommand()
            if not ("|" in tok.value and "||" not in tok.value) and out[-1]:
                out.append([])
        else:
            current.tokens.append(tok)
        i += 1
    if current.tokens or current.redirects:
        out[-1].append(current)
    return [p for p in out if p] + inner


def simple_commands(command: str) -> list[list[str]]:
    """The words of every simple command in `command` (split on pipes, ``&&``, ``;``, newlines ...), each
    line read by `line_tokens`. Wrappers are *not* stripped (see `strip_wrappers`); redirections are dropped.
    """
    return [simple.words for line in command.splitlines() for pipe in pipelines(line_tokens(line))
            for simple in pipe if simple.tokens]


_CRONTAB_SCHEDULE = re.compile(
    r"(?:@(?:reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9*][0-9*/,-]*(?:\s+[0-9*][0-9*/,-]*){2}(?:\s+[0-9A-Za-z*][0-9A-Za-z*/,-]*){2})\s+(?=\S)")
"""A crontab line's schedule (five time fields, or @daily and the like) before its command."""


def crontab_command(command: str) -> str | None:
    """The command a crontab line schedules (`0 2 * * * rsync -a ...` -> `rsync -a ...`); None when
    `command` does not start with a schedule."""
    m = _CRONTAB_SCHEDULE.match(command)
    return command[m.end():] if m else None


def program_name(word: str) -> str:
    """A command word reduced to the program it names: ``/usr/bin/rm`` -> ``rm`` (``/`` stays ``/``)."""
    return word.rsplit("/", 1)[-1] if "/" in word.rstrip("/") else word


def wrapper_length(words: Sequence[str], names: Collection[str] | None = None, *, keywords: bool = True,
                   quoted: Sequence[bool] = ()) -> int:
    """How many leading `words` are not the command itself: ``VAR=x`` assignments (unless `quoted` marks
    them), shell keywords (with `keywords`) and wrappers (``sudo -u x``, ``env -i``, ``nohup``,
    ``time``, ``nice -n 5``, ``timeout 10``, ``xargs -0`` ...) with their options.

    `names` restricts which wrappers are skipped (default: all of `WRAPPERS`).
    """
    wrappers = WRAPPERS if names is None else frozenset(names) & WRAPPERS
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        name = program_name(word)
        if (keywords and word in KEYWORDS) or (ASSIGN_RE.match(word) and not (i < len(quoted) and quoted[i])):
            i += 1
            continue
        if name == "timeout" and name in wrappers:  # timeout [options] DURATION command
            i += 1
            while i < n and words[i].startswith("-"):
                i += 2 if words[i] in COMMAND_RUNNERS[name] else 1
            i += RUNNER_OPERANDS[name]  # the duration
            continue
        if name not in wrappers or name == "timeout":
            break
        takes_arg = WRAPPER_OPTIONS[name]
        i += 1
        while i < n:
            opt = words[i]
            if opt == "--":
                i += 1
                break
            if name in ("env", "sudo") and ASSIGN_RE.match(opt):
                i += 1
            elif opt.startswith("-"):
                i += 2 if opt in takes_arg else 1
            else:
                break
    return i


def strip_wrappers(words: list[str], names: Collection[str] | None = None) -> list[str]:
    """`words` without what `wrapper_length` skips; the first remaining word (the utility) reduced by
    `program_name` (``/bin/rm`` -> ``rm``). `names` restricts which wrappers are stripped (default: all)."""
    rest = words[wrapper_length(words, names):]
    return [program_name(rest[0]), *rest[1:]] if rest else rest


def utility_name(tok: Token) -> str:
    """The program a command word names: its last path part (``/usr/bin/ls`` -> ``ls``); placeholders as they are."""
    return tok.value.rsplit("/", 1)[-1] if not tok.placeholder else tok.value


def parse_commands(command: str, mapping: dict[str, str] | None = None) -> list[tuple[str, frozenset[str]]]:
    """(utility, flag set) per simple command, in pipeline order."""
    text, own = resolve_alternatives(command)
    mapping = {**own, **(mapping or {})}
    out = []
    for segment in (simple.tokens for pipe in pipelines(lex(text)) for simple in pipe):
        words = segment[wrapper_length([t.value for t in segment], PREFIXES, keywords=False,
                                       quoted=[t.quoted for t in segment]):]
        if not words:
            continue
        name = utility_name(words[0])
        flags: set[str] = set()
        for tok in words[1:]:
            v = tok.value
            if tok.quoted or tok.placeholder:
                continue
            if v == "--":
                break
            if not v.startswith("-") or v == "-" or (name in SINGLE_DASH_LONG and NEGATIVE_RE.match(v)):
                continue  # an operand, or a value such as find's "-mtime -7"
            v = mapping.get(v, v)
            if v.startswith("--") or name in SINGLE_DASH_LONG or not v[1:].isalpha():
                key = v.split("=", 1)[0]
                flags.add(mapping.get(key, key))
            else:  # -la == -l -a
                flags.update(mapping.get(f"-{c}", f"-{c}") for c in v[1:])
        out.append((name, frozenset(flags)))
    return out


def utilities(command: str) -> list[str]:
    """The utilities of `command` in pipeline order (``find . | xargs rm`` -> ``["find", "xargs"]``)."""
    return [name for name, _ in parse_commands(command)]


def command_name(cmd: str) -> str:
    """The first utility of `cmd`, skipping ``sudo``/``env VAR=x``/``time``/``nohup`` prefixes ("" if none)."""
    names = utilities(cmd)
    return names[0] if names else ""


# Reserved words that open or close a compound command, and what each closes.
_OPENERS = {"if": "if", "case": "case", "for": "loop", "while": "loop", "until": "loop", "select": "loop",
            "{": "{", "[[": "[["}
_CONTROL_OPS = frozenset({"|", "|&", "&&", "||", ";", "&", ";;"})
_JOINERS = frozenset({"|", "|&", "&&", "||"})
_AFTER_KEYWORD_COMMAND = frozenset({"if", "then", "else", "elif", "do", "while", "until", "{", "!", "time"})


def syntax_problem(command: str) -> str | None:
    """Why bash could not parse `command` as it stands ("unclosed quote or substitution", "dangling |",
    "if without fi" ...), or None when it reads as a complete command. A cheap structural check (no shell
    is run): quotes, tldr placeholders, ``$(...)``, backticks and ``${...}`` closed; control operators
    between commands; a redirection followed by its target; parentheses, ``[ ]``/``[[ ]]`` and ``{ }``
    balanced; if/then/fi, for|while|until/do/done and case/esac nested properly."""
    toks, closed = _lex(command)
    if not closed:
        return "unclosed quote or substitution"
    stack: list[str] = []
    cmdpos = True  # the next word starts a command (a reserved word counts here)
    prev: Token | None = None
    words_after_paren = False  # after "name()" or a process substitution "<(...)"
    for k, tok in enumerate(toks):
        if tok.kind == "word":
            raw = tok.raw
            if raw.count("${") > raw.count("}"):
                return "unclosed ${"
            for sub in _substitution_bodies(raw):
                inner = syntax_problem(sub)
                if inner:
                    return f"{inner} inside a substitution"
            closers_ok = cmdpos or (prev is not None and prev.kind == "word" and prev.value in ("done", "fi", "esac", "}"))
            if (prev is not None and prev.kind == "op" and prev.value == ")" and not words_after_paren
                    and (not stack or stack[-1] != "case")):
                return "word after )"
            word = tok.value if not tok.quoted else ""
            if (cmdpos and word in ("then", "do", "fi", "done", "esac", "}") and prev is not None
                    and prev.kind == "word" and prev.value in _AFTER_KEYWORD_COMMAND - {"time", "!"}):
                return f"{word} right after {prev.value}"
            if cmdpos and word in _OPENERS:
                stack.append(_OPENERS[word])
                if word == "[[":
                    cmdpos = False
                else:
                    cmdpos = word not in ("for", "select", "case")
            elif closers_ok and word in ("then", "elif", "else", "fi"):
                top = stack[-1] if stack else ""
                if word == "then" and top not in ("if", "elif"):
                    return "then without if"
                if word in ("elif", "else") and top not in ("then", "elif-then"):
                    return f"{word} without if/then"
                if word == "fi" and top not in ("then", "else"):
                    return "fi without if/then"
                if word == "then":
                    stack[-1] = "then"
                elif word == "elif":
                    stack[-1] = "if"
                elif word == "else":
                    stack[-1] = "else"
                else:
                    stack.pop()
                cmdpos = True
            elif cmdpos and word == "do":
                if not stack or stack[-1] != "loop":
                    return "do without for/while"
                stack[-1] = "do"
            elif closers_ok and word == "done":
                if not stack or stack[-1] != "do":
                    return "done without do"
                stack.pop()
                cmdpos = False
            elif closers_ok and word == "esac" and stack and stack[-1] == "case":
                stack.pop()
                cmdpos = False
            elif closers_ok and word == "}":
                if not stack or stack[-1] != "{":
                    return "} without {"
                stack.pop()
                cmdpos = False
            elif word == "]]" and stack and stack[-1] == "[[":
                stack.pop()
            elif cmdpos and word == "[" and not _closes_test(toks, k):
                return "[ without ]"
            else:
                cmdpos = cmdpos and (word in _AFTER_KEYWORD_COMMAND or (not tok.quoted and ASSIGN_RE.match(word)
                                                                       is not None))
        else:
            op = tok.value
            in_case = bool(stack) and stack[-1] == "case"
            if "<" in op or ">" in op:
                if not (op[-1].isdigit() or op.endswith("-")):
                    nxt = toks[k + 1] if k + 1 < len(toks) else None
                    if nxt is None or (nxt.kind != "word" and not (nxt.value in ("(", "<") and op in ("<", ">"))):
                        return f"{op} without a target"
                    prev = tok
                    continue
            elif op == "(":
                if prev is not None and (prev.kind == "op" and prev.value in ("<", ">")
                                         or prev.kind == "word" and prev.raw.endswith("=")):
                    stack.append("<(")  # a process substitution, or an array value "a=(x y)"
                elif prev is not None and prev.kind == "word" and not cmdpos:
                    # a function definition "name() { ...; }": the ")" must follow at once
                    if k + 1 < len(toks) and toks[k + 1].value == ")":
                        stack.append("()")
                    else:
                        return "( after a word"
                else:
                    stack.append("(")
                cmdpos = True
            elif op == ")":
                words_after_paren = bool(stack) and stack[-1] in ("()", "<(")
                if stack and stack[-1] in ("()", "<("):
                    if stack[-1] == "<(" and prev is not None and prev.kind == "op" and prev.value in _JOINERS:
                        return f"dangling {prev.value}"
                    cmdpos = stack.pop() == "()"
                elif stack and stack[-1] == "(":
                    if prev is not None and prev.kind == "op" and prev.value in _JOINERS:
                        return f"dangling {prev.value}"
                    stack.pop()
                    cmdpos = False
                elif in_case:
                    cmdpos = True  # a case pattern "a)"
                else:
                    return ") without ("
            elif op in _CONTROL_OPS:
                if op == ";;" and not in_case:
                    return ";; outside case"
                first = prev is None or (prev.kind == "op" and prev.value in ("(",) + tuple(_CONTROL_OPS))
                if first and not (in_case and (op == ";;" or (op == "&" and prev is not None and prev.value == ";;"))):
                    return f"{op} with no command before it"
                if prev is not None and prev.kind == "word" and cmdpos and prev.value in ("then", "do", "else",
                                                                                            "elif", "if", "while",
                                                                                            "until", "{", "!"):
                    return f"{op} right after {prev.value}"
                cmdpos = True
        prev = tok
    if prev is not None and prev.kind == "op" and prev.value in _JOINERS:
        return f"dangling {prev.value}"
    if stack:
        top = stack[-1]
        return {"if": "if without then/fi", "then": "if without fi", "else": "if without fi", "loop": "loop without do",
                "do": "do without done", "case": "case without esac", "{": "{ without }", "[[": "[[ without ]]",
                "(": "( without )", "()": "( without )", "<(": "( without )"}.get(top, f"{top} not closed")
    return None


def _substitution_bodies(raw: str) -> list[str]:
    """The text inside each outermost ``$(...)`` (not ``$((...))``) and backtick pair of a word, outside single quotes."""
    bodies: list[str] = []
    i, n, squote = 0, len(raw), False
    while i < n:
        c = raw[i]
        if c == "'" and not squote:
            end = raw.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if raw.startswith("$(", i):
            depth, j = 0, i + 1
            while j < n:
                depth += raw[j] == "("
                depth -= raw[j] == ")"
                if depth == 0:
                    break
                j += 1
            if not raw.startswith("$((", i):  # arithmetic $((...)) holds no command
                bodies.append(raw[i + 2:j])
            i = j + 1
            continue
        if c == "`":
            end = raw.find("`", i + 1)
            if end > i:
                bodies.append(raw[i + 1:end])
            i = n if end < 0 else end + 1
            continue
        i += 1
    return bodies


def _closes_test(toks: list[Token], k: int) -> bool:
    """Does the ``[`` command at toks[k] end with a ``]`` word before the next control operator?"""
    last = None
    for tok in toks[k + 1:]:
        if tok.kind == "op" and not ("<" in tok.value or ">" in tok.value):
            break
        if tok.kind == "word":
            last = tok.value
    return last == "]"
