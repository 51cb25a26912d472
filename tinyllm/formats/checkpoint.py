"""Self-describing model files, readable without torch and without pickle.

An inference checkpoint is one ``.npz`` file holding the weights (int8 with per-group scales, float16 or
float32), the model
config, the SentencePiece model bytes and metadata (format version, step, data fingerprint, eval
results, retrieval settings). ``np.load(allow_pickle=False)`` reads it, so no arbitrary objects are
ever unpickled. Training checkpoints (optimizer state) are torch files: see tinyllm.train.state.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig
from .quant import dequantize, group_size, quantize

FORMAT = "tinyllm-npz"
FORMAT_VERSION = 2  # 2: int8 weights (each matrix as NAME int8 + NAME@scale float32 per group)
DTYPES = ("int8", "float16", "float32")
_META_KEY, _TOKENIZER_KEY = "__meta__", "__tokenizer__"
_SCALE = "@scale"


class CheckpointError(Exception):
    """A model file is missing, truncated, corrupt, foreign or inconsistent (message names the file)."""


@dataclass
class InferenceCheckpoint:
    """Everything needed to run the model: config, weights (name -> array), tokenizer bytes, metadata."""

    config: ModelConfig
    weights: dict[str, np.ndarray]
    tokenizer_bytes: bytes
    meta: dict[str, Any] = field(default_factory=dict)


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "models" / "default.npz"


def atomic_write(path: str | Path, write) -> None:
    """Call write(fileobj) on a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_inference(
    path: str | Path,
    weights: dict[str, np.ndarray],
    config: ModelConfig,
    tokenizer_bytes: bytes,
    meta: dict[str, Any] | None = None,
    dtype: str = "float16",
) -> None:
    """Write an inference checkpoint atomically. `dtype` int8 stores every matrix as int8 with a float32
    scale per group of inputs (what the C engine computes with; about half the size of float16) and
    the norms as float32; float16 or float32 store every weight in that type."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION if dtype == "int8" else 1,
              "config": config.to_dict(), "dtype": dtype, "meta": meta or {}}
    if dtype == "int8":
        group = group_size(config)
        header["group"] = group
        arrays = {}
        for name, w in weights.items():
            if w.ndim == 2:
                arrays[name], arrays[name + _SCALE] = quantize(np.asarray(w, np.float32), group)
            else:
                arrays[name] = np.ascontiguousarray(w, dtype=np.float32)
    else:
        arrays = {name: np.ascontiguousarray(w, dtype=dtype) for name, w in weights.items()}
    arrays[_META_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    arrays[_TOKENIZER_KEY] = np.frombuffer(tokenizer_bytes, dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_meta(path: str | Path) -> dict[str, Any]:
    """Only the header (format, config, dtype, meta) of a checkpoint, without loading weights."""
    return _open(path)[0]


def _open(path: str | Path) -> tuple[dict[str, Any], Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        npz = np.load(path, allow_pickle=False)
        if not hasattr(npz, "files") or _META_KEY not in npz.files:
            raise CheckpointError(f"{path}: not an nl2cmd model file (no header)")
        header = json.loads(npz[_META_KEY].tobytes().decode())
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable nl2cmd model file ({type(exc).__name__}: {exc})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown model format {header.get('format')!r}")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: model format version {header['format_version']} is newer than this nl2cmd")
    return header, npz


def load_inference(path: str | Path) -> InferenceCheckpoint:
    """Read an inference checkpoint; weights come back as float32. Raises CheckpointError."""
    header, npz = _open(path)
    try:
        config = ModelConfig.from_dict(header["config"])
        names = [k for k in npz.files if not k.startswith("__") and not k.endswith(_SCALE)]
        if header.get("dtype") == "int8":
            unscaled = [k for k in names if npz[k].dtype == np.int8 and k + _SCALE not in npz.files]
            if unscaled:
                raise CheckpointError(f"{path}: int8 weight {unscaled[0]} has no scales")
            weights = {k: dequantize(npz[k], npz[k + _SCALE]) if k + _SCALE in npz.files else npz[k].astype(np.float32)
                       for k in names}
        else:
            weights = {k: npz[k].astype(np.float32) for k in names}
        tok = npz[_TOKENIZER_KEY].tobytes()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt model file ({type(exc).__name__}: {exc})") from None
    expected = expected_weight_shapes(config)
    for name, shape in expected.items():
        if name not in weights:
            raise CheckpointError(f"{path}: weight {name} missing")
        if tuple(weights[name].shape) != shape:
            raise CheckpointError(f"{path}: weight {name} has shape {weights[name].shape}, expected {shape}")
    return InferenceCheckpoint(config, weights, tok, header.get("meta", {}))


def expected_weight_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the stored weights (torch state_dict names; the tied head is not stored)."""
    d, hd = cfg.dim, cfg.head_dim
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (cfg.vocab_size, d), "norm.weight": (d,)}
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        shapes.update({
            p + "attn_norm.weight": (d,), p + "ffn_norm.weight": (d,),
            p + "attn.wq.weight": (cfg.n_heads * hd, d), p + "attn.wk.weight": (cfg.kv_heads * hd, d),
            p + "attn.wv.weight": (cfg.kv_heads * hd, d), p + "attn.wo.weight": (d, cfg.n_heads * hd),
            p + "ffn.w1.weight": (cfg.hidden, d), p + "ffn.w3.weight": (cfg.hidden, d),
            p + "ffn.w2.weight": (d, cfg.hidden),
        })
    return shapes


def update_meta(path: str | Path, changes: dict[str, Any]) -> None:
    """Merge `changes` into a model file's metadata in place (atomically); the weights are copied as stored."""
    header, npz = _open(path)
    try:
        arrays = {k: npz[k] for k in npz.files if k != _META_KEY}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt model file ({type(exc).__name__}: {exc})") from None
    finally:
        npz.close()
    header = {**header, "meta": {**header.get("meta", {}), **changes}}
    arrays[_META_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
