"""The shared training loop of pretraining and SFT: AdamW, warmup + cosine, clipping, accumulation,
bf16 autocast, atomic checkpoints, exact resume, JSONL logs, progress bar, DDP."""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from tinyllm.formats.checkpoint import CheckpointError

from .device import autocast_dtype, cpu_has_native_bf16, pick_device
from .model import Transformer
from .state import load_train_state, rng_state, save_train_state, set_rng_state

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings (seed defaults: lr 3e-4, betas 0.9/0.95, wd 0.01)."""

    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 200
    ckpt_every: int = 100
    log_every: int = 10
    seed: int = 0
    bf16: bool = True
    compile: bool = False
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warmup then cosine decay to min_lr_ratio * lr."""
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    t = min(1.0, (step - tc.warmup) / max(1, tc.steps - tc.warmup))
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(model: torch.nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm scales are not decayed)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), foreach=True)


def _destroy_process_group() -> None:
    if dist.is_initialized():
        try:
            # Every rank reaches teardown before any tears down: rank 0 still writing its last
            # checkpoint while rank 1 destroys its group made rank 1 abort about one run in twenty.
            dist.barrier()
        except RuntimeError:  # a peer that has already gone: tear down regardless
            pass
        dist.destroy_process_group()


def dist_info() -> tuple[int, int]:
    """(rank, world_size), initialising the process group under torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # Tear the group down before interpreter shutdown: left to process exit, gloo's worker
        # threads are destroyed while still joinable and the C++ runtime aborts ("terminate called
        # without an active exception"), failing a finished run with SIGABRT.
        atexit.register(_destroy_process_group)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


AMP_NAMES: dict[torch.dtype | None, str] = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
AMP_DTYPES = {name: dtype for dtype, name in AMP_NAMES.items()}


class Trainer:
    """Runs `tc.steps` optimizer steps of `batch_fn(step, micro, rank) -> (x, y)` on `model`."""

    def __init__(self, model: Transformer, tc: TrainConfig, out_dir: Path, run_meta: dict[str, Any]) -> None:
        self.tc, self.out_dir, self.run_meta = tc, Path(out_dir), run_meta
        self.rank, self.world = dist_info()
        self.device = pick_device(tc.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self.model = model.to(self.device)
        self.amp = autocast_dtype(self.device, tc.bf16)
        if tc.bf16 and self.amp is None and self.device.type == "cpu" and self.rank == 0:
            print("train: bf16 autocast is much slower than fp32 on this CPU (no native bf16); training in fp32",
                  file=sys.stderr)
        self.opt = make_optimizer(self.model, tc)
        self.step = 0
        self.best: float | None = None
        self.seconds = 0.0  # wall-clock seconds in the training loop up to self.step, across resumes
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.fwd = self.ddp or self.model
        if tc.compile:
            self.fwd = torch.compile(self.fwd)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    def save(self, path: Path | None = None) -> None:
        """Checkpoint everything needed to continue bit-exactly (rank 0 only)."""
        if self.rank != 0:
            return
        save_train_state(path or self.last_path, {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
            "best": self.best, "seconds": self.seconds, "rng": rng_state(), "model_config": self.model.cfg.to_dict(),
            "train_config": asdict(self.tc), "run": self.run_meta,
            "amp": {"device": self.device.type, "dtype": AMP_NAMES[self.amp]},
        })

    def resume(self) -> bool:
        """Load last.pt if present; refuse a checkpoint of another config or tokenizer."""
        if not self.last_path.exists():
            return False
        st = load_train_state(self.last_path)
        if st["model_config"] != self.model.cfg.to_dict():
            raise CheckpointError(f"{self.last_path}: holds a run with another model config; use a new --out")
        for key in ("tokenizer_sha256", "stage"):
            if st["run"].get(key) != self.run_meta.get(key):
                raise CheckpointError(f"{self.last_path}: holds a run with another {key}; use a new --out")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.step, self.best = int(st["step"]), st["best"]
        self.seconds = float(st.get("seconds", 0.0))  # 0 for checkpoints written before it was kept
        set_rng_state(st["rng"])
        self._keep_precision(st.get("amp"))
        return True

    def _keep_precision(self, saved: dict[str, str] | None) -> None:
        """Continue in the precision the run was checkpointed in (same device kind, bf16 not turned off),
        so that a resume stays bit-exact even where the CPU speed check would now choose otherwise; but
        never bf16 on a CPU without bf16 instructions that the check turned down (emulated, 15x slower)."""
        if not saved or saved.get("device") != self.device.type or not self.tc.bf16:
            return
        amp = AMP_DTYPES.get(saved.get("dtype", ""), self.amp)
        if self.device.type == "cpu" and amp is torch.bfloat16 and self.amp is None and not cpu_has_native_bf16():
            return
        if amp != self.amp and self.rank == 0:
            print(f"train: continuing in {saved['dtype']} as the run was checkpointed", file=sys.stderr)
        self.amp = amp

    def log(self, row: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    def run(
        self,
        batch_fn: Callable[[int, int, int], Batch],
        eval_fn: Callable[[Transformer, int], dict[str, float]] | None = None,
        on_best: Callable[[Transformer, dict[str, float]], None] | None = None,
        progress: bool = True,
        until: int | None = None,
        snapshot_every: int = 0,
        on_snapshot: Callable[[Transformer, int], None] | None = None,
    ) -> dict[str, Any]:
        """Train to tc.steps (or stop early at step `until`, checkpointed, as an interruption would);
        eval_fn's "metric" (higher is better) picks the best model for on_best; on_snapshot(model, step)
        runs every `snapshot_every` steps (learning curves, checkpoint averaging), before that step's
        checkpoint, so that a run interrupted in between writes the same snapshot again on resume."""
        tc = self.tc
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if progress and self.rank == 0 and self.step < tc.steps:
            from tqdm import tqdm

            bar = tqdm(total=tc.steps, initial=self.step, file=sys.stderr, dynamic_ncols=True, mininterval=2.0)
        try:
            t0, tokens, seconds0 = time.perf_counter(), 0, self.seconds
            last: dict[str, Any] = {}
            stop = min(tc.steps, until) if until is not None else tc.steps
            while self.step < stop:
                lr = lr_at(self.step, tc)
                for g in self.opt.param_groups:
                    g["lr"] = lr
                self.model.train()
                loss_sum = 0.0
                for micro in range(tc.grad_accum):
                    x, y = batch_fn(self.step, micro, self.rank)
                    x, y = x.to(self.device), y.to(self.device)
                    tokens += x.numel() * self.world  # processed tokens (incl. prompt and padding)
                    sync = self.ddp is None or micro == tc.grad_accum - 1
                    ctx = self.ddp.no_sync() if not sync else contextlib.nullcontext()
                    with ctx, torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                        _, loss = self.fwd(x, y)
                        (loss / tc.grad_accum).backward()
                    loss_sum += float(loss.detach()) / tc.grad_accum
                gnorm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip))
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                self.step += 1
                dt = time.perf_counter() - t0
                self.seconds = seconds0 + dt
                last = {"step": self.step, "loss": round(loss_sum, 5), "lr": lr, "grad_norm": round(gnorm, 4),
                        "tokens_per_s": round(tokens / dt, 1) if dt else 0.0, "train_s": round(self.seconds, 1)}
                if self.step % tc.log_every == 0 or self.step in (tc.steps, stop):
                    self.log(last)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{last['tokens_per_s']:.0f}", refresh=False)
                if (eval_fn is not None and tc.eval_every > 0 and self.rank == 0
                        and (self.step % tc.eval_every == 0 or self.step in (tc.steps, stop))):
                    self.model.eval()
                    metrics = eval_fn(self.model, self.step)
                    self.log({"step": self.step, "eval": metrics})
                    if on_best is not None and (self.best is None or metrics["metric"] > self.best):
                        self.best = metrics["metric"]
                        on_best(self.model, metrics)
                if on_snapshot is not None and snapshot_every and self.step % snapshot_every == 0 and self.rank == 0:
                    self.model.eval()
                    on_snapshot(self.model, self.step)
                if self.step % tc.ckpt_every == 0 or self.step in (tc.steps, stop):
                    self.save()
        finally:
            if bar is not None:
                bar.close()
        return last

