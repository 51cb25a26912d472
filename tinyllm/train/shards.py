"""Tokenize corpus.txt into uint16 .npy token shards (train_000.npy ..., val_000.npy) with a manifest.

Each document becomes ``[bos] + ids + [eos]``; documents are concatenated and cut into shards of
`shard_tokens` tokens (the last one shorter). A document goes to val when the sha1 of its text falls
below `val_fraction`, so the split is stable whatever the order or the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np

from tinyllm.formats.prompt import BOS_ID, EOS_ID
from tinyllm.formats.tokenizer import Tokenizer, TokenizerError

from .corpus import iter_corpus_docs
from .sources import DataError

SHARDS_VERSION = 1
SPLITS = ("train", "val")
_BATCH_DOCS = 256


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_val_doc(text: str, val_fraction: float) -> bool:
    """Deterministic doc-level split: sha1 of the text mapped to [0, 1)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48) < val_fraction


class _ShardWriter:
    """Buffers token ids and writes fixed-size uint16 shards ``<split>_NNN.npy``."""

    def __init__(self, out_dir: Path, split: str, shard_tokens: int) -> None:
        self.out_dir, self.split, self.shard_tokens = out_dir, split, shard_tokens
        self.buf: list[np.ndarray] = []
        self.buffered = 0
        self.files: list[str] = []
        self.tokens = 0
        self.docs = 0

    def add(self, ids: np.ndarray) -> None:
        self.buf.append(ids)
        self.buffered += len(ids)
        self.tokens += len(ids)
        self.docs += 1
        while self.buffered >= self.shard_tokens:
            flat = np.concatenate(self.buf)
            self._write(flat[: self.shard_tokens])
            rest = flat[self.shard_tokens :]
            self.buf, self.buffered = ([rest] if len(rest) else []), len(rest)

    def close(self) -> None:
        if self.buffered:
            self._write(np.concatenate(self.buf))
            self.buf, self.buffered = [], 0

    def _write(self, arr: np.ndarray) -> None:
        name = f"{self.split}_{len(self.files):03d}.npy"
        tmp = self.out_dir / (name + ".tmp")
        with tmp.open("wb") as f:
            np.save(f, arr.astype(np.uint16, copy=False))
        tmp.replace(self.out_dir / name)
        self.files.append(name)


def _batches(it: Iterator[str], n: int) -> Iterator[list[str]]:
    while batch := list(islice(it, n)):
        yield batch


def write_shards(
    corpus_txt: Path | str,
    tokenizer_model_path: Path | str,
    out_dir: Path | str,
    shard_tokens: int = 1_000_000,
    val_fraction: float = 0.01,
    workers: int = 2,
) -> dict:
    """Tokenize `corpus_txt` into shards in `out_dir` and return the manifest (also manifest.json).

    Re-running with the same corpus bytes, tokenizer bytes and parameters reuses the existing shards
    (the returned manifest then has ``"reused": True``).
    """
    corpus_txt, out_dir = Path(corpus_txt), Path(out_dir)
    if not corpus_txt.is_file():
        raise DataError(f"corpus not found: {corpus_txt}")
    try:
        tok = Tokenizer.from_file(tokenizer_model_path)
    except (OSError, TokenizerError) as exc:
        raise DataError(f"cannot load tokenizer {tokenizer_model_path}: {exc}") from None
    if tok.vocab_size >= 1 << 16:
        raise DataError(f"vocab size {tok.vocab_size} does not fit uint16 shards")
    if shard_tokens < 1 or not 0.0 <= val_fraction < 1.0:
        raise ValueError("shard_tokens must be >= 1 and val_fraction in [0, 1)")
    params = {"shard_tokens": shard_tokens, "val_fraction": val_fraction, "version": SHARDS_VERSION}
    source_sha = file_sha256(corpus_txt)
    fingerprint = hashlib.sha256(json.dumps([source_sha, tok.sha256, params], sort_keys=True).encode()).hexdigest()
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        files = [f for s in SPLITS for f in old.get("splits", {}).get(s, {}).get("files", [])]
        if old.get("fingerprint") == fingerprint and all((out_dir / f).is_file() for f in files):
            print(f"shards: reusing {out_dir}")
            return {**old, "reused": True}

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(out_dir.glob("train_*.npy")) + list(out_dir.glob("val_*.npy")):
        stale.unlink()  # a previous run with other inputs may have written more shards
    writers = {s: _ShardWriter(out_dir, s, shard_tokens) for s in SPLITS}

    def encode(doc: str) -> np.ndarray:
        return np.array([BOS_ID, *tok.encode(doc), EOS_ID], dtype=np.uint16)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for batch in _batches(iter_corpus_docs(corpus_txt), _BATCH_DOCS):
            for doc, ids in zip(batch, pool.map(encode, batch), strict=True):
                writers["val" if is_val_doc(doc, val_fraction) else "train"].add(ids)
    for w in writers.values():
        w.close()
    if writers["train"].tokens == 0:
        raise DataError(f"no training tokens: {corpus_txt} is empty or every document went to val")
    manifest = {
        "version": SHARDS_VERSION,
        "fingerprint": fingerprint,
        "source": str(corpus_txt),
        "source_sha256": source_sha,
        "tokenizer_sha256": tok.sha256,
        "vocab_size": tok.vocab_size,
        "dtype": "uint16",
        **params,
        "splits": {s: {"files": w.files, "tokens": w.tokens, "docs": w.docs} for s, w in writers.items()},
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(manifest_path)
    print(f"shards: wrote {out_dir} (train {writers['train'].tokens:,} tokens, val {writers['val'].tokens:,})")
    return manifest


def load_shards(directory: Path | str, split: str) -> list[np.memmap]:
    """Memory-mapped uint16 token arrays of `split` ("train" or "val"), in manifest order."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"no shard manifest in {directory}: run the shards stage first")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    files = json.loads(manifest_path.read_text())["splits"][split]["files"]
    return [np.load(directory / f, mmap_mode="r") for f in files]


class ShardReader:
    """All shards of one split as memory maps, with random-window sampling inside single shards."""

    def __init__(self, directory: Path | str, split: str = "train") -> None:
        self.shards = load_shards(directory, split)
        self.num_tokens = sum(len(s) for s in self.shards)

    def __len__(self) -> int:
        return self.num_tokens

    def tokens(self) -> np.ndarray:
        """All tokens of the split concatenated (reads everything: for tests and small splits)."""
        return np.concatenate([np.asarray(s) for s in self.shards]) if self.shards else np.zeros(0, np.uint16)

    def window(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """A random contiguous window of `length` tokens from a shard long enough to hold it."""
        ok = [s for s in self.shards if len(s) >= length]
        if not ok:
            raise DataError(f"no shard holds {length} tokens")
        weights = np.array([len(s) - length + 1 for s in ok], dtype=np.float64)
        shard = ok[int(rng.choice(len(ok), p=weights / weights.sum()))]
        start = int(rng.integers(0, len(shard) - length + 1))
        return np.asarray(shard[start : start + length], dtype=np.int64)
