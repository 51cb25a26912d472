"""Instruction fine-tuning: prompt tokens masked with -100, loss on the command and <eos> only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyllm.formats.prompt import PAD_ID, Example, training_platform
from tinyllm.formats.tokenizer import Tokenizer

from .loop import TrainConfig, Trainer
from .model import Transformer

IGNORE = -100


def build_example(tok: Tokenizer, row: dict, examples: Sequence[Example] = (), max_len: int = 256) -> tuple[list[int], list[int]] | None:
    """(x, y) for one pair: x = prompt + target[:-1]; y masks the prompt. Drops examples to fit; None if
    even the bare request does not fit in max_len tokens. The platform tag is the user's system
    (`training_platform`: a "common" command is shown as a linux or a macos answer)."""
    target = tok.encode_target(row["command"])
    examples = list(examples)
    platform = training_platform(row.get("platform", "linux"), row["instruction"])
    while True:
        prompt = tok.encode_prompt(row["instruction"], platform, examples)
        if len(prompt) + len(target) <= max_len + 1:
            break
        if not examples:
            return None
        examples.pop()
    x = prompt + target[:-1]
    y = [IGNORE] * (len(prompt) - 1) + target
    return x, y


class SFTBatches:
    """Length-bucketed padded batches, deterministic by (seed, step, micro, rank) for exact resume.

    Rows are shuffled per epoch; each group of 16 batches is sorted by length to reduce padding.
    """

    def __init__(self, examples: list[tuple[list[int], list[int]]], batch_size: int, seed: int, world: int = 1) -> None:
        if not examples:
            raise ValueError("no training examples")
        self.examples, self.batch_size, self.seed, self.world = examples, batch_size, seed, world
        self.lengths = np.array([len(x) for x, _ in examples])

    def _indices(self, k: int) -> np.ndarray:
        """Indices of global batch number k."""
        n = len(self.examples)
        bs = min(self.batch_size, n)
        group = max(1, min(16, n // bs))
        per_epoch = n // (bs * group)  # whole groups per epoch (>= 1)
        epoch, g = divmod(k // group, per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(n)
        chunk = perm[g * bs * group : (g + 1) * bs * group]
        chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
        order = np.random.default_rng([self.seed, epoch, g]).permutation(group)
        b = order[k % group]
        return chunk[b * bs : (b + 1) * bs]

    def __call__(self, step: int, micro: int = 0, rank: int = 0, accum: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        k = (step * accum + micro) * self.world + rank
        idx = self._indices(k)
        T = int(self.lengths[idx].max())
        x = torch.full((len(idx), T), PAD_ID, dtype=torch.long)
        y = torch.full((len(idx), T), IGNORE, dtype=torch.long)
        for r, i in enumerate(idx):
            xi, yi = self.examples[i]
            x[r, : len(xi)] = torch.tensor(xi)
            y[r, : len(yi)] = torch.tensor(yi)
        return x, y


def sft(
    model: Transformer,
    tok: Tokenizer,
    tc: TrainConfig,
    train_examples: list[tuple[list[int], list[int]]],
    out_dir: Path,
    run_meta: dict[str, Any],
    eval_fn=None,
    on_best=None,
    resume: bool = False,
    progress: bool = True,
    until: int | None = None,
    snapshot_every: int = 0,
    on_snapshot=None,
) -> Trainer:
    """Fine-tune `model` on the examples; eval_fn/on_best keep the best checkpoint by dev metric."""
    trainer = Trainer(model, tc, out_dir, {**run_meta, "stage": "sft"})
    if resume:
        trainer.resume()
    elif trainer.last_path.exists():
        raise FileExistsError(f"{out_dir} already holds an SFT run; pass --resume or choose a new --out")
    batches = SFTBatches(train_examples, tc.batch_size, tc.seed, trainer.world)
    trainer.run(lambda s, m, r: batches(s, m, r, tc.grad_accum), eval_fn, on_best, progress=progress, until=until,
                snapshot_every=snapshot_every, on_snapshot=on_snapshot)
    return trainer
