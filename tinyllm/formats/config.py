"""Model configuration: one dataclass with named presets. No torch import (the numpy runtime uses it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the decoder-only transformer (LLaMA-style)."""

    vocab_size: int = 8192
    dim: int = 384
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None  # None => n_heads (plain multi-head); fewer => grouped-query attention
    ffn_hidden: int | None = None  # None => the seed's SwiGLU rule (2/3 * 4 * dim, rounded up to 64)
    max_seq_len: int = 512
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.kv_heads}")

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads."""
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        """Per-head width."""
        return self.dim // self.n_heads

    @property
    def hidden(self) -> int:
        """SwiGLU inner width."""
        if self.ffn_hidden:
            return self.ffn_hidden
        h = int(2 * 4 * self.dim / 3)
        return 64 * ((h + 63) // 64)

    def num_params(self) -> int:
        """Parameter count with tied embeddings (the output head shares the embedding matrix)."""
        d, kv = self.dim, self.kv_heads * self.head_dim
        attn = d * d * 2 + d * kv * 2  # wq, wo, wk, wv
        ffn = 3 * d * self.hidden
        return self.vocab_size * d + self.n_layers * (attn + ffn + 2 * d) + d

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown keys are an error (a checkpoint from another version)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset (see PRESETS), optionally with overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, ModelConfig] = {
    # The seed: 512 hidden, 12 layers, 8 heads, 32k vocab, seq 512, FFN 4*dim (=> 66.73M params as reported).
    "seed": ModelConfig(vocab_size=32000, dim=512, n_layers=12, n_heads=8, ffn_hidden=2048, max_seq_len=512),
    # CPU-trainable default, chosen by measurement on a 2-core machine (see MODEL_CARD.md).
    "default": ModelConfig(vocab_size=8192, dim=384, n_layers=6, n_heads=6, max_seq_len=512),
    # Larger CPU candidates measured against `default` at equal wall-clock (docs/experiments.md).
    "medium": ModelConfig(vocab_size=8192, dim=512, n_layers=8, n_heads=8, max_seq_len=512),  # 29.9M
    "large": ModelConfig(vocab_size=8192, dim=640, n_layers=9, n_heads=10, max_seq_len=512),  # 49.9M
    # A smaller CPU candidate measured against `default`.
    "small": ModelConfig(vocab_size=8192, dim=256, n_layers=6, n_heads=4, max_seq_len=512),
    # Tests: trains in seconds.
    "micro": ModelConfig(vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=256),
}
