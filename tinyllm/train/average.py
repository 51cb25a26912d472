"""Checkpoint averaging: the mean of several inference checkpoints of one model shape. Uniform over a run's
last snapshots (a cosine schedule's last snapshots average to a flatter, usually slightly better, model), or
weighted to interpolate a model continued on new data with the one it started from, which keeps more of
the first model's dev accuracy than the continued model alone (docs/experiments.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinyllm.formats.checkpoint import CheckpointError, load_inference, save_inference


def average_checkpoints(paths: Sequence[str | Path], out: str | Path, dtype: str = "float16",
                        weights: Sequence[float] | None = None) -> dict:
    """Write the mean of the weights of `paths` (same config and tokenizer) to `out`; returns its meta.

    `weights` (one per path, positive; normalised to sum 1) makes it a weighted mean; None is uniform. The
    mean is taken in float64 from each file's float32 weights, then stored in `dtype`. Raises
    CheckpointError when fewer than two files are given, when they are not from one model shape, or when
    the weights do not fit."""
    if len(paths) < 2:
        raise CheckpointError("averaging needs at least two model files")
    if weights is None:
        weights = [1.0] * len(paths)
    if len(weights) != len(paths):
        raise CheckpointError(f"{len(weights)} weights for {len(paths)} model files")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise CheckpointError("weights must be positive numbers")
    share = [float(w) / float(sum(weights)) for w in weights]
    if Path(out).resolve() in {Path(p).resolve() for p in paths}:
        raise CheckpointError(f"{out}: the output would overwrite one of the inputs")
    first = load_inference(paths[0])
    total = {name: w.astype(np.float64) * share[0] for name, w in first.weights.items()}
    steps = [first.meta.get("step")]
    for path, part in zip(paths[1:], share[1:]):
        ckpt = load_inference(path)
        if ckpt.config != first.config:
            raise CheckpointError(f"{path}: another model config than {paths[0]}")
        if ckpt.tokenizer_bytes != first.tokenizer_bytes:
            raise CheckpointError(f"{path}: another tokenizer than {paths[0]}")
        for name, w in ckpt.weights.items():
            total[name] += w.astype(np.float64) * part
        steps.append(ckpt.meta.get("step"))
    mean = {name: w.astype(np.float32) for name, w in total.items()}
    meta = {**first.meta, "averaged": [Path(p).name for p in paths]}
    if len(set(share)) > 1:
        meta["averaged_weights"] = [round(x, 6) for x in share]
    if all(isinstance(s, int) for s in steps):
        meta["step"] = max(steps)
        meta["averaged_steps"] = steps
    save_inference(out, mean, first.config, first.tokenizer_bytes, meta, dtype=dtype)
    return meta
