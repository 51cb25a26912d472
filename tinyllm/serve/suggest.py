"""The suggestion service used by the daemon, `--no-daemon` and the REPL: model + retrieval + user pairs + safety.

Imports numpy and sentencepiece (through the runtime), never torch.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from pathlib import Path

from tinyllm.formats.checkpoint import CheckpointError, default_model_path
from tinyllm.formats.prompt import PLATFORMS, Example
from tinyllm.formats.settings import MAX_ALTERNATIVES
from tinyllm.infer.rank import all_fail, confidence, confidence_features
from tinyllm.infer.runtime import EngineError, Runtime
from tinyllm.infer.second import SecondOpinion
from tinyllm.knowledge import safety, userpairs
from tinyllm.knowledge.checks import STRUCTURE_CHECKS, installed
from tinyllm.knowledge.retrieval import BM25Index, load_tool_lexicon, nearest_commands, tokenize_for_search
from tinyllm.knowledge.text import MAX_REQUEST_CHARS, normalize_instruction
from tinyllm.knowledge.tools import ToolLexicon

from .suggestion import Suggestion

CACHE_SIZE = 256
"""Model answers remembered per (request, platform, n): decoding is deterministic, so a repeat (the
user pressing the widget key again, a script asking twice) is answered without running the model."""

USER_MATCH_THRESHOLD = 0.8
"""Word-overlap F1 above which a learnt pair answers directly (the model's answer becomes the alternative)."""


LOW_CONFIDENCE = "low confidence"
HOST_PLATFORM = "macos" if sys.platform == "darwin" else "linux"
"""Requests for this platform are checked against the programs installed here."""


Answers = tuple[list[tuple[str, float]], float | None, list[str]]
"""The model's (command, score) answers, best first, the confidence in the first, and notes."""


class SuggestError(ValueError):
    """A request that cannot be answered (empty, too long, unknown platform); one-line message."""


def word_f1(a: str, b: str) -> float:
    """Overlap of the search words of two requests (F1 of their word sets)."""
    wa, wb = set(tokenize_for_search(a)), set(tokenize_for_search(b))
    if not wa or not wb:
        return 0.0
    common = len(wa & wb)
    return 0.0 if not common else 2 * common / (len(wa) + len(wb))


class Suggester:
    """Loads a model file (and what it needs of the retrieval index beside it) once; answers requests."""

    def __init__(self, runtime: Runtime, index: BM25Index | None, user_pairs_path: str | None,
                 tools: ToolLexicon | None = None, index_path: Path | None = None,
                 second: SecondOpinion | None = None) -> None:
        self.runtime, self.index = runtime, index
        self.second = second
        """The second model asked about unsure answers, when the model file names one (tinyllm.infer.second)."""
        self.index_path = index_path
        """The index file, read on first use when `index` was not loaded (the ranking's retrieved fallback)."""
        self.tools = tools if tools is not None else (index.tools if index is not None else None)
        self.model_path = runtime.path
        self.user_pairs_path = user_pairs_path
        self.user_pairs: list[userpairs.UserPair] = []
        self.user_pairs_problem: str | None = None
        self.user_index: BM25Index | None = None
        self._cache: OrderedDict[tuple[str, str, int], Answers] = OrderedDict()
        self.reload_user_pairs()

    @classmethod
    def load(cls, model_path: str | None = None, user_pairs_path: str | None = None) -> Suggester:
        """Load the model (default: the shipped one); raises CheckpointError with a one-line message."""
        path = Path(model_path) if model_path else default_model_path()
        try:
            runtime = Runtime.load(path)
        except EngineError as exc:  # NL2CMD_ENGINE names an engine that cannot run: report it like a bad model
            raise CheckpointError(str(exc)) from None
        index_path = path.with_suffix(".idx")
        index, tools = None, None
        if index_path.is_file():
            try:
                # the BM25 search (~150 ms to load) only when the prompt or the reranker uses it;
                # the named-program step needs only the lexicon (a few ms)
                if runtime.retrieval_k or runtime.rerank_n:
                    index = BM25Index.load(index_path)
                elif runtime.named_tools or runtime.ranking is not None:
                    tools = load_tool_lexicon(index_path)
            except Exception as exc:
                raise CheckpointError(f"{index_path}: unreadable retrieval index ({exc})") from None
        if runtime.retrieval_k and index is None:
            raise CheckpointError(f"{index_path}: retrieval index missing (the model expects {runtime.retrieval_k} examples)")
        second = SecondOpinion.load(runtime)
        return cls(runtime, index, user_pairs_path, tools, index_path if index_path.is_file() else None, second)

    def reload_user_pairs(self) -> None:
        """Re-read the user's learnt pairs (malformed lines are skipped). An unreadable file leaves
        none, with the reason in `user_pairs_problem`: the model serves without them."""
        path = Path(self.user_pairs_path) if self.user_pairs_path else None
        self.user_pairs, self.user_pairs_problem = userpairs.load_usable(path) if path else ([], None)
        rows = [{"instruction": p.instruction, "command": p.command, "platform": p.platform or "common"}
                for p in self.user_pairs]
        self.user_index = BM25Index.build(rows) if rows else None
        self._cache.clear()  # learnt pairs can be prompt examples

    def _examples(self, text: str, platform: str, k: int) -> list[Example]:
        """k prompt examples: the user's close pairs first, then the shipped index."""
        found: list[Example] = []
        if self.user_index is not None:
            found += [Example(h.instruction, h.command) for h in self.user_index.search(text, k=k, platform=platform)]
        if self.index is not None and len(found) < k:
            found += [Example(h.instruction, h.command) for h in self.index.search(text, k=k - len(found), platform=platform)]
        return found[:k]

    def _nearest(self, text: str, platform: str):
        """The ranking's fallback source (k -> the k nearest training commands), as eval gives it. The index
        is read on the first call only: the fallback runs when every candidate fails a structure check."""
        if self.index is not None:
            return nearest_commands(self.index, text, platform)
        if self.index_path is None:
            return None

        def nearest(k: int) -> list[str]:
            if self.index is None:
                try:
                    self.index = BM25Index.load(self.index_path)
                except Exception:  # an unreadable index leaves the fallback empty, never the answer
                    self.index_path = None
                    return []
            return nearest_commands(self.index, text, platform)(k)

        return nearest

    def _user_match(self, text: str, platform: str) -> userpairs.UserPair | None:
        exact = userpairs.lookup(self.user_pairs, text, platform)
        if exact is not None or self.user_index is None:
            return exact
        hits = self.user_index.search(text, k=1, platform=platform)
        if hits and word_f1(text, hits[0].instruction) >= USER_MATCH_THRESHOLD:
            return userpairs.UserPair(hits[0].instruction, hits[0].command)
        return None

    def suggest(self, instruction: str, platform: str = "linux", n: int = 1) -> Suggestion:
        """Best command (and up to n alternatives) for a plain-English request."""
        t0 = time.perf_counter()
        text = normalize_instruction(instruction)
        if not text:
            raise SuggestError("empty instruction")
        if len(text) > MAX_REQUEST_CHARS:
            raise SuggestError(f"instruction too long ({len(text)} > {MAX_REQUEST_CHARS} characters)")
        if platform not in PLATFORMS:
            raise SuggestError(f"unknown platform {platform!r}")
        n = max(1, min(int(n), MAX_ALTERNATIVES))
        alts, conf, notes = self._model_answers(text, platform, n)
        source = "model"
        pair = self._user_match(text, platform)
        if pair is not None:
            alts = [(pair.command, 0.0)] + [a for a in alts if a[0] != pair.command]
            source, conf, notes = "user", None, []
        alts = alts[:n] if n > 1 else alts[: 2 if source == "user" else 1]
        command = alts[0][0] if alts else ""
        warnings = [w.message for w in safety.classify(command)] if command else []
        return Suggestion(command, alts, warnings, source, round((time.perf_counter() - t0) * 1000, 2),
                          None if conf is None else round(conf, 3), notes)

    def _model_answers(self, text: str, platform: str, n: int) -> Answers:
        """The model's answers with the decode mode chosen at ship time; remembered for the CACHE_SIZE most
        recent requests."""
        key = (text, platform, n)
        if key in self._cache:
            self._cache.move_to_end(key)
            alts, conf, notes = self._cache[key]
            return list(alts), conf, list(notes)
        try:
            prompt = self.runtime.prompt_ids(text, platform, self._examples(text, platform, self.runtime.retrieval_k))
        except ValueError as exc:
            raise SuggestError(str(exc)) from None
        rt = self.runtime
        conf: float | None = None
        notes: list[str] = []
        if rt.ranking is not None and not rt.rerank_n and not rt.retrieval_k:
            # the installed-program check only for requests about this machine's own platform
            here = platform == HOST_PLATFORM and rt.ranking.installed_penalty > 0
            nearest = self._nearest(text, platform)
            ranked, escalated = rt.ranked(prompt, text, self.tools, rt.ranking, n, is_installed=installed if here else None,
                                          named=rt.named_tools, retrieved=nearest)
            if ranked:
                conf = confidence(confidence_features(ranked, escalated, text, self.tools), rt.ranking)
            if self.second is not None:
                ranked, escalated, conf = self.second.review(rt, text, platform, ranked, escalated, conf, n,
                                                             is_installed=installed if here else None, retrieved=nearest)
            outs = ranked
            if ranked:
                if all_fail(ranked):
                    why = sorted({c for c in STRUCTURE_CHECKS if ranked[0].failed.get(c)})
                    notes.append(f"{LOW_CONFIDENCE}: no candidate passes the checks ({', '.join(why)}); edit before running")
                elif conf is not None and conf < rt.ranking.threshold:
                    notes.append(LOW_CONFIDENCE)
        elif rt.rerank_n and self.index is not None:
            extra = [h.command for h in self.index.search(text, k=rt.rerank_n, platform=platform)]
            outs = rt.rerank(prompt, extra, beam=max(n, rt.beam_width, 2))
        elif n > 1 or rt.beam_width > 1:
            width = max(n, rt.beam_width, 4 if n > 1 else 1)
            outs = rt.beam(prompt, beam=width, n_best=max(n, 1))
        else:
            outs = rt.generate([prompt])
        if outs and rt.ranking is None and rt.named_tools and self.tools is not None:
            best = rt.prefer_named_tool(prompt, text, outs[0], self.tools)
            if best is not outs[0]:  # the named program first, the model's own answer as the alternative
                outs = [best] + [g for g in outs if g.command != best.command]
        alts = [(g.command, g.score) for g in outs]
        self._cache[key] = (list(alts), conf, list(notes))
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return alts, conf, notes
