"""Evaluation metrics for predicted vs gold shell commands. Pure functions, standard library only.

* `exact_match`: whitespace-normalised equality (`tinyllm.text.whitespace_key`).
* `command_name_match`: same first utility (``sudo``/``env X=1``/``time``/``nohup``... skipped).
* `template_match`: equal after replacing argument *values* (tldr ``{{...}}`` placeholders, quoted
  strings, numbers, path-like words) with ``ARG``; a placeholder on either side also matches any
  single bare word (``cat file`` ~ ``cat {{path/to/file}}``). Utilities, options and bare words
  such as ``-type f`` or ``git push origin`` are compared literally.
* `nlc2cmd_score`: the NLC2CMD competition metric (Agarwal et al., 2021) for one prediction, in [-1, 1].
* `failure_category` and `summarize` for error analysis.

tldr ``{{[-r|--recursive]}}`` ("either spelling") is resolved to its first form, and any other
spelling of it in the prediction is mapped to that form, so ``--recursive`` matches it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tinyllm.text import whitespace_key

__all__ = [
    "CATEGORIES", "command_name", "command_name_match", "exact_match", "failure_category", "nlc2cmd_score",
    "summarize", "template", "template_match", "utilities",
]

CATEGORIES = ("exact", "stopped_early", "wrong_utility", "wrong_flags", "wrong_arguments")
"""Every value `failure_category` can return."""

ARG = "ARG"

# Prefixes that are not "the" utility (kept deliberately smaller than tinyllm.safety's list:
# xargs, watch, timeout ... *are* the utility for evaluation purposes, as in NLC2CMD).
_PREFIXES = frozenset({"sudo", "doas", "env", "time", "nohup", "command", "builtin", "exec", "nice"})
_PREFIX_ARG_OPTS = {"sudo": {"-u", "-g", "-p", "-C", "-U", "-h", "-D", "-r", "-t", "-T"}, "doas": {"-u", "-C"},
                    "env": {"-u", "-C", "-S"}, "nice": {"-n"}, "time": {"-f", "-o"}, "exec": {"-a"}}
# Tools whose options are single-dash long words (-name, -type): never split into letters.
_SINGLE_DASH_LONG = frozenset({
    "find", "java", "javac", "ffmpeg", "ffprobe", "ffplay", "convert", "magick", "mogrify", "identify", "montage",
    "gcc", "g++", "cc", "clang", "clang++", "xrandr", "xdotool", "xmllint", "openssl", "go", "terraform",
    "qemu-system-x86_64", "qemu-img", "mplayer", "tcpdump", "xset", "xwininfo", "ant", "gs", "pdftoppm", "swift",
})
_ALTERNATIVES_RE = re.compile(r"\{\{\[([^\]{}]*)\]\}\}")
_OP_RE = re.compile(r"\|\||&&|;;|\|&|&>>|&>|\d*(?:>>|>&|>\||<<<|<<-?|<>|<&|>|<)(?:&?\d+|&-)?|[|;&()]")
_ASSIGN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_NUMBER_RE = re.compile(r"^[+-]?\d[\d.,:]*[A-Za-z%]{0,2}$")
_NEGATIVE_RE = re.compile(r"^-\d+(?:\.\d+)?$")
_KEY_RE = re.compile(r"^(-{0,2}[\w.-]+)=")
_PATHISH_RE = re.compile(r"[/~*?$@\[\]]|^\.|\w\.\w|://")


@dataclass(frozen=True)
class _Tok:
    """A lexed token: `kind` is "op" or "word"; `value` has quotes removed; flags describe the raw text."""

    kind: str
    raw: str
    value: str
    quoted: bool = False
    placeholder: bool = False


def _resolve_alternatives(command: str) -> tuple[str, dict[str, str]]:
    """Replace ``{{[a|b|c]}}`` with ``a``; return the text and the map {b: a, c: a} for single-word forms."""
    mapping: dict[str, str] = {}

    def first(m: re.Match[str]) -> str:
        forms = m.group(1).split("|")
        for form in forms[1:]:
            if form and " " not in form:
                mapping.setdefault(form, forms[0])
        return forms[0]

    return _ALTERNATIVES_RE.sub(first, command), mapping


def _lex(command: str) -> list[_Tok]:
    """Quote-aware shell lexer: operators, and words that remember whether they held quotes/placeholders.

    ``$(...)`` and backticks stay inside one word. Never raises (an unclosed quote runs to the end).
    """
    toks: list[_Tok] = []
    i, n = 0, len(command)
    while i < n:
        if command[i].isspace():
            i += 1
            continue
        m = _OP_RE.match(command, i)
        if m:
            toks.append(_Tok("op", m.group(0), m.group(0)))
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
        toks.append(_Tok("word", command[raw_start:i], "".join(value), quoted, placeholder))
    return toks


def _segments(toks: list[_Tok]) -> list[list[_Tok]]:
    """Split on control operators and pipes; redirections and their targets are dropped."""
    segments: list[list[_Tok]] = [[]]
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


def _strip_prefixes(words: list[_Tok]) -> list[_Tok]:
    """Drop ``VAR=x`` assignments and sudo/env/time/nohup-style prefixes with their options."""
    i = 0
    while i < len(words):
        value = words[i].value
        name = value.rsplit("/", 1)[-1]
        if _ASSIGN_RE.match(value) and not words[i].quoted:
            i += 1
        elif name in _PREFIXES:
            i += 1
            while i < len(words) and (words[i].value.startswith("-") or
                                      (name in ("env", "sudo") and _ASSIGN_RE.match(words[i].value))):
                if words[i].value == "--":
                    i += 1
                    break
                i += 2 if words[i].value in _PREFIX_ARG_OPTS.get(name, ()) else 1
        else:
            break
    return words[i:]


def _utility_name(tok: _Tok) -> str:
    return tok.value.rsplit("/", 1)[-1] if not tok.placeholder else tok.value


def _parsed(command: str, mapping: dict[str, str] | None = None) -> list[tuple[str, frozenset[str]]]:
    """(utility, flag set) per simple command, in pipeline order."""
    text, own = _resolve_alternatives(command)
    mapping = {**own, **(mapping or {})}
    out = []
    for segment in _segments(_lex(text)):
        words = _strip_prefixes(segment)
        if not words:
            continue
        name = _utility_name(words[0])
        flags: set[str] = set()
        for tok in words[1:]:
            v = tok.value
            if tok.quoted or tok.placeholder:
                continue
            if v == "--":
                break
            if not v.startswith("-") or v == "-" or (name in _SINGLE_DASH_LONG and _NEGATIVE_RE.match(v)):
                continue  # an operand, or a value such as find's "-mtime -7"
            v = mapping.get(v, v)
            if v.startswith("--") or name in _SINGLE_DASH_LONG or not v[1:].isalpha():
                key = v.split("=", 1)[0]
                flags.add(mapping.get(key, key))
            else:  # -la == -l -a
                flags.update(mapping.get(f"-{c}", f"-{c}") for c in v[1:])
        out.append((name, frozenset(flags)))
    return out


def utilities(command: str) -> list[str]:
    """The utilities of `command` in pipeline order (``find . | xargs rm`` -> ``["find", "xargs"]``)."""
    return [name for name, _ in _parsed(command)]


def exact_match(pred: str, gold: str) -> bool:
    """Whitespace-normalised string equality."""
    return whitespace_key(pred) == whitespace_key(gold)


def command_name(cmd: str) -> str:
    """The first utility of `cmd`, skipping ``sudo``/``env VAR=x``/``time``/``nohup`` prefixes ("" if none)."""
    names = utilities(cmd)
    return names[0] if names else ""


def command_name_match(pred: str, gold: str) -> bool:
    """Same first utility (an empty prediction never matches)."""
    name = command_name(pred)
    return bool(name) and name == command_name(gold)


def _template_tokens(command: str, mapping: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """(display token, is_placeholder) pairs: values become ``ARG``; the bool marks tldr placeholders."""
    text, own = _resolve_alternatives(command)
    mapping = {**own, **(mapping or {})}
    out: list[tuple[str, bool]] = []
    first = True
    util = ""
    for tok in _lex(text):
        if tok.kind == "op":
            out.append((re.sub(r"^\d+", "", tok.value), False))
            first = "<" not in tok.value and ">" not in tok.value
            continue
        v = tok.value
        key = _KEY_RE.match(v)
        if tok.placeholder and key and "{{" not in key.group(1):  # of={{file}}, --output={{path}}
            out.append((mapping.get(key.group(1), key.group(1)) + f"={ARG}", False))
        elif tok.placeholder:
            out.append((ARG, True))
        elif _ASSIGN_RE.match(v) and not tok.quoted:  # VAR=value (a prefix assignment keeps `first`)
            out.append((v.split("=", 1)[0] + f"={ARG}", False))
            continue
        elif first and not tok.quoted:
            util = _utility_name(tok)
            out.append((util, False))
            first = v.rsplit("/", 1)[-1] in _PREFIXES
            continue
        elif tok.quoted or (_NUMBER_RE.match(v) and not v.startswith("-")) or \
                (util in _SINGLE_DASH_LONG and _NEGATIVE_RE.match(v)):  # find -mtime -7: a value
            out.append((ARG, False))
        elif v.startswith("-") and len(v) > 1:
            opt, eq, _ = v.partition("=")
            out.append((mapping.get(opt, opt) + (f"={ARG}" if eq else ""), False))
        elif "=" in v[1:]:  # dd-style key=value
            out.append((v.split("=", 1)[0] + f"={ARG}", False))
        elif _PATHISH_RE.search(v):
            out.append((ARG, False))
        else:
            out.append((v, False))
        first = False
    return out


def template(cmd: str) -> str:
    """`cmd` with argument values (placeholders, quoted strings, numbers, paths, ``x=value``) replaced by ``ARG``.

    >>> template("find {{path/to/dir}} -name '*.txt' -mtime +7")
    'find ARG -name ARG -mtime ARG'
    """
    return " ".join(t for t, _ in _template_tokens(cmd))


def template_match(pred: str, gold: str) -> bool:
    """Placeholder-insensitive match: equal templates, where a tldr placeholder also matches any bare word."""
    _, mapping = _resolve_alternatives(gold)
    p, g = _template_tokens(pred, mapping), _template_tokens(gold)
    if len(p) != len(g) or not p:
        return False
    for (pt, p_ph), (gt, g_ph) in zip(p, g):
        if pt == gt:
            continue
        other = gt if p_ph else pt if g_ph else None
        if other is None or other.startswith("-") or _OP_RE.fullmatch(other):
            return False
    return True


def nlc2cmd_score(pred: str, gold: str) -> float:
    """NLC2CMD accuracy score of one prediction, in [-1, 1] (1: same utilities and flags).

    For the i-th utility of T = max(#pred, #gold) positions: -1 if the utilities differ, else
    ``(1 + S_F) / 2`` with ``S_F = (2|F_p ∩ F_g| - |F_p ∪ F_g|) / max(|F_p|, |F_g|)`` (1 when
    both flag sets are empty); the score is the mean over the T positions. Arguments are ignored.
    Simplifications vs the competition: our own lexer instead of bashlex, short option clusters are
    split (``-la`` = ``-l -a``) except for single-dash-long tools such as ``find``, options of
    subcommands count for their utility, and one prediction with confidence 1 (no top-k maximum).
    """
    _, mapping = _resolve_alternatives(gold)
    p, g = _parsed(pred, mapping), _parsed(gold)
    t = max(len(p), len(g))
    if t == 0:
        return 1.0
    total = 0.0
    for i in range(t):
        if i < len(p) and i < len(g) and p[i][0] == g[i][0]:
            fp, fg = p[i][1], g[i][1]
            n = max(len(fp), len(fg))
            s_f = 1.0 if n == 0 else (2 * len(fp & fg) - len(fp | fg)) / n
            total += (1.0 + s_f) / 2.0
        else:
            total -= 1.0
    return total / t


def failure_category(pred: str, gold: str) -> str:
    """Classify a prediction: one of `CATEGORIES`.

    ``stopped_early``: empty, a strict word-boundary prefix of the gold command, or at most half its length with
    its utilities a strict prefix of the gold ones (stopped at a pipe). Then ``wrong_utility``
    (utility sequences differ), ``wrong_flags`` (flag sets differ) and ``wrong_arguments``.
    """
    p, g = whitespace_key(pred), whitespace_key(gold)
    if p == g:
        return "exact"
    if not p or (len(p) < len(g) and g.startswith(p) and g[len(p)] == " "):  # whole words only: "ls -l" vs "ls -la"
        return "stopped_early"
    _, mapping = _resolve_alternatives(gold)
    pp, gp = _parsed(pred, mapping), _parsed(gold)
    pu, gu = [u for u, _ in pp], [u for u, _ in gp]
    if len(p) <= len(g) / 2 and len(pu) < len(gu) and gu[:len(pu)] == pu:
        return "stopped_early"
    if pu != gu:
        return "wrong_utility"
    if [f for _, f in pp] != [f for _, f in gp]:
        return "wrong_flags"
    return "wrong_arguments"


def _pair(row: Mapping[str, str] | tuple[str, str] | list[str]) -> tuple[str, str]:
    if isinstance(row, Mapping):
        try:
            return row["pred"], row["gold"]
        except KeyError as exc:
            raise ValueError(f"row has no {exc.args[0]!r} field: {sorted(row)}") from None
    pred, gold = row
    return pred, gold


def summarize(rows: Iterable[Mapping[str, str] | tuple[str, str]]) -> dict[str, object]:
    """Aggregate metrics over rows of ``{"pred": ..., "gold": ...}`` (or ``(pred, gold)`` tuples).

    Returns ``n``, the rates ``exact_match``, ``command_name_acc``, ``template_acc``, the mean
    ``nlc2cmd`` score, and ``categories`` (count per `CATEGORIES` entry, all keys present).
    """
    n = 0
    exact = name = tmpl = 0
    score = 0.0
    categories = dict.fromkeys(CATEGORIES, 0)
    for row in rows:
        pred, gold = _pair(row)
        n += 1
        exact += exact_match(pred, gold)
        name += command_name_match(pred, gold)
        tmpl += exact_match(pred, gold) or template_match(pred, gold)
        score += nlc2cmd_score(pred, gold)
        categories[failure_category(pred, gold)] += 1
    denom = max(n, 1)
    return {
        "n": n,
        "exact_match": exact / denom,
        "command_name_acc": name / denom,
        "template_acc": tmpl / denom,
        "nlc2cmd": score / denom,
        "categories": categories,
    }
