"""Training checkpoints: model + optimizer + step + RNG, saved atomically, loaded with weights_only=True."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyllm.formats.checkpoint import CheckpointError, atomic_write

TRAIN_FORMAT = "tinyllm-train"
TRAIN_FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as weights_only-loadable objects."""
    np_state = np.random.get_state()
    return {
        "python": repr(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of rng_state."""
    import ast

    random.setstate(ast.literal_eval(state["python"]))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])


def save_train_state(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write a training checkpoint (tensors, dicts, lists, numbers, strings only)."""
    payload = {"format": TRAIN_FORMAT, "format_version": TRAIN_FORMAT_VERSION, **payload}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with weights_only=True; CheckpointError names the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable training checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise CheckpointError(f"{path}: not an nl2cmd training checkpoint")
    return state
