"""Int8 weights in groups: the one definition shared by the model file (int8 storage), the C engine
(which quantises to exactly this at load) and the numpy engine (which dequantises it).

Symmetric per group of `group` consecutive inputs of a matrix row: q = round(w / s), s = max|w| / 127.
Quantising a dequantised matrix again gives back the same q and s, so an int8 model file serves
bit-identically to the float weights it was made from.
"""

from __future__ import annotations

import numpy as np

from .config import ModelConfig

GROUP = 64  # inputs per int8 scale: small enough that one outlier costs little precision


def group_size(cfg: ModelConfig) -> int:
    """The largest of 64, 32, 16 inputs per scale that divides every matrix's input width (the AVX2
    kernels take 16 float32 or 32 int8 inputs at a time, else the portable loops run); ValueError for a
    model whose widths allow none."""
    for g in (GROUP, 32, 16):
        if cfg.dim % g == 0 and cfg.hidden % g == 0:
            return g
    raise ValueError(f"the C engine needs dim and ffn width divisible by 16 (got {cfg.dim}, {cfg.hidden})")


def quantize(w: np.ndarray, group: int = GROUP) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per group of `group` inputs: w (rows, cols) -> q int8 (rows, cols), scales (rows, cols/group)."""
    rows, cols = w.shape
    if cols % group:
        raise ValueError(f"{cols} columns are not a multiple of the group size {group}")
    g = w.astype(np.float32).reshape(rows, cols // group, group)
    scale = np.abs(g).max(axis=-1) / np.float32(127.0)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(g / scale[..., None]), -127, 127).astype(np.int8)
    return q.reshape(rows, cols), scale.astype(np.float32)


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 weights from int8 values and their per-group scales."""
    rows, cols = q.shape
    return (q.reshape(rows, scale.shape[1], -1).astype(np.float32) * scale[..., None]).reshape(rows, cols)


def dequantized_weights(cfg: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Checkpoint weights (state_dict names) rounded through int8 exactly as the C engine stores them:
    every matrix (the 2-D weights: embedding and layer matrices); norms stay as they are."""
    group = group_size(cfg)
    return {name: dequantize(*quantize(w, group)) if w.ndim == 2 else w for name, w in weights.items()}
