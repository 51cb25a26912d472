"""Shell command structure without running a shell: a quote-aware lexer, the simple commands of a
pipeline, and the utility each one runs (``sudo``/``env X=1``/``time``/``nohup`` prefixes skipped).

Standard library only. Used by evaluation (tinyllm.train.metrics) and by serving (tinyllm.knowledge.tools).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Prefixes that are not "the" utility (kept deliberately smaller than tinyllm.knowledge.safety's list:
# xargs, watch, timeout ... *are* the utility for evaluation purposes, as in NLC2CMD).
PREFIXES = frozenset({"sudo", "doas", "env", "time", "nohup", "command", "builtin", "exec", "nice"})
_PREFIX_ARG_OPTS = {"sudo": {"-u", "-g", "-p", "-C", "-U", "-h", "-D", "-r", "-t", "-T"}, "doas": {"-u", "-C"},
                    "env": {"-u", "-C", "-S"}, "nice": {"-n"}, "time": {"-f", "-o"}, "exec": {"-a"}}
# Tools whose options are single-dash long words (-name, -type): never split into letters.
SINGLE_DASH_LONG = frozenset({
    "find", "java", "javac", "ffmpeg", "ffprobe", "ffplay", "convert", "magick", "mogrify", "identify", "montage",
    "gcc", "g++", "cc", "clang", "clang++", "xrandr", "xdotool", "xmllint", "openssl", "go", "terraform",
    "qemu-system-x86_64", "qemu-img", "mplayer", "tcpdump", "xset", "xwininfo", "ant", "gs", "pdftoppm", "swift",
})
_ALTERNATIVES_RE = re.compile(r"\{\{\[([^\]{}]*)\]\}\}")
OP_RE = re.compile(r"\|\||&&|;;|\|&|&>>|&>|\d*(?:>>|>&|>\||<<<|<<-?|<>|<&|>|<)(?:&?\d+|&-)?|[|;&()]")
ASSIGN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
NUMBER_RE = re.compile(r"^[+-]?\d[\d.,:]*[A-Za-z%]{0,2}$")
NEGATIVE_RE = re.compile(r"^-\d+(?:\.\d+)?$")
KEY_RE = re.compile(r"^(-{0,2}[\w.-]+)=")
PATHISH_RE = re.compile(r"[/~*?$@\[\]]|^\.|\w\.\w|://")


@dataclass(frozen=True)
class Token:
    """A lexed token: `kind` is "op" or "word"; `value` has quotes removed; flags describe the raw text."""

    kind: str
    raw: str
    value: str
    quoted: bool = False
    placeholder: bool = False


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
    toks: list[Token] = []
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
                j = n if j < 0 else j + 2
                value.append(command[i:j])
                placeholder, i = True, j
            elif c in "'\"":
                j = i + 1
                while j < n and command[j] != c:
                    j += 2 if c == '"' and command[j] == "\\" else 1
                value.append(command[i + 1:min(j, n)])
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
                value.append(command[i:j + 1])
                i = j + 1
            elif c in "|;&()<>":
                break
            else:
                value.append(c)
                i += 1
        toks.append(Token("word", command[raw_start:i], "".join(value), quoted, placeholder))
    return toks


def _segments(toks: list[Token]) -> list[list[Token]]:
    """Split on control operators and pipes; redirections and their targets are dropped."""
    segments: list[list[Token]] = [[]]
    skip_next = False
    for tok in toks:
        if skip_next:
            skip_next = False
            if tok.kind == "word":
                continue
        if tok.kind == "op":
            if "<" in tok.value or ">" in tok.value:
                skip_next = not tok.value[-1].isdigit() and not tok.value.endswith("-")
            elif segments[-1]:
                segments.append([])
            continue
        segments[-1].append(tok)
    return [s for s in segments if s]


def _strip_prefixes(words: list[Token]) -> list[Token]:
    """Drop ``VAR=x`` assignments and sudo/env/time/nohup-style prefixes with their options."""
    i = 0
    while i < len(words):
        value = words[i].value
        name = value.rsplit("/", 1)[-1]
        if ASSIGN_RE.match(value) and not words[i].quoted:
            i += 1
        elif name in PREFIXES:
            i += 1
            while i < len(words) and (words[i].value.startswith("-") or
                                      (name in ("env", "sudo") and ASSIGN_RE.match(words[i].value))):
                if words[i].value == "--":
                    i += 1
                    break
                i += 2 if words[i].value in _PREFIX_ARG_OPTS.get(name, ()) else 1
        else:
            break
    return words[i:]


def utility_name(tok: Token) -> str:
    """The program a command word names: its last path part (``/usr/bin/ls`` -> ``ls``); placeholders as they are."""
    return tok.value.rsplit("/", 1)[-1] if not tok.placeholder else tok.value


def parse_commands(command: str, mapping: dict[str, str] | None = None) -> list[tuple[str, frozenset[str]]]:
    """(utility, flag set) per simple command, in pipeline order."""
    text, own = resolve_alternatives(command)
    mapping = {**own, **(mapping or {})}
    out = []
    for segment in _segments(lex(text)):
        words = _strip_prefixes(segment)
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
