"""Decoding strategies over any step model (numpy engine or torch adapter): greedy, sampling, beam n-best.

A step model has ``setup_cache(batch, max_seq)``, ``prefill(prompts) -> (B, V)``,
``decode(tokens) -> (B, V)`` and ``reorder_cache(rows)``, returning numpy float logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tinyllm.formats.prompt import EOS_ID


class StepModel(Protocol):
    """What the decoders need from a model."""

    cfg: object

    def setup_cache(self, batch: int, max_seq: int | None = None) -> None: ...
    def prefill(self, prompts: list[list[int]]) -> np.ndarray: ...
    def decode(self, tokens: np.ndarray) -> np.ndarray: ...
    def reorder_cache(self, rows: np.ndarray) -> None: ...


@dataclass
class Candidate:
    """A generated continuation: token ids (without <eos>), total log-probability, score used to rank."""

    ids: list[int]
    logprob: float
    score: float
    finished: bool

    @property
    def mean_logprob(self) -> float:
        """Log-probability per token, the <eos> included when the candidate finished."""
        return self.logprob / max(1, len(self.ids) + int(self.finished))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _budget(model: StepModel, prompts: list[list[int]], max_new_tokens: int) -> int:
    longest = max(len(p) for p in prompts)
    limit = model.cfg.max_seq_len  # type: ignore[attr-defined]
    if longest >= limit:
        raise ValueError(f"prompt of {longest} tokens does not fit the model's {limit}-token context")
    return min(max_new_tokens, limit - longest)


def greedy(model: StepModel, prompts: list[list[int]], max_new_tokens: int = 64) -> list[Candidate]:
    """Batched greedy decoding; each row stops at <eos> or after max_new_tokens."""
    return sample(model, prompts, max_new_tokens, temperature=0.0)


def sample(
    model: StepModel,
    prompts: list[list[int]],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    heads: list[list[int]] | None = None,
    after_head: np.ndarray | None = None,
) -> list[Candidate]:
    """Batched sampling (temperature 0 = greedy) with optional top-k / nucleus filtering.

    Each row first emits its `heads[i]` tokens, if given (teacher-forced, their log-probs counted);
    `after_head`, a boolean mask over the vocabulary, restricts the token right after a head."""
    steps = _budget(model, prompts, max_new_tokens)
    rng = np.random.default_rng(seed)
    B = len(prompts)
    heads = heads or [[] for _ in range(B)]
    model.setup_cache(B, max(len(p) for p in prompts) + steps)
    logits = model.prefill(prompts)
    out: list[list[int]] = [[] for _ in range(B)]
    logp = np.zeros(B)
    done = np.zeros(B, dtype=bool)
    for step in range(steps):
        lp = _log_softmax(logits.astype(np.float64))
        if after_head is not None:  # rows whose head ends here choose among the allowed tokens only
            for i in range(B):
                if step == len(heads[i]):
                    lp[i] = np.where(after_head, lp[i], -np.inf)
        if temperature <= 0:
            tok = lp.argmax(axis=-1)
        else:
            tok = np.array([_sample_row(lp[i] / temperature, top_k, top_p, rng) for i in range(B)])
        for i in range(B):
            if done[i]:
                continue
            if step < len(heads[i]):
                tok[i] = heads[i][step]
            logp[i] += lp[i, tok[i]]
            if tok[i] == EOS_ID:
                done[i] = True
            else:
                out[i].append(int(tok[i]))
        if done.all() or step == steps - 1:
            break
        logits = model.decode(np.where(done, EOS_ID, tok))
    return [Candidate(out[i], float(logp[i]), float(logp[i]), bool(done[i])) for i in range(B)]


def greedy_from(model: StepModel, prompts: list[list[int]], heads: list[list[int]],
                after_head: np.ndarray | None = None, max_new_tokens: int = 64) -> list[Candidate]:
    """Greedy decoding after forced `heads` (see `sample`); `Candidate.score` is the mean log-prob per
    token, the <eos> included (`logprob` the total). A head that ends with <eos> is a whole command:
    its row just gets scored."""
    outs = sample(model, prompts, max_new_tokens, temperature=0.0, heads=heads, after_head=after_head)
    for c in outs:
        c.score = c.mean_logprob
    return outs


def top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the `k` largest values, largest first, ties by lower index: the first `k` of a stable
    argsort of `-values`, without sorting the whole array (a beam step has beam x vocabulary scores)."""
    if k >= values.size:
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, values.size - k)[values.size - k]  # the k-th largest value
    cand = np.flatnonzero(values >= kth)  # every index that can make the top k, ties at the boundary too
    order = np.lexsort((cand, -values[cand]))  # by value, descending, then by index
    return cand[order[:k]]


def _sample_row(scaled: np.ndarray, top_k: int | None, top_p: float | None, rng: np.random.Generator) -> int:
    probs = np.exp(scaled - scaled.max())
    if top_k:
        kth = np.partition(probs, -top_k)[-top_k]
        probs = np.where(probs >= kth, probs, 0.0)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs)
        cum = np.cumsum(probs[order]) / probs.sum()
        cut = order[np.searchsorted(cum, top_p) + 1 :]
        probs[cut] = 0.0
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def beam_search(
    model: StepModel,
    prompt: list[int],
    beam: int = 4,
    n_best: int | None = None,
    max_new_tokens: int = 64,
    length_penalty: float = 1.0,
) -> list[Candidate]:
    """Beam search for one prompt; returns up to n_best candidates sorted by score (best first).

    score = log-probability / (tokens incl. <eos>) ** length_penalty. With beam=1 this is greedy.
    """
    n_best = n_best or beam
    steps = _budget(model, [prompt], max_new_tokens)
    model.setup_cache(beam, len(prompt) + steps)
    logits = model.prefill([prompt])
    model.reorder_cache(np.zeros(beam, dtype=np.int64))
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[Candidate] = []

    def score(lp: float, n: int) -> float:
        return lp / (max(n, 1) ** length_penalty)

    for step in range(steps):
        lp = _log_softmax(logits[: len(beams)].astype(np.float64))
        total = lp + np.array([b[1] for b in beams])[:, None]
        flat = total.ravel()
        top = top_indices(flat, 2 * beam)
        new_beams: list[tuple[list[int], float]] = []
        rows: list[int] = []
        for idx in top:
            row, tok = divmod(int(idx), total.shape[1])
            ids, val = beams[row][0], float(flat[idx])
            if tok == EOS_ID:
                finished.append(Candidate(ids, val, score(val, len(ids) + 1), True))
            else:
                new_beams.append((ids + [tok], val))
                rows.append(row)
            if len(new_beams) == beam:
                break
        best_done = max((c.score for c in finished), default=-np.inf)
        # stop once enough hypotheses finished and no live beam can still beat the best one
        if len(finished) >= beam or not new_beams or step == steps - 1:
            break
        if len(finished) >= n_best and max(score(b[1], len(b[0]) + 1) for b in new_beams) < best_done:
            break
        beams = new_beams
        model.reorder_cache(np.array(rows + [rows[0]] * (beam - len(rows)), dtype=np.int64))
        logits = model.decode(np.array([b[0][-1] for b in beams] + [0] * (beam - len(beams)), dtype=np.int64))
    else:
        new_beams = beams
    if len(finished) < n_best:  # out of budget: include live beams, marked unfinished
        finished += [Candidate(ids, lp, score(lp, len(ids)), False) for ids, lp in new_beams]
    finished.sort(key=lambda c: -c.score)
    return finished[:n_best]
