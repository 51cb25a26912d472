"""The one ranking of a request's candidates, used by serving, `nl2cmd-train eval` and `ship`.

Candidates are the greedy answer, the named-program step's candidates (tinyllm.knowledge.tools),
when the answer of those fails a check (or always, per the settings) the beam n-best, and the rewrites of
the top ones that put the request's missing values into their placeholders (`RankSettings.fill`). Each is scored by
the model's mean per-token log-prob minus a learned penalty for every check it fails
(tinyllm.knowledge.checks). A logistic model of the winner's features gives the calibrated `confidence`
that it is right. The settings are fitted on the dev split (tinyllm.train.rank_tune) and stored in the
model file's metadata under "ranking".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tinyllm.knowledge.checks import CHECKS, STRUCTURE_CHECKS, check
from tinyllm.knowledge.shellparse import command_name
from tinyllm.knowledge.tools import ToolLexicon

META_KEY = "ranking"
CONFIDENCE_FEATURES = ("bias", "logprob", "margin", "failed", "structure", "escalated", "placeholder", "sure",
                       "length", "request_length", "support")
"""What the confidence model reads: the winner's mean log-prob, its lead over the runner-up (capped at
`MARGIN_CAP`, the cap when there is none), how many checks it fails, whether it fails a structure check,
whether the first answer failed a check (so the beam ran), whether it holds a `{{placeholder}}` (whose
name must match too), whether its mean log-prob is above `SURE_LOGPROB`, its length in words over
`LENGTH_CAP` (capped at 1), and the request's length in words over `REQUEST_CAP` (capped at 1: longer
requests say more that the answer can miss), and how many training commands start with its program
(`ToolLexicon.support`: a program seen a handful of times is answered right less often; absent when the
index's lexicon has no counts). A model file fitted before a feature existed gives it weight 0."""
MARGIN_CAP = 1.0
SURE_LOGPROB = -0.05
LENGTH_CAP = 12
REQUEST_CAP = 20
FILL = 2
"""Top candidates whose missing request values are put into their placeholders (`RankSettings.fill`)."""
FALLBACK = 3
"""Retrieved commands tried when every candidate fails a structure check (`RankSettings.fallback`)."""
INSTALLED_PENALTY = 0.2
"""The penalty for a program that is not installed (serving only): about a fifth of a nat per token, so a
known, installed alternative the model finds nearly as likely wins, and a clearly better guess stays."""


@dataclass
class RankSettings:
    """How candidates are gathered and scored, and how confidence is computed (stored in the model file)."""

    penalties: dict[str, float] = field(default_factory=dict)
    """check name -> penalty subtracted from the mean log-prob of a candidate that fails it."""
    beam: int = 4
    """Beam width (and n-best size) decoded when the settings escalate the first answer (`escalates`)."""
    always_beam: bool = False
    """Decode the beam n-best for every request, not only when the first answer fails a check."""
    beam_below: float | None = None
    """Also decode the beam n-best when the first answer's mean log-prob is below this: the model was
    unsure, and a sequence it scores higher may exist (None: only after a failed check)."""
    confidence: dict[str, float] = field(default_factory=dict)
    """Logistic coefficients over `CONFIDENCE_FEATURES` (empty: no confidence)."""
    threshold: float = 0.0
    """Below this confidence the answer carries a "low confidence" note."""
    installed_penalty: float = 0.0
    """Penalty for a program missing on the serving machine (not tuned: eval cannot see the user's machine;
    `INSTALLED_PENALTY` at ship time)."""
    fallback: int = 0
    """When every candidate fails a structure check (no parse, unknown program, stutter), also rank the
    commands of this many nearest training requests, scored by the model: they are real commands, so the
    user gets the closest one that runs instead of nonsense (0: never)."""
    fill: int = 0
    """For each of this many top candidates that lacks a value the request names, also rank its rewrites with
    the value in a placeholder or invented file name (tinyllm.knowledge.values.fill_values), scored by the
    model (0: never)."""

    def to_meta(self) -> dict:
        """The JSON form stored in the model metadata."""
        return {"penalties": dict(self.penalties), "beam": self.beam, "always_beam": self.always_beam,
                "confidence": dict(self.confidence), "threshold": self.threshold,
                "installed_penalty": self.installed_penalty, "fallback": self.fallback,
                "fill": self.fill, "beam_below": self.beam_below}

    @classmethod
    def from_meta(cls, meta: Mapping) -> RankSettings | None:
        """The settings stored in a model's metadata, or None when it has none (ValueError if malformed)."""
        obj = meta.get(META_KEY)
        if obj is None:
            return None
        try:
            penalties = {str(k): float(v) for k, v in obj.get("penalties", {}).items()}
            conf = {str(k): float(v) for k, v in obj.get("confidence", {}).items()}
            below = obj.get("beam_below")
            return cls(penalties, int(obj.get("beam", 4)), bool(obj.get("always_beam", False)),
                       None if below is None else float(below), conf,
                       float(obj.get("threshold", 0.0)), float(obj.get("installed_penalty", 0.0)),
                       max(0, int(obj.get("fallback", 0))), max(0, int(obj.get("fill", 0))))
        except (AttributeError, TypeError, ValueError):
            raise ValueError("model metadata has malformed ranking settings") from None

    def escalates(self, first: Ranked | None) -> bool:
        """Does the beam run after the first answer `first` (the named-program step's, ranked)? When there is
        none, when it fails a check with a penalty, when its mean log-prob is below `beam_below`, or always."""
        if self.always_beam or first is None or any(first.failed.get(c) for c in self.gate()):
            return True
        return self.beam_below is not None and first.logprob < self.beam_below

    def gate(self) -> tuple[str, ...]:
        """The checks whose failure sends a request to the beam (those with a penalty)."""
        return tuple(c for c in CHECKS if self.penalties.get(c, 0.0) > 0
                     or (c == "not_installed" and self.installed_penalty > 0))


@dataclass
class Ranked:
    """A scored candidate."""

    command: str
    logprob: float
    failed: dict[str, int]
    score: float
    origin: str = ""


def penalty(failed: Mapping[str, int], settings: RankSettings) -> float:
    """The sum of the penalties of the checks a candidate fails."""
    total = sum(settings.penalties.get(name, 0.0) for name, n in failed.items() if n)
    if failed.get("not_installed"):
        total += settings.installed_penalty
    return total


def rank(cands: Sequence[tuple[str, float, str]], request: str, tools: ToolLexicon | None,
         settings: RankSettings, is_installed: Callable[[str], bool] | None = None,
         known: Mapping[str, dict[str, int]] | None = None) -> list[Ranked]:
    """(command, mean log-prob, origin) candidates, best first: duplicates merged (the best log-prob and
    the first origin kept), empty commands dropped, each scored by log-prob minus `penalty`. `known`
    holds checks already run (command -> failed)."""
    best: dict[str, tuple[float, str]] = {}
    for cmd, lp, origin in cands:
        if cmd and (cmd not in best or lp > best[cmd][0]):
            best[cmd] = (lp, best[cmd][1] if cmd in best else origin)
    out = []
    for cmd, (lp, origin) in best.items():
        failed = known[cmd] if known and cmd in known else check(cmd, request, tools, is_installed)
        out.append(Ranked(cmd, lp, failed, lp - penalty(failed, settings), origin))
    out.sort(key=lambda r: -r.score)
    return out


def confidence_features(ranked: Sequence[Ranked], escalated: bool, request: str,
                        tools: ToolLexicon | None = None) -> dict[str, float]:
    """The `CONFIDENCE_FEATURES` of the winner of a ranked list for `request` ("support" only with a
    `tools` lexicon that has counts)."""
    top = ranked[0]
    margin = min(MARGIN_CAP, top.score - ranked[1].score) if len(ranked) > 1 else MARGIN_CAP
    support = tools.support(command_name(top.command)) if tools is not None else None
    feats = {"bias": 1.0, "logprob": top.logprob, "margin": margin, "failed": float(len(top.failed)),
             "structure": float(any(top.failed.get(c) for c in STRUCTURE_CHECKS)), "escalated": float(escalated),
             "placeholder": float("{{" in top.command), "sure": float(top.logprob > SURE_LOGPROB),
             "length": min(len(top.command.split()), LENGTH_CAP) / LENGTH_CAP,
             "request_length": min(len(request.split()), REQUEST_CAP) / REQUEST_CAP}
    if support is not None:
        feats["support"] = support
    return feats


def confidence(features: Mapping[str, float], settings: RankSettings) -> float | None:
    """The probability that the winner is right (logistic model fitted on dev), or None without one."""
    if not settings.confidence:
        return None
    z = sum(settings.confidence.get(k, 0.0) * v for k, v in features.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def fill_sources(ranked: Sequence[Ranked], settings: RankSettings) -> list[str]:
    """The commands whose values `settings.fill` asks to fill in: the top ones that miss a request value."""
    return [r.command for r in ranked[: settings.fill] if r.failed.get("missing_value")]


def all_fail(ranked: Sequence[Ranked]) -> bool:
    """Does every candidate fail a structure check (does not parse, unknown program, stutter)?"""
    return bool(ranked) and all(any(r.failed.get(c) for c in STRUCTURE_CHECKS) for r in ranked)


def named_step(answer_cmd: str, answer_lp: float, named: Sequence[tuple[str, float]], request: str,
               tools: ToolLexicon) -> tuple[str, float]:
    """The named-program step's choice (as `Runtime.prefer_named_tool`) from already decoded candidates."""
    if not named:
        return answer_cmd, answer_lp
    cmd, lp = max(named, key=lambda c: c[1])
    if tools.trusts(command_name(answer_cmd), request) and lp <= answer_lp:
        return answer_cmd, answer_lp
    return cmd, lp
