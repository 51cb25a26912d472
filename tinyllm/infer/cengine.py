"""Int8 C engine: the decoder's forward pass in C (tinyllm/infer/_kernels.c) over int8 weights, via ctypes.

Same step-model API as tinyllm.infer.engine.NumpyTransformer (``setup_cache``, ``prefill``, ``decode``,
``reorder_cache``, ``forward``). Every matrix is quantised at load to int8 in groups of ``tinyllm.formats.quant.GROUP``
inputs with one float32 scale per group (symmetric, round half to even). By default each matrix
input is quantised the same way on the fly (``activations="int8"``), so the dot products are exact
int8 integer sums (AVX2 vpmaddubsw), 1.2-1.5x faster than float32 activations; norms, attention,
softmax and the KV cache stay float32. With ``activations="float32"`` the engine computes exactly
what the numpy engine computes on `tinyllm.formats.quant.dequantized_weights` (the tests' reference).

Unlike the numpy engine, rows are not left-padded: each cache row keeps its own length, and token i
of a call attends to slots 0..pos[i] of its own row.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from tinyllm.formats.config import ModelConfig
from tinyllm.formats.quant import group_size

from .engine import fused_matrices, rope_tables

_i8p, _f32p, _i32p = ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)


class _QMat(ctypes.Structure):
    _fields_ = [("q", _i8p), ("s", _f32p), ("rows", ctypes.c_int32), ("cols", ctypes.c_int32), ("gs", ctypes.c_int32)]


class _Layer(ctypes.Structure):
    _fields_ = [("attn_norm", _f32p), ("ffn_norm", _f32p), ("wqkv", _QMat), ("wo", _QMat), ("w13", _QMat),
                ("w2", _QMat)]


class _Model(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in
                ("dim", "n_layers", "n_heads", "kv_heads", "head_dim", "hidden", "vocab", "max_seq")] + [
        ("eps", ctypes.c_float), ("emb", _QMat), ("final_norm", _f32p), ("cos", _f32p), ("sin", _f32p),
        ("layers", ctypes.POINTER(_Layer)), ("act_int8", ctypes.c_int32)]


class _Cache(ctypes.Structure):
    _fields_ = [("k", _f32p), ("v", _f32p), ("rows", ctypes.c_int32), ("seq", ctypes.c_int32)]


_lib: ctypes.CDLL | None = None
_load_error: str | None = None


def _library() -> ctypes.CDLL | None:
    """The compiled kernels, or None when the extension was not built (see `unavailable_reason`)."""
    global _lib, _load_error
    if _lib is None and _load_error is None:
        try:
            from . import _kernels  # type: ignore[attr-defined]

            lib = ctypes.CDLL(_kernels.__file__)
            lib.tl_forward.restype = ctypes.c_int
            lib.tl_forward.argtypes = [ctypes.POINTER(_Model), ctypes.POINTER(_Cache), ctypes.c_int, _i32p, _i32p,
                                       _i32p, ctypes.c_int, _i32p, _f32p]
            lib.tl_simd.restype = ctypes.c_int
            lib.tl_use_simd.restype = ctypes.c_int
            lib.tl_use_simd.argtypes = [ctypes.c_int]
            lib.tl_matmul.restype = ctypes.c_int
            lib.tl_matmul.argtypes = [ctypes.POINTER(_QMat), _f32p, ctypes.c_int, _f32p, ctypes.c_int]
            lib.tl_quantize.restype = None
            lib.tl_quantize.argtypes = [_f32p, ctypes.c_int, ctypes.c_int, ctypes.c_int, _i8p, _f32p]
            lib.tl_set_threads.restype = ctypes.c_int
            lib.tl_set_threads.argtypes = [ctypes.c_int]
            _lib = lib
        except (ImportError, OSError, AttributeError) as exc:
            _load_error = f"C kernels not built ({type(exc).__name__}: {exc})"
    return _lib


def set_threads(n: int) -> int:
    """Threads per matrix product in this process (the caller included, 1-16); returns the count in use."""
    lib = _library()
    if lib is None:
        raise RuntimeError(_load_error or "C kernels unavailable")
    return int(lib.tl_set_threads(int(n)))


def threads_choice() -> int:
    """Threads per matrix product from NL2CMD_THREADS (default 1). A second thread decodes ~1.5x faster
    on an idle 2-core machine but loses when another program wants the core (README Performance)."""
    raw = os.environ.get("NL2CMD_THREADS", "1").strip()
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def unavailable_reason() -> str | None:
    """None when the C engine can run here with SIMD kernels, else why not (one line)."""
    lib = _library()
    if lib is None:
        return _load_error
    if not lib.tl_simd():
        return "C kernels built, but this CPU lacks AVX2/FMA (only the portable C loops would run)"
    return None


class CTransformer:
    """Int8 weights, int8 (default) or float32 matrix inputs, forward pass in C. RuntimeError if the
    kernels are missing, ValueError for a model shape they do not take (see `group_size`)."""

    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray], threads: int | None = None,
                 activations: str = "int8") -> None:
        lib = _library()
        if lib is None:
            raise RuntimeError(_load_error or "C kernels unavailable")
        if activations not in ("int8", "float32"):
            raise ValueError(f"activations must be int8 or float32, not {activations!r}")
        group = group_size(cfg)
        self.threads = set_threads(threads_choice() if threads is None else threads)
        self._lib, self.cfg = lib, cfg
        self._keep: list[np.ndarray] = []  # arrays the C structs point into

        def ptr(a: np.ndarray, kind):
            a = np.ascontiguousarray(a)
            self._keep.append(a)
            return a.ctypes.data_as(kind)

        def qmat(w: np.ndarray) -> _QMat:
            # quantize() in C (10x faster at load); the fused wqkv rows get the same groups as wq, wk, wv apart
            w = np.ascontiguousarray(w, dtype=np.float32)
            rows, cols = w.shape
            q, s = np.empty((rows, cols), np.int8), np.empty((rows, cols // group), np.float32)
            lib.tl_quantize(w.ctypes.data_as(_f32p), rows, cols, group, q.ctypes.data_as(_i8p), s.ctypes.data_as(_f32p))
            return _QMat(ptr(q, _i8p), ptr(s, _f32p), rows, cols, group)

        f32 = np.float32
        layers = (_Layer * cfg.n_layers)()
        for i, mats in enumerate(fused_matrices(cfg, weights)):
            p = f"layers.{i}."
            layers[i] = _Layer(ptr(weights[p + "attn_norm.weight"].astype(f32), _f32p),
                               ptr(weights[p + "ffn_norm.weight"].astype(f32), _f32p),
                               qmat(mats["wqkv"]), qmat(mats["wo"]), qmat(mats["w13"]), qmat(mats["w2"]))
        cos, sin = rope_tables(cfg)
        self._layers = layers
        self._model = _Model(cfg.dim, cfg.n_layers, cfg.n_heads, cfg.kv_heads, cfg.head_dim, cfg.hidden,
                             cfg.vocab_size, cfg.max_seq_len, cfg.norm_eps, qmat(weights["tok_emb.weight"]),
                             ptr(weights["norm.weight"].astype(f32), _f32p), ptr(cos, _f32p), ptr(sin, _f32p),
                             layers, int(activations == "int8"))
        self.activations = activations
        self._model_ref = ctypes.byref(self._model)
        self.k_cache = np.zeros((0, cfg.n_layers, cfg.kv_heads, 0, cfg.head_dim), np.float32)
        self.v_cache = self.k_cache
        self._cache = self._cache_struct(self.k_cache, self.v_cache)
        self.lengths: np.ndarray | None = None
        self.max_seq = 0
        self._arange = np.arange(8, dtype=np.int32)  # row indices for decode (_rows), grown on demand

    # --- one C call -----------------------------------------------------------------------------
    def _forward(self, cache: _Cache, tokens, rows, pos, out_idx) -> np.ndarray:
        tok = np.ascontiguousarray(tokens, dtype=np.int32)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        pos = np.ascontiguousarray(pos, dtype=np.int32)
        out_idx = np.ascontiguousarray(out_idx, dtype=np.int32)
        logits = np.empty((len(out_idx), self.cfg.vocab_size), np.float32)
        rc = self._lib.tl_forward(self._model_ref, ctypes.byref(cache), len(tok), tok.ctypes.data_as(_i32p),
                                  rows.ctypes.data_as(_i32p), pos.ctypes.data_as(_i32p), len(out_idx),
                                  out_idx.ctypes.data_as(_i32p), logits.ctypes.data_as(_f32p))
        if rc == -2:
            raise MemoryError("C engine: out of memory")
        if rc != 0:
            raise ValueError("C engine: token, row or position out of range")
        return logits

    @staticmethod
    def _cache_struct(k: np.ndarray, v: np.ndarray) -> _Cache:
        return _Cache(k.ctypes.data_as(_f32p), v.ctypes.data_as(_f32p), k.shape[0], k.shape[3])

    # --- step-model API -------------------------------------------------------------------------
    def setup_cache(self, batch: int, max_seq: int | None = None) -> None:
        """Make room for `batch` rows of up to `max_seq` tokens (buffers only grow; see NumpyTransformer)."""
        cfg = self.cfg
        self.max_seq = min(max_seq or cfg.max_seq_len, cfg.max_seq_len)
        rows, seq = self.k_cache.shape[0], self.k_cache.shape[3]
        if rows < batch or seq < self.max_seq:
            shape = (max(rows, batch), cfg.n_layers, cfg.kv_heads, max(seq, self.max_seq), cfg.head_dim)
            self.k_cache, self.v_cache = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
            self._cache = self._cache_struct(self.k_cache, self.v_cache)
        self.lengths = np.zeros(batch, dtype=np.int64)

    def prefill(self, prompts: list[list[int]]) -> np.ndarray:
        """Run each prompt in its own cache row; returns the logits after each prompt's last token (B, V)."""
        if self.lengths is None or len(prompts) > self.k_cache.shape[0]:
            raise RuntimeError("KV cache not set up: call setup_cache(batch, max_seq) first")
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("prefill needs non-empty prompts")
        longest = max(len(p) for p in prompts)
        if longest > self.max_seq:
            raise ValueError(f"KV cache full: {longest} > {self.max_seq} tokens")
        tokens = np.concatenate([np.asarray(p, dtype=np.int64) for p in prompts])
        rows = np.repeat(np.arange(len(prompts)), [len(p) for p in prompts])
        pos = np.concatenate([np.arange(len(p)) for p in prompts])
        last = np.cumsum([len(p) for p in prompts]) - 1
        logits = self._forward(self._cache, tokens, rows, pos, last)
        self.lengths = np.array([len(p) for p in prompts], dtype=np.int64)
        return logits

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row (B,) at each row's next position; returns next-token logits (B, V)."""
        if self.lengths is None:
            raise RuntimeError("KV cache not set up: call setup_cache(batch, max_seq) first")
        tokens = np.asarray(tokens, dtype=np.int64)
        B = tokens.shape[0]
        if B > len(self.lengths):
            raise RuntimeError("decode() before prefill(): prefill a prompt first")
        pos = self.lengths[:B]
        if int(pos.max()) >= self.max_seq:
            raise ValueError(f"KV cache full: {int(pos.max()) + 1} > {self.max_seq} tokens")
        logits = self._forward(self._cache, tokens, self._rows(B), pos, self._rows(B))
        self.lengths = self.lengths[:B] + 1
        return logits

    def _rows(self, n: int) -> np.ndarray:
        """0..n-1 as int32 (kept: decode asks for it twice per token)."""
        if len(self._arange) < n:
            self._arange = np.arange(n, dtype=np.int32)
        return self._arange[:n]

    def reorder_cache(self, rows: np.ndarray) -> None:
        """Select/duplicate cache rows (beam search): new row i = old row rows[i]."""
        rows = np.asarray(rows)
        n = rows.shape[0]
        if n > self.k_cache.shape[0]:
            raise RuntimeError("reorder_cache: more rows than the cache holds")
        upto = int(self.lengths[rows].max()) if n else 0
        self.k_cache[:n, :, :, :upto] = self.k_cache[rows, :, :, :upto]
        self.v_cache[:n, :, :, :upto] = self.v_cache[rows, :, :, :upto]
        self.lengths = self.lengths[rows]

    def forward(self, idx: np.ndarray) -> np.ndarray:
        """Uncached full forward: ids (B, T) -> logits (B, T, V), in a scratch cache of its own."""
        idx = np.asarray(idx)
        B, T = idx.shape
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.cfg.max_seq_len}")
        shape = (B, self.cfg.n_layers, self.cfg.kv_heads, T, self.cfg.head_dim)
        k, v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        n = B * T
        logits = self._forward(self._cache_struct(k, v), idx.reshape(-1), np.repeat(np.arange(B), T), np.tile(np.arange(T), B),
                               np.arange(n))
        return logits.reshape(B, T, -1)


def engine_choice() -> str:
    """The engine asked for by NL2CMD_ENGINE: "auto" (default), "numpy" or "c-int8"."""
    return os.environ.get("NL2CMD_ENGINE", "auto").strip().lower() or "auto"
