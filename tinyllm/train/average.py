"""Checkpoint averaging: the uniform mean of several inference checkpoints of one run (the last snapshots
of a cosine schedule average to a flatter, usually slightly better, model; docs/experiments.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinyllm.formats.checkpoint import CheckpointError, load_inference, save_inference


def average_checkpoints(paths: Sequence[str | Path], out: str | Path, dtype: str = "float16") -> dict:
    """Write the mean of the weights of `paths` (same config and tokenizer) to `out`; returns its meta.

    The mean is taken in float64 from each file's float32 weights, then stored in `dtype`. Raises
    CheckpointError when fewer than two files are given or when they are not from one model shape."""
    if len(paths) < 2:
        raise CheckpointError("averaging needs at least two model files")
    if Path(out).resolve() in {Path(p).resolve() for p in paths}:
        raise CheckpointError(f"{out}: the output would overwrite one of the inputs")
    first = load_inference(paths[0])
    total = {name: w.astype(np.float64) for name, w in first.weights.items()}
    steps = [first.meta.get("step")]
    for path in paths[1:]:
        ckpt = load_inference(path)
        if ckpt.config != first.config:
            raise CheckpointError(f"{path}: another model config than {paths[0]}")
        if ckpt.tokenizer_bytes != first.tokenizer_bytes:
            raise CheckpointError(f"{path}: another tokenizer than {paths[0]}")
        for name, w in ckpt.weights.items():
            total[name] += w
        steps.append(ckpt.meta.get("step"))
    mean = {name: (w / len(paths)).astype(np.float32) for name, w in total.items()}
    meta = {**first.meta, "averaged": [Path(p).name for p in paths]}
    if all(isinstance(s, int) for s in steps):
        meta["step"] = max(steps)
        meta["averaged_steps"] = steps
    save_inference(out, mean, first.config, first.tokenizer_bytes, meta, dtype=dtype)
    return meta
