"""Numpy inference engine for the TinyLLM architecture (serving without torch).

Same maths as tinyllm.train.model.Transformer, computed in float32 from the checkpoint's weights, with a
static preallocated KV cache, left-padded batched `prefill` and one-token `decode`. Weights are
re-laid out once at load: q/k/v fused, w1/w3 fused, all transposed for ``x @ W``.
Shapes: B batch, T time, D dim, H heads, G kv heads, R = H/G, Dh head dim, S cache length, V vocab.
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm.formats.config import ModelConfig


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x * (1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)) * w


def _rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate (even, odd) pairs of x (..., T, Dh) with cos/sin broadcastable to (..., T, Dh/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def fused_matrices(cfg: ModelConfig, weights: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per layer, the matrices in torch layout (out, in) as the engines run them: wq, wk, wv stacked
    into wqkv ((H + 2G) Dh, D), w1 and w3 into w13 (2 hidden, D), and wo, w2 as stored."""
    layers = []
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        layers.append({
            "wqkv": np.concatenate([weights[p + f"attn.{n}.weight"] for n in ("wq", "wk", "wv")], axis=0),
            "wo": weights[p + "attn.wo.weight"],
            "w13": np.concatenate([weights[p + "ffn.w1.weight"], weights[p + "ffn.w3.weight"]], axis=0),
            "w2": weights[p + "ffn.w2.weight"],
        })
    return layers


def rope_tables(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the RoPE angles, float32 (max_seq_len, head_dim / 2)."""
    half = cfg.head_dim // 2
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2, dtype=np.float64) / cfg.head_dim))
    ang = np.outer(np.arange(cfg.max_seq_len, dtype=np.float64), inv[:half])
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


class NumpyTransformer:
    """Forward passes of the decoder in numpy; API mirrors tinyllm.train.model.Transformer's generation API."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.cfg = cfg
        f32 = np.float32
        self.emb = np.ascontiguousarray(weights["tok_emb.weight"], dtype=f32)  # (V, D)
        self.head = np.ascontiguousarray(self.emb.T)  # tied output head (D, V)
        self.final_norm = weights["norm.weight"].astype(f32)
        self.layers = []
        for i, mats in enumerate(fused_matrices(cfg, weights)):
            p = f"layers.{i}."
            self.layers.append({
                "attn_norm": weights[p + "attn_norm.weight"].astype(f32),
                "ffn_norm": weights[p + "ffn_norm.weight"].astype(f32),
                # transposed for x @ W: wqkv (D, (H + 2G) Dh), wo (H Dh, D), w13 (D, 2 hidden), w2 (hidden, D)
                **{name: np.ascontiguousarray(w.T, dtype=f32) for name, w in mats.items()},
            })
        self.cos, self.sin = rope_tables(cfg)
        self.k_cache: list[np.ndarray] = []
        self.v_cache: list[np.ndarray] = []
        self.valid: np.ndarray | None = None
        self.pos: np.ndarray | None = None
        self.length = 0

    # --- core -----------------------------------------------------------------------------
    def _attend(self, li: int, x: np.ndarray, rot: tuple[np.ndarray, np.ndarray], start: int | None,
                mask: np.ndarray | None) -> np.ndarray:
        cfg, L = self.cfg, self.layers[li]
        B, T, _ = x.shape
        H, G, Dh = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        qkv = x @ L["wqkv"]  # (B, T, (H+2G) Dh)
        qk = qkv[..., : (H + G) * Dh].reshape(B, T, H + G, Dh).transpose(0, 2, 1, 3)  # (B, H+G, T, Dh)
        qk = _rope(qk, *rot)  # queries and keys rotated in one pass
        q, k = qk[:, :H], qk[:, H:]  # (B, H, T, Dh), (B, G, T, Dh)
        v = qkv[..., (H + G) * Dh :].reshape(B, T, G, Dh).transpose(0, 2, 1, 3)
        if start is not None:
            self.k_cache[li][:B, :, start : start + T] = k
            self.v_cache[li][:B, :, start : start + T] = v
            k = self.k_cache[li][:B, :, : start + T]
            v = self.v_cache[li][:B, :, : start + T]
        S = k.shape[2]
        q = q.reshape(B, G, H // G * T, Dh)  # group query heads that share a kv head
        # A Python float scale: a numpy float64 scalar would promote the whole forward pass to float64
        # (NEP 50), and every weight matrix with it, which made decoding 2.5x slower.
        att = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(Dh))  # (B, G, R*T, S)
        att = att.reshape(B, G, H // G, T, S)
        if mask is not None:  # None: every query sees every cached slot (one-row decoding)
            att = np.where(mask[:, None, None], att, -np.inf)
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        y = (att.reshape(B, G, H // G * T, S) @ v).reshape(B, H, T, Dh)
        return y.transpose(0, 2, 1, 3).reshape(B, T, H * Dh) @ L["wo"]

    def _run(self, idx: np.ndarray, pos: np.ndarray, start: int | None, mask: np.ndarray | None,
             last_only: bool = False) -> np.ndarray:
        cfg = self.cfg
        x = self.emb[idx]  # (B, T, D)
        rot = self.cos[pos][:, None], self.sin[pos][:, None]  # (B, 1, T, Dh/2), shared by all layers
        for li, L in enumerate(self.layers):
            x = x + self._attend(li, _rms_norm(x, L["attn_norm"], cfg.norm_eps), rot, start, mask)
            h = _rms_norm(x, L["ffn_norm"], cfg.norm_eps) @ L["w13"]
            a, b = h[..., : cfg.hidden], h[..., cfg.hidden :]
            x = x + ((a / (1.0 + np.exp(-a))) * b) @ L["w2"]
        if last_only:  # prefill needs only the next-token logits: skip the (T-1) x D x V head product
            x = x[:, -1:]
        return _rms_norm(x, self.final_norm, cfg.norm_eps) @ self.head

    def forward(self, idx: np.ndarray) -> np.ndarray:
        """Uncached full forward: ids (B, T) -> logits (B, T, V)."""
        idx = np.asarray(idx)
        B, T = idx.shape
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.cfg.max_seq_len}")
        pos = np.broadcast_to(np.arange(T), (B, T))
        mask = np.broadcast_to(np.tril(np.ones((T, T), dtype=bool)), (B, T, T))
        return self._run(idx, pos, None, mask)

    # --- cached generation ----------------------------------------------------------------
    def setup_cache(self, batch: int, max_seq: int | None = None) -> None:
        """Make room in the KV cache for `batch` rows of up to `max_seq` tokens.

        Buffers are kept between calls and only grow: a long-lived daemon reuses one cache instead of
        allocating (and fragmenting the heap with) megabytes per request. Stale slots are harmless,
        since attention only reads slots marked valid by the current prefill/decode.
        """
        cfg = self.cfg
        self.max_seq = min(max_seq or cfg.max_seq_len, cfg.max_seq_len)
        if self.valid is None or self.valid.shape[0] < batch or self.valid.shape[1] < self.max_seq:
            rows = max(batch, self.valid.shape[0] if self.valid is not None else 0)
            seq = max(self.max_seq, self.valid.shape[1] if self.valid is not None else 0)
            shape = (rows, cfg.kv_heads, seq, cfg.head_dim)
            self.k_cache = [np.zeros(shape, np.float32) for _ in range(cfg.n_layers)]
            self.v_cache = [np.zeros(shape, np.float32) for _ in range(cfg.n_layers)]
            self.valid = np.zeros((rows, seq), dtype=bool)
        self.valid[:] = False
        self.pos, self.length = None, 0

    def _cached_step(self, idx: np.ndarray, pos: np.ndarray, start: int, last_only: bool = False) -> np.ndarray:
        B, T = idx.shape
        if start + T > self.max_seq:
            raise ValueError(f"KV cache full: {start + T} > {self.max_seq} tokens")
        if T == 1 and self.valid[:B, : start + 1].all():
            return self._run(idx, pos, start, None, last_only)  # decoding with no padding: nothing to mask
        causal = np.tril(np.ones((T, start + T), dtype=bool), k=start)
        own = np.zeros_like(causal)
        own[:, start:] = np.eye(T, dtype=bool)  # padding slots attend to themselves only
        mask = (causal[None] & self.valid[:B, None, : start + T]) | own[None]  # (B, T, S)
        return self._run(idx, pos, start, mask, last_only)

    def prefill(self, prompts: list[list[int]]) -> np.ndarray:
        """Left-pad and run the prompts; returns logits of each prompt's last token (B, V)."""
        if self.valid is None:
            raise RuntimeError("KV cache not set up: call setup_cache(batch, max_seq) first")
        B, T = len(prompts), max(len(p) for p in prompts)
        idx = np.zeros((B, T), dtype=np.int64)
        self.valid[:] = False
        for i, p in enumerate(prompts):
            idx[i, T - len(p) :] = p
            self.valid[i, T - len(p) : T] = True
        pos = np.maximum(np.cumsum(self.valid[:B, :T], axis=-1) - 1, 0)
        logits = self._cached_step(idx, pos, 0, last_only=True)[:, -1]
        self.pos, self.length = pos[:, -1] + 1, T
        return logits

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row (B,) at the next position; returns next-token logits (B, V)."""
        if self.valid is None:
            raise RuntimeError("KV cache not set up: call setup_cache(batch, max_seq) first")
        if self.pos is None:
            raise RuntimeError("decode() before prefill(): prefill a prompt first")
        tokens = np.asarray(tokens, dtype=np.int64)
        B = tokens.shape[0]
        self.valid[:B, self.length] = True
        logits = self._cached_step(tokens.reshape(B, 1), self.pos[:B].reshape(B, 1), self.length)[:, -1]
        self.pos, self.length = self.pos[:B] + 1, self.length + 1
        return logits

    def reorder_cache(self, rows: np.ndarray) -> None:
        """Select/duplicate cache rows (beam search): new row i = old row rows[i]."""
        rows = np.asarray(rows)
        n = rows.shape[0]
        for kc, vc in zip(self.k_cache, self.v_cache):
            kc[:n] = kc[rows]
            vc[:n] = vc[rows]
        self.valid[:n] = self.valid[rows]
        self.pos = self.pos[rows]
