"""Pretraining on token shards: random windows, deterministic by (seed, step, micro-batch, rank)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyllm.formats.config import ModelConfig

from .loop import TrainConfig, Trainer
from .model import Transformer


class WindowSampler:
    """Batches of random (x, y) windows over memory-mapped uint16 shards.

    Batch k of rank r depends only on (seed, step, micro, rank), so resuming at a step replays the
    exact data order without saving a data cursor, and each DDP rank reads its own windows.
    """

    def __init__(self, shards: list[np.ndarray], seq_len: int, batch_size: int, seed: int) -> None:
        self.shards = [s for s in shards if len(s) > seq_len + 1]
        if not self.shards:
            raise ValueError(f"no shard holds more than {seq_len + 1} tokens")
        sizes = np.array([len(s) - seq_len - 1 for s in self.shards], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed

    def __call__(self, step: int, micro: int = 0, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, micro, rank])
        which = rng.choice(len(self.shards), size=self.batch_size, p=self.weights)
        rows = []
        for s in which:
            shard = self.shards[s]
            o = int(rng.integers(0, len(shard) - self.seq_len - 1))
            rows.append(np.asarray(shard[o : o + self.seq_len + 1], dtype=np.int64))
        arr = torch.from_numpy(np.stack(rows))
        return arr[:, :-1].contiguous(), arr[:, 1:].contiguous()


def val_loss_fn(val_shards: list[np.ndarray], seq_len: int, n_batches: int = 8, batch_size: int = 8):
    """An eval_fn: mean loss on fixed validation windows; metric = -loss (higher is better)."""
    sampler = WindowSampler(val_shards, seq_len, batch_size, seed=12345)
    batches = [sampler(i) for i in range(n_batches)]

    @torch.no_grad()
    def evaluate(model: Transformer, step: int) -> dict[str, float]:
        dev = model.tok_emb.weight.device
        losses = [float(model(x.to(dev), y.to(dev))[1]) for x, y in batches]
        loss = float(np.mean(losses))
        return {"val_loss": round(loss, 5), "metric": -loss}

    return evaluate


def pretrain(
    cfg: ModelConfig,
    tc: TrainConfig,
    train_shards: list[np.ndarray],
    val_shards: list[np.ndarray],
    out_dir: Path,
    run_meta: dict[str, Any],
    seq_len: int,
    resume: bool = False,
    progress: bool = True,
    until: int | None = None,
) -> Trainer:
    """Pretrain a fresh model (or resume `out_dir/last.pt`); returns the finished Trainer."""
    torch.manual_seed(tc.seed)
    model = Transformer(cfg)
    trainer = Trainer(model, tc, out_dir, {**run_meta, "stage": "pretrain"})
    if resume:
        trainer.resume()
    elif trainer.last_path.exists():
        raise FileExistsError(f"{out_dir} already holds a pretraining run; pass --resume or choose a new --out")
    sampler = WindowSampler(train_shards, seq_len, tc.batch_size, tc.seed)
    evaluate = val_loss_fn(val_shards, seq_len) if val_shards else None
    trainer.run(sampler, evaluate, progress=progress, until=until)
    return trainer
