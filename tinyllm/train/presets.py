"""Training plans per preset: model size, tokenizer, pretraining and SFT budgets."""

from __future__ import annotations

from dataclasses import dataclass, field

from .loop import TrainConfig


@dataclass(frozen=True)
class Plan:
    """Everything `nl2cmd-train all --preset NAME` needs besides the data."""

    model: str
    vocab_size: int
    seq_len: int  # pretraining window
    sft_max_len: int
    pretrain: TrainConfig
    sft: TrainConfig
    retrieval_k: tuple[int, ...] = (0,)  # k of retrieved examples per SFT row, drawn per row from these
    limit_man: int | None = None
    dev_eval_rows: int = 300
    snapshot_every: int = 0  # SFT keeps its weights every N steps as sft/snap_STEP.npz
    average_last: int = 0  # >= 2: the model is the mean of the last N snapshots (sft/average.npz)
    rank_rows: int | None = None  # dev and calibration rows the `rank` stage fits the ranking on (None: all)
    extra: dict = field(default_factory=dict)


PLANS: dict[str, Plan] = {
    "micro": Plan(
        model="micro", vocab_size=512, seq_len=128, sft_max_len=128,
        pretrain=TrainConfig(steps=30, batch_size=8, lr=2e-3, warmup=5, eval_every=15, ckpt_every=15, log_every=5),
        sft=TrainConfig(steps=60, batch_size=16, lr=2e-3, warmup=5, eval_every=30, ckpt_every=30, log_every=5),
        retrieval_k=(0, 2), limit_man=20, dev_eval_rows=32, snapshot_every=30, average_last=2, rank_rows=24,
    ),
    "small": Plan(
        model="small", vocab_size=8192, seq_len=256, sft_max_len=192,
        pretrain=TrainConfig(steps=1500, batch_size=16, lr=1e-3, warmup=100, eval_every=250, ckpt_every=100),
        sft=TrainConfig(steps=8000, batch_size=32, lr=5e-4, warmup=200, eval_every=1000, ckpt_every=200),
        retrieval_k=(0, 2),
    ),
    # The shipped first model's recipe (g9 in v31, v29 before it), chosen by measurement (docs/experiments.md):
    # 900 pretraining steps, 10,000 SFT steps of batch 160 (7 epochs of the 230,098-row mixture, 58M tokens:
    # ~10 minutes on one GPU; on two CPU cores with AMX bf16 and jemalloc, ~1.05 s per SFT step, ~4 h in all;
    # ~16 h in fp32 on two AVX2 cores), the mean of the last three snapshots.
    "default": Plan(
        model="default", vocab_size=8192, seq_len=256, sft_max_len=192,
        pretrain=TrainConfig(steps=900, batch_size=16, lr=8e-4, warmup=100, eval_every=250, ckpt_every=100),
        sft=TrainConfig(steps=10000, batch_size=160, lr=7e-4, warmup=200, eval_every=1000, ckpt_every=250),
        retrieval_k=(0,), snapshot_every=1250, average_last=3,
    ),
    # Size candidates: the default plan with a wider, deeper model (compared at equal wall-clock).
    "medium": Plan(
        model="medium", vocab_size=8192, seq_len=256, sft_max_len=192,
        pretrain=TrainConfig(steps=1000, batch_size=16, lr=8e-4, warmup=100, eval_every=250, ckpt_every=100),
        sft=TrainConfig(steps=4000, batch_size=32, lr=5e-4, warmup=200, eval_every=500, ckpt_every=100),
        retrieval_k=(0,),
    ),
    "large": Plan(
        model="large", vocab_size=8192, seq_len=256, sft_max_len=192,
        pretrain=TrainConfig(steps=1000, batch_size=16, lr=6e-4, warmup=100, eval_every=250, ckpt_every=100),
        sft=TrainConfig(steps=4000, batch_size=32, lr=4e-4, warmup=200, eval_every=500, ckpt_every=100),
        retrieval_k=(0,),
    ),
    # The seed's recipe: 50k pretraining steps of batch 8 x 512 tokens, 2k SFT steps at lr 1e-4. A GPU job.
    "seed": Plan(
        model="seed", vocab_size=32000, seq_len=512, sft_max_len=256,
        pretrain=TrainConfig(steps=50000, batch_size=8, lr=3e-4, warmup=1000, eval_every=1000, ckpt_every=1000),
        sft=TrainConfig(steps=2000, batch_size=8, lr=1e-4, warmup=200, eval_every=500, ckpt_every=500),
        retrieval_k=(0, 2),
    ),
}
