"""Load an inference checkpoint into the numpy engine and generate commands (no torch)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllm.formats.checkpoint import InferenceCheckpoint, load_inference
from tinyllm.formats.prompt import Example
from tinyllm.formats.tokenizer import Tokenizer, TokenizerError
from tinyllm.knowledge.shellparse import command_name
from tinyllm.knowledge.text import normalize_command
from tinyllm.knowledge.tools import ToolLexicon
from tinyllm.knowledge.values import fill_values

from . import ENGINES, generate
from .engine import NumpyTransformer
from .rank import Ranked, RankSettings, all_fail, fill_sources, named_step, rank


@dataclass
class Generated:
    """One generated command with its score (mean log-prob per token for beams, total for greedy)."""

    command: str
    score: float
    finished: bool
    mean_logprob: float | None = None
    """Mean log-prob per decoded token (<eos> included), where the decoder knows it."""



class EngineError(ValueError):
    """An unknown engine name, or the C engine asked for where it cannot run (message says why)."""


def make_engine(ckpt: InferenceCheckpoint, engine: str | None = None):
    """(step model, engine name) for `engine` (default: NL2CMD_ENGINE, else "auto").

    "auto" takes the int8 C engine where its SIMD kernels are built and run on this CPU, else numpy float32.
    """
    from .cengine import CTransformer, engine_choice, unavailable_reason

    name = (engine or engine_choice()).lower()
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    why = unavailable_reason() if name != "numpy" else None
    if not why and name != "numpy":
        try:
            return CTransformer(ckpt.config, ckpt.weights), "c-int8"
        except ValueError as exc:  # a model shape the kernels do not take
            why = str(exc)
    if name == "c-int8":
        raise EngineError(f"engine c-int8 unavailable: {why}")
    return NumpyTransformer(ckpt.config, ckpt.weights), "numpy"


class Runtime:
    """Model + tokenizer + decoding, built from one checkpoint file."""

    def __init__(self, ckpt: InferenceCheckpoint, path: str | Path = "", engine: str | None = None) -> None:
        self.ckpt, self.path = ckpt, str(path)
        try:
            self.tokenizer = Tokenizer(ckpt.tokenizer_bytes)
        except TokenizerError as exc:
            from tinyllm.formats.checkpoint import CheckpointError

            raise CheckpointError(f"{path}: {exc}") from None
        self.model, self.engine = make_engine(ckpt, engine)
        self.retrieval_k = int(ckpt.meta.get("retrieval_k", 0))
        # serving decode settings chosen on the dev set at ship time (tinyllm.train.ship)
        self.rerank_n = int(ckpt.meta.get("rerank", 0))
        self.beam_width = int(ckpt.meta.get("beam", 1))
        self.named_tools = bool(ckpt.meta.get("named_tools", True))
        self.ranking = RankSettings.from_meta(ckpt.meta)
        """The candidate ranking fitted on dev (tinyllm.infer.rank), or None: greedy/beam + named-program step."""
        self._word_starts: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | Path, engine: str | None = None) -> Runtime:
        """Read a checkpoint file (CheckpointError on any problem)."""
        return cls(load_inference(path), path, engine)

    def prompt_ids(self, instruction: str, platform: str, examples: list[Example] | tuple = (),
                   reserve: int = 32) -> list[int]:
        """Encode a normalised request (and retrieved examples) with the shared prompt format, dropping
        examples until `reserve` tokens are left for the command; ValueError if the bare request is too long."""
        examples = list(examples)
        limit = self.model.cfg.max_seq_len - reserve
        while True:
            ids = self.tokenizer.encode_prompt(instruction, platform, examples)
            if len(ids) <= limit:
                return ids
            if not examples:
                raise ValueError(f"request of {len(ids)} tokens does not fit the model's context")
            examples.pop()

    def _clean(self, ids: list[int]) -> str:
        return normalize_command(self.tokenizer.decode(ids))

    def generate(self, prompts: list[list[int]], max_new_tokens: int = 96) -> list[Generated]:
        """Greedy decoding of a batch of encoded prompts."""
        outs = generate.greedy(self.model, prompts, max_new_tokens)
        return [Generated(self._clean(c.ids), c.score, c.finished, c.mean_logprob) for c in outs]

    def beam(self, prompt: list[int], beam: int = 4, n_best: int = 4, max_new_tokens: int = 96) -> list[Generated]:
        """n-best commands for one prompt, best first, duplicates (after cleaning) removed."""
        outs = generate.beam_search(self.model, prompt, beam=beam, n_best=n_best, max_new_tokens=max_new_tokens)
        seen: set[str] = set()
        result = []
        for c in outs:
            cmd = self._clean(c.ids)
            if cmd and cmd not in seen:
                seen.add(cmd)
                result.append(Generated(cmd, c.score, c.finished, c.mean_logprob))
        return result

    def score(self, prompt: list[int], commands: list[str]) -> list[float]:
        """Mean log-probability per token of each command (and its <eos>) after the prompt.

        One uncached forward over the right-padded batch: padding after a sequence cannot change
        its causal logits, so each candidate is scored exactly.
        """
        if not commands:
            return []
        targets = [self.tokenizer.encode_target(c) for c in commands]
        seqs = [prompt + t for t in targets]
        limit = self.model.cfg.max_seq_len
        width = min(max(len(s) for s in seqs), limit)
        batch = np.zeros((len(seqs), width), dtype=np.int64)
        for i, s in enumerate(seqs):
            s = s[:width]
            batch[i, : len(s)] = s
        logits = self.model.forward(batch)
        logits = logits - logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        scores = []
        for i, t in enumerate(targets):
            start = len(prompt) - 1  # position predicting the first command token
            n = min(len(t), width - len(prompt))
            if n <= 0:
                scores.append(float("-inf"))
                continue
            picked = logp[i, start + np.arange(n), np.array(t[:n])]
            scores.append(float(picked.mean()))
        return scores

    def rerank(self, prompt: list[int], extra: list[str], beam: int = 4, max_new_tokens: int = 96) -> list[Generated]:
        """Beam n-best plus outside candidates (e.g. retrieved commands), ranked by the model's own
        per-token log-probability of each; best first, duplicates removed."""
        cands = [g.command for g in self.beam(prompt, beam=beam, n_best=beam, max_new_tokens=max_new_tokens)]
        for c in extra:
            c = normalize_command(c)
            if c and c not in cands:
                cands.append(c)
        scored = sorted(zip(self.score(prompt, cands), cands), key=lambda sc: -sc[0])
        return [Generated(c, s, True, s) for s, c in scored]

    def named_candidates(self, prompt: list[int], request: str, answer: Generated, lexicon: ToolLexicon,
                         max_new_tokens: int = 96) -> tuple[list[Generated], float]:
        """Commands that start with a program the request names (or with the known program a misspelt
        first word of `answer` begins with), and `answer`'s own mean log-prob; ([], that) when there is
        none to try. See tinyllm.knowledge.tools.

        One batched decode: each row forces a program name, then a token that begins a new word (so
        "hcitool" cannot run on into "hcitoolauth"), then continues greedily; the answer is re-scored in
        the same batch (teacher-forced) only if its decoder did not keep its mean log-prob."""
        first = command_name(answer.command)
        tools = [w for w in lexicon.named_in(request) if w != first]
        repaired = lexicon.repair(first, request)
        if repaired and repaired not in tools:
            tools.append(repaired)
        own = answer.mean_logprob
        if not tools:
            return [], own if own is not None else answer.score
        if self._word_starts is None:
            self._word_starts = np.array(self.tokenizer.word_starts())
        heads = [self.tokenizer.encode(w) for w in tools]
        rescore = own is None
        if rescore:
            heads.insert(0, self.tokenizer.encode_target(answer.command))
        try:
            outs = generate.greedy_from(self.model, [prompt] * len(heads), heads, self._word_starts, max_new_tokens)
        except ValueError:  # the prompt fills the context: nothing to decode
            return [], own if own is not None else answer.score
        if rescore:
            own = outs.pop(0).score
        return [Generated(self._clean(c.ids), c.score, c.finished, c.score) for c in outs], own

    def prefer_named_tool(self, prompt: list[int], request: str, answer: Generated, lexicon: ToolLexicon,
                          max_new_tokens: int = 96) -> Generated:
        """`answer`, or a command that starts with a program the request names (or with the known program a
        misspelt first word begins with) when the model scores that one higher per token, or when the
        answer's first word is no program the training set knows (`named_candidates`)."""
        named, own = self.named_candidates(prompt, request, answer, lexicon, max_new_tokens)
        if not named:
            return answer
        best = max(named, key=lambda g: g.score)
        if lexicon.trusts(command_name(answer.command), request) and best.score <= own:
            return answer
        return best

    def ranked(self, prompt: list[int], request: str, tools: ToolLexicon | None, settings: RankSettings,
               n: int = 1, first: Generated | None = None, is_installed=None,
               max_new_tokens: int = 96, named: bool = True,
               retrieved: Callable[[int], Sequence[str]] | None = None) -> tuple[list[Ranked], bool]:
        """The request's candidates ranked by `tinyllm.infer.rank.rank`, and whether the beam ran.

        The greedy answer (`first`, when the caller decoded it in a batch) and the named-program
        candidates come first; the beam n-best (width `settings.beam`, at least `n`) is added when the
        settings escalate the named-program step's answer (`RankSettings.escalates`: it fails a check that has
        a penalty, or its mean log-prob is below `beam_below`) or when `n` > 1. `named` False leaves the
        named-program candidates out (the checks still use `tools`).
        Then the top `settings.fill` candidates that lack a request value add their filled-in rewrites.
        When every candidate then fails a structure check, `retrieved(k)` (the commands of the k nearest
        training requests) adds `settings.fallback` real commands, scored by the model (`fallback_candidates`)."""
        g = first if first is not None else self.generate([prompt], max_new_tokens)[0]
        own = g.mean_logprob if g.mean_logprob is not None else g.score
        if tools is not None and named:
            named_cands, own = self.named_candidates(prompt, request, g, tools, max_new_tokens)
        else:
            named_cands = []
        cands = [(g.command, own, "greedy")] + [(c.command, c.score, "named") for c in named_cands]
        top_cmd, top_lp = named_step(g.command, own, [(c.command, c.score) for c in named_cands], request, tools) \
            if tools is not None and named else (g.command, own)
        cands.insert(0, (top_cmd, top_lp, "first"))
        known: dict[str, dict[str, int]] = {}
        ranked = rank(cands, request, tools, settings, is_installed, known)
        for r in ranked:
            known[r.command] = r.failed
        top = next(r for r in ranked if r.command == top_cmd) if top_cmd else None
        escalate = n > 1 or settings.escalates(top)
        if escalate:
            width = max(settings.beam, n)
            cands += [(b.command, b.mean_logprob if b.mean_logprob is not None else b.score, "beam")
                      for b in self.beam(prompt, beam=width, n_best=width, max_new_tokens=max_new_tokens)]
            ranked = rank(cands, request, tools, settings, is_installed, known)
        if settings.fill:
            filled = self.filled_candidates(prompt, request, fill_sources(ranked, settings),
                                            {r.command for r in ranked})
            if filled:
                cands += filled
                ranked = rank(cands, request, tools, settings, is_installed, known)
        if settings.fallback and retrieved is not None and all_fail(ranked):
            cands += self.fallback_candidates(prompt, retrieved(settings.fallback))
            ranked = rank(cands, request, tools, settings, is_installed, known)
        return ranked, escalate

    def filled_candidates(self, prompt: list[int], request: str, sources: Sequence[str],
                          seen: Collection[str] = ()) -> list[tuple[str, float, str]]:
        """(command, mean log-prob, "filled") for the rewrites of `sources` that put the request's missing
        values into their placeholders or invented file names (`fill_values`), except those in `seen`;
        one forward for all."""
        cmds = [c for c in dict.fromkeys(f for s in sources for f in fill_values(request, s)) if c not in seen]
        return [(c, lp, "filled") for c, lp in zip(cmds, self.score(prompt, cmds))]

    def fallback_candidates(self, prompt: list[int], commands: Sequence[str]) -> list[tuple[str, float, str]]:
        """(command, mean log-prob, "retrieved") for each distinct, non-empty retrieved command."""
        cmds = [c for c in dict.fromkeys(normalize_command(c) for c in commands) if c]
        return [(c, lp, "retrieved") for c, lp in zip(cmds, self.score(prompt, cmds))]
