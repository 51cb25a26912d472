"""A second model for unsure answers.

Two models trained apart get different requests right: the shipped model and the one before it agree
on under a fifth of dev and test, and a request one gets wrong the other often gets right. When the first
model's ranked answer has a confidence below `SecondSettings.below`, the second model answers the same
request through its own ranking; if its answer differs, both answers are scored by both models (one
teacher-forced pass each) and the one with the higher sum of the two mean per-token log-probs, less both
models' penalties for the checks it fails, is served, the other kept as an alternative. Sure answers (most
everyday requests) never pay for the second model.

The first model's file names the second in its metadata (`second_opinion`: a file beside it and the
bound); serving, `nl2cmd-train eval` and the scoreboard read it from there, so all score the pair the
same way (`SecondOpinion.review`). Both models must rank their candidates and prompt without retrieved
examples. bench/two_model_select.py measures a pair offline before it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyllm.formats.checkpoint import CheckpointError
from tinyllm.knowledge.retrieval import load_tool_lexicon
from tinyllm.knowledge.tools import ToolLexicon

from .rank import Ranked, confidence, confidence_features, penalty
from .runtime import EngineError, Runtime

SECOND_KEY = "second_opinion"
"""The key of the first model's metadata that names the second model and when to ask it."""


@dataclass(frozen=True)
class SecondSettings:
    """Where the second model is and when it is asked."""

    file: str
    """The second model's file name, in the first model's folder."""
    below: float
    """The second model is asked when the first answer's confidence is below this."""

    def to_meta(self) -> dict:
        """The value of `SECOND_KEY` in the first model's metadata."""
        return {"file": self.file, "below": self.below}

    @classmethod
    def from_meta(cls, meta: Mapping) -> SecondSettings | None:
        """The settings stored in a model's metadata; None when it names no second model, ValueError
        when the entry is malformed."""
        obj = meta.get(SECOND_KEY)
        if obj is None:
            return None
        try:
            file, below = obj["file"], float(obj["below"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{SECOND_KEY} needs a file name and a 'below' number") from None
        if not isinstance(file, str) or not file or Path(file).name != file or file.startswith("."):
            raise ValueError(f"{SECOND_KEY}: {file!r} is not a file name beside the model")
        return cls(file, below)


def summed_logprobs(runtimes: Sequence[Runtime], request: str, platform: str, commands: Sequence[str]) -> list[float]:
    """Each command's mean per-token log-prob as the answer to `request`, summed over the models (one
    teacher-forced pass per model); ValueError when the request does not fit a model's context."""
    totals = [0.0] * len(commands)
    for rt in runtimes:
        for i, score in enumerate(rt.score(rt.prompt_ids(request, platform), list(commands))):
            totals[i] += score
    return totals


def pair_penalty(failed: Mapping[str, int], runtimes: Sequence[Runtime]) -> float:
    """The penalties of the checks an answer fails (`failed`), summed over the models' ranking settings: the
    counterpart of `summed_logprobs` for the checks."""
    return sum(penalty(failed, rt.ranking) for rt in runtimes if rt.ranking is not None)


class SecondOpinion:
    """The second model of a pair, loaded once, and the rule that chooses between the two answers."""

    def __init__(self, runtime: Runtime, tools: ToolLexicon | None, settings: SecondSettings) -> None:
        self.runtime, self.tools, self.settings = runtime, tools, settings
        self.path = runtime.path

    @classmethod
    def load(cls, first: Runtime, engine: str | None = None) -> SecondOpinion | None:
        """The second model named by the first model's file, or None when it names none. CheckpointError
        (one line) when the entry is malformed, the file is missing or unreadable, or either model cannot
        take part (no ranking of its own, or retrieved prompt examples)."""
        try:
            settings = SecondSettings.from_meta(first.ckpt.meta)
        except ValueError as exc:
            raise CheckpointError(f"{first.path}: {exc}") from None
        if settings is None:
            return None
        path = Path(first.path).parent / settings.file
        if not path.is_file():
            raise CheckpointError(f"{path}: second model not found (named by {first.path})")
        try:
            runtime = Runtime.load(path, engine)
        except EngineError as exc:
            raise CheckpointError(str(exc)) from None
        for rt in (first, runtime):
            if rt.ranking is None or rt.retrieval_k:
                raise CheckpointError(f"{rt.path}: a model of a pair needs its own candidate ranking and no "
                                      "retrieved prompt examples")
        index = path.with_suffix(".idx")
        try:
            tools = load_tool_lexicon(index) if index.is_file() else None
        except Exception as exc:
            raise CheckpointError(f"{index}: unreadable retrieval index ({exc})") from None
        return cls(runtime, tools, settings)

    def asks(self, confidence_of_first: float | None) -> bool:
        """Is the first answer unsure enough to ask the second model?"""
        return confidence_of_first is not None and confidence_of_first < self.settings.below

    def prefers(self, first: Runtime, request: str, platform: str, mine: Ranked, theirs: Ranked) -> bool:
        """Whether the second model's answer `theirs` beats the first's `mine`: the sum over both models of
        each answer's mean per-token log-prob, less the penalties each model's ranking gives the checks the
        answer fails (`pair_penalty`), so that a likely answer that cannot run loses to one that can."""
        runtimes = (first, self.runtime)
        mine_lp, their_lp = summed_logprobs(runtimes, request, platform, (mine.command, theirs.command))
        return their_lp - pair_penalty(theirs.failed, runtimes) > mine_lp - pair_penalty(mine.failed, runtimes)

    def review(self, first: Runtime, request: str, platform: str, ranked: list[Ranked], escalated: bool,
               conf: float | None, n: int = 1, is_installed=None,
               retrieved: Callable[[int], Sequence[str]] | None = None) -> tuple[list[Ranked], bool, float | None]:
        """The first model's (ranked, escalated, confidence) for a request, or the second model's answer
        first (with its own confidence, the first model's candidates after it) when the first is unsure
        and the pair prefers the second's. `retrieved` is the ranking's fallback source for both."""
        if not ranked or not self.asks(conf):
            return ranked, escalated, conf
        rt = self.runtime
        try:
            prompt = rt.prompt_ids(request, platform)
        except ValueError:  # longer than the second model's context: the first answer stands
            return ranked, escalated, conf
        theirs, their_escalated = rt.ranked(prompt, request, self.tools, rt.ranking, n, is_installed=is_installed,
                                            named=rt.named_tools, retrieved=retrieved)
        if not theirs or not theirs[0].command or theirs[0].command == ranked[0].command:
            return ranked, escalated, conf
        best = theirs[0].command
        if ranked[0].command and not self.prefers(first, request, platform, ranked[0], theirs[0]):
            return ranked, escalated, conf
        their_conf = confidence(confidence_features(theirs, their_escalated, request, self.tools), rt.ranking)
        return [theirs[0]] + [r for r in ranked if r.command != best], their_escalated, their_conf
