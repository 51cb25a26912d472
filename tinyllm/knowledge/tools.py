"""Which programs the training set knows, and which request words name one (no torch, no numpy).

A small model that must spell a rare program name token by token often gets it almost right
("lvmdisiskscan" for "Scan all devices with lvmdiskscan"), or answers with a familiar program when
the request names another. The lexicon, counted once over the training pairs, lets decoding
(`tinyllm.infer.runtime.Runtime.prefer_named_tool`) try a candidate that starts with the named program:

* `known`: every program that starts a training command (after ``sudo``/``env``-style prefixes);
* `named`: request words that name the program to run: among training requests with the word, at
  least `NAMED_SHARE` of the commands start with it, `NAMED_MIN_HITS` times or more ("bandwhich",
  "rsync"; not "search", "files" or "printf", which mostly name something else).
* `options`: for each program that starts `OPTION_MIN_COMMANDS` or more training commands, every option
  those commands pass to it (the candidate checks of tinyllm.knowledge.checks flag any other);
* `starts`: how many training commands each program starts, read by the confidence as `support`: an
  answer with a program that training saw a handful of times is right less often than one with `ls`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .shellparse import command_name, parse_commands

NAMED_SHARE = 0.5
NAMED_MIN_HITS = 2
OPTION_MIN_COMMANDS = 5
"""Programs with fewer training commands get no option list (too few to say an option is unknown)."""
SUPPORT_CAP = 1000
"""Training commands past which a program's `ToolLexicon.support` is 1 (log-scaled below it)."""
MIN_PREFIX = 3
"""Shortest known program a misspelt first word may be cut back to ("cata" -> "cat")."""

_WORD_RE = re.compile(r"[a-z0-9][a-z0-9_.+-]*")


def request_words(text: str) -> list[str]:
    """Lower-cased words of a request that could be program names, in order, without repeats."""
    return list(dict.fromkeys(w.rstrip(".") for w in _WORD_RE.findall(text.lower())))


@dataclass(frozen=True)
class ToolLexicon:
    """Programs seen at the start of training commands, and the request words that name one."""

    known: frozenset[str]
    named: frozenset[str]
    options: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, hash=False)
    """program -> the options training commands pass to it (see the module docstring); empty in older files."""
    starts: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    """program -> how many training commands it starts; empty in older files."""

    @classmethod
    def build(cls, rows: Iterable[Mapping[str, str]]) -> ToolLexicon:
        """Count over pairs with "instruction" and "command"."""
        mention: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        starts: Counter[str] = Counter()
        uses: Counter[str] = Counter()
        options: dict[str, set[str]] = {}
        for row in rows:
            name = command_name(row["command"])
            if name:
                starts[name] += 1
            for program, flags in parse_commands(row["command"]):
                uses[program] += 1
                options.setdefault(program, set()).update(flags)
            for word in request_words(row["instruction"]):
                mention[word] += 1
                hits[word] += word == name
        named = {w for w, h in hits.items() if h >= NAMED_MIN_HITS and h / mention[w] >= NAMED_SHARE}
        opts = {p: frozenset(o) for p, o in options.items() if uses[p] >= OPTION_MIN_COMMANDS}
        return cls(frozenset(starts), frozenset(named), opts, dict(starts))

    def to_json(self) -> dict:
        """A JSON-able form (sorted lists), read back by `from_json`."""
        return {"known": sorted(self.known), "named": sorted(self.named),
                "options": {p: sorted(o) for p, o in sorted(self.options.items())},
                "starts": dict(sorted(self.starts.items()))}

    @classmethod
    def from_json(cls, obj: Mapping) -> ToolLexicon:
        """Inverse of `to_json`; ValueError on anything else."""
        try:
            known, named = obj["known"], obj["named"]
        except (KeyError, TypeError):
            raise ValueError("tool lexicon needs 'known' and 'named' lists") from None
        options = obj.get("options", {})
        if not isinstance(options, dict) or not all(isinstance(o, list) for o in options.values()):
            raise ValueError("tool lexicon options must map programs to lists")
        if not all(isinstance(w, str) for w in [*known, *named, *(f for o in options.values() for f in o)]):
            raise ValueError("tool lexicon entries must be strings")
        starts = obj.get("starts", {})
        if not isinstance(starts, dict) or not all(type(n) is int and n >= 0 for n in starts.values()):
            raise ValueError("tool lexicon starts must map programs to counts")
        return cls(frozenset(known), frozenset(named), {p: frozenset(o) for p, o in options.items()}, dict(starts))

    def support(self, name: str) -> float | None:
        """How much training backs a program, in [0, 1]: log(1 + commands it starts) over
        log(1 + `SUPPORT_CAP`), capped at 1; 0 for an unseen program, None when the lexicon has no counts."""
        if not self.starts:
            return None
        return min(1.0, math.log1p(self.starts.get(name, 0)) / math.log1p(SUPPORT_CAP))

    def named_in(self, request: str) -> list[str]:
        """Words of the request that name a program, in order."""
        return [w for w in request_words(request) if w in self.named]

    def trusts(self, name: str, request: str) -> bool:
        """Is a command's first word beyond suspicion: empty (no program to judge), a known program, or
        written in the request (a program the user named is kept even if training never saw it)?"""
        return not name or name in self.known or name.lower() in request_words(request)

    def repair(self, name: str, request: str) -> str | None:
        """For a first word this lexicon does not trust, the longest known program it begins with
        ("findwork" -> "find"); None when it is trusted or no known program of `MIN_PREFIX` letters
        or more begins it."""
        if self.trusts(name, request):
            return None
        for end in range(len(name) - 1, MIN_PREFIX - 1, -1):
            if name[:end] in self.known:
                return name[:end]
        return None
