"""Turn a trained torch model into the self-describing, torch-free inference checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllm.formats.checkpoint import save_inference
from tinyllm.formats.tokenizer import Tokenizer

from .model import Transformer, state_to_numpy


def export_inference(model: Transformer, tok: Tokenizer, path: str | Path, meta: dict[str, Any], dtype: str = "float16") -> None:
    """Write `path` (.npz): weights in `dtype`, config, tokenizer bytes, metadata."""
    meta = {**meta, "tokenizer_sha256": tok.sha256, "params": model.num_params()}
    save_inference(path, state_to_numpy(model), model.cfg, tok.model_bytes, meta, dtype=dtype)
