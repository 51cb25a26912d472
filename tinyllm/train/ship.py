"""Install a trained model as the package's default, only when it beats the one shipped now."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tinyllm.formats.checkpoint import load_inference, read_meta, save_inference
from tinyllm.infer.second import SecondSettings
from tinyllm.knowledge.retrieval import BM25Index


def run_path(path: str | Path) -> str:
    """A run file's path as the model records it: RUN/<stage>/<file> (a machine's folders stay out of the package)."""
    parts = Path(path).parts
    return str(Path("RUN", *parts[-2:])) if len(parts) > 2 else str(path)


def ship(model: Path, index: Path, dev_summary: dict[str, Any], dest: Path, force: bool = False,
         extra_meta: dict[str, Any] | None = None, current_summary: dict[str, Any] | None = None) -> str:
    """Copy `model` (+ its retrieval index) to `dest` (.npz/.idx) with the full dev summary in its metadata.

    Refuses (ValueError) unless the candidate's dev exact match beats the shipped model's, or `force`.
    The shipped model's score is `current_summary` (it scored on the same rows with the same settings
    just now) when given, else the summary stored in its metadata when it was shipped.
    """
    candidate = dev_summary["model"]["exact_match"]
    if dest.is_file() and not force:
        stored = current_summary or read_meta(dest)["meta"].get("dev_full", {})
        current = stored.get("model", {}).get("exact_match")
        if current is not None and candidate <= current:
            raise ValueError(f"candidate dev exact match {candidate:.4f} does not beat the shipped {current:.4f} "
                             "(use --force to ship anyway)")
    ckpt = load_inference(model)
    meta = {**ckpt.meta, **(extra_meta or {}), "dev_full": dev_summary, "shipped_from": run_path(model)}
    second = SecondSettings.from_meta(meta)
    if second is not None:
        if second.file in (dest.name, dest.with_suffix(".idx").name):
            raise ValueError(f"the second model cannot be called {second.file} (the shipped model's own name)")
        if not (Path(model).parent / second.file).is_file():
            raise ValueError(f"{Path(model).parent / second.file}: second model not found (named by {model})")
    before = SecondSettings.from_meta(read_meta(dest)["meta"]) if dest.is_file() else None
    if "init" in meta:
        meta["init"] = run_path(meta["init"])
    save_inference(dest, ckpt.weights, ckpt.config, ckpt.tokenizer_bytes, meta, dtype="int8")
    served = BM25Index.load(index)
    served.with_tools()  # serving reads the tool lexicon from the index; an older run's index gets it now
    served.save(dest.with_suffix(".idx"))
    if second is not None:  # the second model travels with the first, its index (tool lexicon) too
        src = Path(model).parent / second.file
        for a, b in ((src, dest.parent / second.file), (src.with_suffix(".idx"), dest.parent / Path(second.file).with_suffix(".idx"))):
            if a.is_file() and a.resolve() != b.resolve():
                shutil.copyfile(a, b)
    if before is not None and (second is None or before.file != second.file):  # no stale second model in the package
        for stale in (dest.parent / before.file, dest.parent / Path(before.file).with_suffix(".idx")):
            stale.unlink(missing_ok=True)
    return f"shipped {model} -> {dest} (dev exact match {candidate:.4f})"
