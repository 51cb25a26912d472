"""Evaluation metrics for predicted vs gold shell commands. Pure functions, standard library only.

* `exact_match`: the same command: equal after normalising whitespace (`tinyllm.knowledge.text.whitespace_key`)
  or read by the shell as the same words (`tinyllm.knowledge.shellparse.argv_key`: ``'*.py'`` is
  ``"*.py"``, ``'fix'`` is ``fix``, ``a|b`` is ``a | b``).
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

from tinyllm.knowledge.shellparse import (
    ASSIGN_RE,
    KEY_RE,
    NEGATIVE_RE,
    NUMBER_RE,
    OP_RE,
    PATHISH_RE,
    PREFIXES,
    SINGLE_DASH_LONG,
    argv_key,
    command_name,
    lex,
    parse_commands,
    resolve_alternatives,
    utilities,
    utility_name,
)
from tinyllm.knowledge.text import whitespace_key

__all__ = [
    "CATEGORIES", "command_keys", "command_name", "command_name_match", "exact_match", "failure_category",
    "nlc2cmd_score", "summarize", "template", "template_match", "utilities",
]

CATEGORIES = ("exact", "stopped_early", "wrong_utility", "wrong_flags", "wrong_arguments")
"""Every value `failure_category` can return."""

ARG = "ARG"

def command_keys(command: str) -> tuple[str, str]:
    """The keys under which two commands are the same command (`exact_match`): the whitespace-normalised
    string and the shell's words (`argv_key`), tagged so that only like keys meet."""
    return "s:" + whitespace_key(command), "w:" + argv_key(command)


def exact_match(pred: str, gold: str) -> bool:
    """The same command: equal up to whitespace, or the same words once quoting that changes nothing is
    dropped."""
    return not set(command_keys(pred)).isdisjoint(command_keys(gold))


def command_name_match(pred: str, gold: str) -> bool:
    """Same first utility (an empty prediction never matches)."""
    name = command_name(pred)
    return bool(name) and name == command_name(gold)


def _template_tokens(command: str, mapping: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """(display token, is_placeholder) pairs: values become ``ARG``; the bool marks tldr placeholders."""
    text, own = resolve_alternatives(command)
    mapping = {**own, **(mapping or {})}
    out: list[tuple[str, bool]] = []
    first = True
    util = ""
    for tok in lex(text):
        if tok.kind == "op":
            out.append((re.sub(r"^\d+", "", tok.value), False))
            first = "<" not in tok.value and ">" not in tok.value
            continue
        v = tok.value
        key = KEY_RE.match(v)
        if tok.placeholder and key and "{{" not in key.group(1):  # of={{file}}, --output={{path}}
            out.append((mapping.get(key.group(1), key.group(1)) + f"={ARG}", False))
        elif tok.placeholder:
            out.append((ARG, True))
        elif ASSIGN_RE.match(v) and not tok.quoted:  # VAR=value (a prefix assignment keeps `first`)
            out.append((v.split("=", 1)[0] + f"={ARG}", False))
            continue
        elif first and not tok.quoted:
            util = utility_name(tok)
            out.append((util, False))
            first = v.rsplit("/", 1)[-1] in PREFIXES
            continue
        elif tok.quoted or (NUMBER_RE.match(v) and not v.startswith("-")) or \
                (util in SINGLE_DASH_LONG and NEGATIVE_RE.match(v)):  # find -mtime -7: a value
            out.append((ARG, False))
        elif v.startswith("-") and len(v) > 1:
            opt, eq, _ = v.partition("=")
            out.append((mapping.get(opt, opt) + (f"={ARG}" if eq else ""), False))
        elif "=" in v[1:]:  # dd-style key=value
            out.append((v.split("=", 1)[0] + f"={ARG}", False))
        elif PATHISH_RE.search(v):
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
    """Placeholder-insensitive match: equal templates, where a tldr placeholder also matches any bare word
    (a non-empty exact match always matches)."""
    if pred.strip() and exact_match(pred, gold):
        return True
    _, mapping = resolve_alternatives(gold)
    p, g = _template_tokens(pred, mapping), _template_tokens(gold)
    if len(p) != len(g) or not p:
        return False
    for (pt, p_ph), (gt, g_ph) in zip(p, g):
        if pt == gt:
            continue
        other = gt if p_ph else pt if g_ph else None
        if other is None or other.startswith("-") or OP_RE.fullmatch(other):
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
    An exact match (`exact_match`) scores 1.
    """
    if exact_match(pred, gold):
        return 1.0
    _, mapping = resolve_alternatives(gold)
    p, g = parse_commands(pred, mapping), parse_commands(gold)
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
    _, mapping = resolve_alternatives(gold)
    pp, gp = parse_commands(pred, mapping), parse_commands(gold)
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
        tmpl += template_match(pred, gold)
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
