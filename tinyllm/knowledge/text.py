"""Text normalisation and terminal-safety helpers: the one definition used by data prep, SFT, eval and serving.

Pure standard library: the thin client imports this, so no numpy/torch here.
"""

from __future__ import annotations

import re
import unicodedata

from tinyllm.formats.prompt import USER_SYMBOLS

# Typographic characters that people paste into descriptions/commands, mapped to ASCII.
_TYPOGRAPHIC = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ",
    "\u2026": "...",
}
_TYPO_RE = re.compile("|".join(map(re.escape, _TYPOGRAPHIC)))
# ANSI escape sequences: CSI, OSC, and the short ESC forms (ESC [ -/]* [0-~]), which include
# Fe/Fp/Fs two-byte sequences such as "ESC c" / "ESC 7" and charset selection such as tput's "ESC ( B".
_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WS_RE = re.compile(r"\s+")
# Control characters that separate words (CR, VT, FF, FS..US, NEL) and Unicode line separators:
# turned into spaces before controls are stripped, so "a\rb" does not become "ab".
_SEPARATOR_RE = re.compile("[\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")

# The prompt's own markers (<instruction>, <macos>, ...) are SentencePiece symbols: typed into a request they
# would be read as those tokens (a second platform tag, a command start), so a request keeps their bare names.
_MARKER_RE = re.compile("|".join(map(re.escape, USER_SYMBOLS)))

MAX_REQUEST_CHARS = 500
"""Longest request (instruction) accepted by the CLI, the daemon and the user pairs (characters, after
normalisation). Training data has its own, stricter filter (tinyllm.train.pairs.MAX_INSTRUCTION_CHARS)."""


def strip_control(text: str) -> str:
    """Remove ANSI escape sequences and C0/C1 control characters (keeps tab and newline)."""
    return _CONTROL_RE.sub("", _ANSI_RE.sub("", text))


def safe_line(text: str) -> str:
    """A single terminal-safe line: control characters removed, all whitespace runs collapsed."""
    return _WS_RE.sub(" ", strip_control(_SEPARATOR_RE.sub(" ", text))).strip()


def ascii_typography(text: str) -> str:
    """Replace typographic quotes, dashes, ellipses and odd spaces with their ASCII forms."""
    return _TYPO_RE.sub(lambda m: _TYPOGRAPHIC[m.group(0)], text)


def normalize_instruction(text: str) -> str:
    """Canonical form of a natural-language request, as seen by the model everywhere.

    NFC, ASCII typography, control characters dropped, whitespace collapsed, the prompt's markers
    (``<macos>``, ``<command>``, ...) reduced to their names, a trailing full stop / colon removed. Case is
    kept (file names and values are case-sensitive).
    """
    text = unicodedata.normalize("NFC", text)
    # NFC again: a removed control character may have separated a base letter from its combining mark.
    text = unicodedata.normalize("NFC", safe_line(ascii_typography(text)))
    while _MARKER_RE.search(text):  # a loop, as "<<macos>>" holds a marker again after one pass
        text = _MARKER_RE.sub(lambda m: m.group(0)[1:-1], text)
    return text.rstrip(" .:")


def normalize_command(text: str) -> str:
    """Canonical form of a shell command target: one line, ASCII typography, single spaces.

    Whitespace inside quotes is preserved; only runs outside quotes are collapsed. A backslash
    escapes the next character (outside single quotes), as in the shell.
    """
    text = unicodedata.normalize("NFC", text)
    text = strip_control(_SEPARATOR_RE.sub(" ", ascii_typography(text))).replace("\t", " ").replace("\n", " ")
    text = unicodedata.normalize("NFC", text)  # see normalize_instruction
    out: list[str] = []
    quote = ""
    prev_space = False
    escaped = False
    body = text.strip()
    trailing = len(body) - len(body.rstrip("\\"))
    if trailing % 2 and text.rstrip() != text:  # a final escaped space ("a\\ ") is an argument: keep it
        body += " "
    for ch in body:
        if escaped:  # `\"` inside "..." does not close the quote; `\ ` is part of a word
            out.append(ch)
            escaped = prev_space = False
            continue
        if ch == "\\" and quote != "'":
            out.append(ch)
            escaped = True
            prev_space = False
            continue
        if quote:
            out.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        if ch == " ":
            if prev_space:
                continue
            prev_space = True
        else:
            prev_space = False
        out.append(ch)
    return "".join(out)


def whitespace_key(command: str) -> str:
    """Key for exact-match comparison: whitespace-normalised command."""
    return _WS_RE.sub(" ", command).strip()


def description_key(text: str) -> str:
    """Grouping key for a description: lower-case, alphanumerics only (used to keep splits leak-free).
    Lower-cased before normalising too, so that a prompt marker typed in capitals (`<MACOS>`) keys as the
    marker does."""
    return " ".join(re.findall(r"[a-z0-9]+", normalize_instruction(text.lower()).lower()))


# tldr-style "{{placeholder}}": any text in double braces, except Go template actions, which docker,
# podman, kubectl and gh take as literal text ("--format '{{.Names}}'", "{{json .State}}", "{{end}}").
_BRACES_RE = re.compile(r"\{\{(.*?)\}\}")
_GO_ACTION_RE = re.compile(
    r"\s+-?\s*\.[A-Za-z_]"  # "{{ .metadata.name }}"
    r"|\s*-?\s*(?:\.[A-Z]|json\s+\.|(?:range|index|with|if|len|printf|println|lower|upper|title|join)\s+[.$\"])")
_GO_CLOSER_RE = re.compile(r"\s*-?\s*(?:end|else)\s*-?\s*")


def placeholder_matches(command: str) -> list[re.Match[str]]:
    """The ``{{placeholder}}`` matches of `command` (group 1: the text inside), leaving out Go template
    actions (``{{.Names}}``, ``{{json .State}}``, and ``{{end}}``/``{{else}}`` beside one), which are
    part of the command. tldr's own ``{{end}}`` or ``{{json}}`` placeholders stay placeholders."""
    found = list(_BRACES_RE.finditer(command))
    go = any(_GO_ACTION_RE.match(m.group(1)) for m in found)
    return [m for m in found
            if not _GO_ACTION_RE.match(m.group(1)) and not (go and _GO_CLOSER_RE.fullmatch(m.group(1)))]
