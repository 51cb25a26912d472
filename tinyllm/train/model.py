"""LLaMA-style decoder-only transformer in PyTorch (training, batched eval, GPUs).

RoPE, RMSNorm, SwiGLU, pre-norm blocks, tied embeddings, causal SDPA attention, optional
grouped-query attention, and a static preallocated KV cache with `prefill` + `decode`.
The numpy runtime (tinyllm.infer.engine) implements the same maths for serving without torch.
Shapes: B batch, T time, D dim, H heads, Hkv kv heads, Dh head dim, V vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from tinyllm.formats.config import ModelConfig


def rope_tables(head_dim: int, max_seq: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_seq, Dh/2) for rotary embeddings (rotate-pairs convention)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = torch.outer(torch.arange(max_seq, dtype=torch.float64), inv)
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (even, odd) pairs of x (B, H, T, Dh) by angles cos/sin broadcastable to (B, 1, T, Dh/2)."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class KVCache(nn.Module):
    """Static preallocated key/value cache (B, Hkv, S, Dh), written in place."""

    def __init__(self, batch: int, max_seq: int, n_kv: int, head_dim: int, dtype: torch.dtype, device) -> None:
        super().__init__()
        shape = (batch, n_kv, max_seq, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)


class Attention(nn.Module):
    """Multi-head / grouped-query causal self-attention."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        self.cache: KVCache | None = None

    def forward(self, x, cos, sin, start: int | None = None, mask: torch.Tensor | None = None):
        """x (B, T, D). With start=None: plain causal attention over x. Otherwise write k/v at
        cache positions [start, start+T) and attend over [0, start+T) with `mask` (B, 1, T, start+T)."""
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.wk(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = self.wv(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if start is not None:
            if self.cache is None:
                raise RuntimeError("KV cache not set up: call model.setup_cache(batch, max_seq) first")
            self.cache.k[:B, :, start : start + T] = k
            self.cache.v[:B, :, start : start + T] = v
            k, v = self.cache.k[:B, :, : start + T], self.cache.v[:B, :, : start + T]
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.w2 = nn.Linear(cfg.hidden, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x, cos, sin, start=None, mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, start, mask)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """The TinyLLM decoder. `forward` for training; `setup_cache` + `prefill` + `decode` for generation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.output.weight = self.tok_emb.weight  # tied
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 style scaled init of residual projections
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
        self._pos: torch.Tensor | None = None  # (B,) next position per row while decoding
        self._valid: torch.Tensor | None = None  # (B, S) which cache slots hold real tokens
        self._len = 0  # cache slots used

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Unique parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) -> logits (B, T, V); with targets (B, T, -100 = ignore) also the mean loss."""
        T = idx.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.cfg.max_seq_len}")
        x = self.tok_emb(idx)
        cos, sin = self.rope_cos[:T][None, None], self.rope_sin[:T][None, None]
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.output(self.norm(x))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)
        return logits, loss

    # --- generation with a static KV cache -------------------------------------------------
    def setup_cache(self, batch: int, max_seq: int | None = None) -> None:
        """Preallocate the KV cache for `batch` rows of up to `max_seq` tokens."""
        max_seq = min(max_seq or self.cfg.max_seq_len, self.cfg.max_seq_len)
        p = self.tok_emb.weight
        for layer in self.layers:
            layer.attn.cache = KVCache(batch, max_seq, self.cfg.kv_heads, self.cfg.head_dim, p.dtype, p.device)
        self._max_seq = max_seq
        self._valid = torch.zeros(batch, max_seq, dtype=torch.bool, device=p.device)
        self._pos, self._len = None, 0

    def _step(self, idx: torch.Tensor, pos: torch.Tensor, start: int) -> torch.Tensor:
        """Run T tokens (B, T) at absolute rope positions pos (B, T) into cache slots [start, start+T)."""
        B, T = idx.shape
        if start + T > self._max_seq:
            raise ValueError(f"KV cache full: {start + T} > {self._max_seq} tokens")
        cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]  # (B, 1, T, Dh/2)
        causal = torch.ones(T, start + T, dtype=torch.bool, device=idx.device).tril(diagonal=start)
        own = torch.zeros_like(causal)
        own[:, start:] = torch.eye(T, dtype=torch.bool, device=idx.device)
        # a padding slot attends to itself only, so its (unused) row never becomes NaN
        mask = ((causal[None] & self._valid[:B, None, : start + T]) | own[None])[:, None]  # (B, 1, T, start+T)
        x = self.tok_emb(idx)
        for layer in self.layers:
            x = layer(x, cos, sin, start, mask)
        return self.output(self.norm(x))

    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """Left-pad and run the prompts; returns logits of each prompt's last token (B, V)."""
        if self._valid is None:
            raise RuntimeError("KV cache not set up: call model.setup_cache(batch, max_seq) first")
        B, T = len(prompts), max(len(p) for p in prompts)
        dev = self._valid.device
        idx = torch.zeros(B, T, dtype=torch.long, device=dev)
        self._valid.zero_()
        for i, p in enumerate(prompts):
            idx[i, T - len(p) :] = torch.tensor(p, dtype=torch.long, device=dev)
            self._valid[i, T - len(p) : T] = True
        pos = (self._valid[:B, :T].long().cumsum(-1) - 1).clamp(min=0)
        logits = self._step(idx, pos, 0)[:, -1]
        self._pos, self._len = pos[:, -1] + 1, T
        return logits.float()

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (B,) at the next position; returns next-token logits (B, V)."""
        if self._valid is None:
            raise RuntimeError("KV cache not set up: call model.setup_cache(batch, max_seq) first")
        if self._pos is None:
            raise RuntimeError("decode() before prefill(): prefill a prompt first")
        B = tokens.shape[0]
        self._valid[:B, self._len] = True
        logits = self._step(tokens.view(B, 1), self._pos.view(B, 1), self._len)[:, -1]
        self._pos, self._len = self._pos + 1, self._len + 1
        return logits.float()

    def reorder_cache(self, rows: torch.Tensor) -> None:
        """Select/duplicate cache rows (beam search): new row i = old row rows[i]."""
        n = rows.shape[0]
        for layer in self.layers:
            c = layer.attn.cache
            c.k[:n] = c.k[rows]
            c.v[:n] = c.v[rows]
        self._valid[:n] = self._valid[rows]
        self._pos = self._pos[rows]


class TorchStepModel:
    """Adapter giving a Transformer the numpy step-model API of tinyllm.infer.generate (for eval on GPUs/CPU)."""

    def __init__(self, model: Transformer) -> None:
        self.model, self.cfg = model, model.cfg
        self.device = model.tok_emb.weight.device

    def setup_cache(self, batch: int, max_seq: int | None = None) -> None:
        self.model.setup_cache(batch, max_seq)

    def prefill(self, prompts: list[list[int]]):
        return self.model.prefill(prompts).cpu().numpy()

    def decode(self, tokens):
        t = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        return self.model.decode(t).cpu().numpy()

    def reorder_cache(self, rows) -> None:
        self.model.reorder_cache(torch.as_tensor(rows, dtype=torch.long, device=self.device))


def state_to_numpy(model: Transformer) -> dict:
    """Weights as float32 numpy arrays keyed by state_dict name, without the tied output head."""
    return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if k != "output.weight"}


def load_numpy_state(model: Transformer, weights: dict) -> Transformer:
    """Load numpy weights (see state_to_numpy) into a Transformer; the head stays tied."""
    sd = {k: torch.from_numpy(v.astype("float32")) for k, v in weights.items()}
    sd["output.weight"] = sd["tok_emb.weight"]
    model.load_state_dict(sd, strict=True)
    return model
