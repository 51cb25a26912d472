"""Train the SentencePiece tokenizer on corpus text plus instruction/command pairs, with fixed special ids."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from tinyllm.formats.prompt import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, UNK, UNK_ID, USER_SYMBOLS

from .corpus import iter_corpus_docs
from .sources import DataError

PAIR_WEIGHT = 3  # pair lines are repeated: commands are what the tokenizer must encode compactly
MAX_LINE_CHARS = 4000


def _pair_lines(paths: Iterable[Path | str]) -> list[str]:
    lines: list[str] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataError(f"pairs file not found: {path}")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                lines += [row["instruction"], row["command"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{n}: not a pair row ({exc})") from None
    return lines


def sample_lines(
    corpus_txt: Path | str | None, pairs_jsonl_paths: Sequence[Path | str], sample_chars: int, seed: int = 0
) -> list[str]:
    """Training lines: all pair instructions/commands (x PAIR_WEIGHT) plus corpus lines sampled down to
    about `sample_chars` characters (deterministic for a seed)."""
    pairs = _pair_lines(pairs_jsonl_paths)
    lines = [ln for ln in pairs for _ in range(PAIR_WEIGHT)]
    budget = sample_chars
    corpus: list[str] = []
    if corpus_txt is not None:
        for doc in iter_corpus_docs(corpus_txt):
            corpus.extend(ln[:MAX_LINE_CHARS] for ln in doc.splitlines() if ln.strip())
    total = sum(len(ln) for ln in corpus)
    if total > budget:
        rng = random.Random(seed)
        keep = budget / total
        corpus = [ln for ln in corpus if rng.random() < keep]
    lines += corpus
    if not lines:
        raise DataError("no tokenizer training text: the corpus and pair files are empty")
    return lines


def train_tokenizer(
    corpus_txt: Path | str | None,
    pairs_jsonl_paths: Sequence[Path | str],
    out_prefix: Path | str,
    vocab_size: int = 8192,
    model_type: str = "bpe",
    sample_chars: int = 20_000_000,
    seed: int = 0,
    num_threads: int = 2,
) -> Path:
    """Train ``<out_prefix>.model`` (+ ``.vocab``) and return the model path.

    Ids: pad 0, unk 1, bos 2, eos 3, then tinyllm.formats.prompt.USER_SYMBOLS as atomic pieces from 4. Byte
    fallback makes any text encodable; identity normalisation and kept whitespace keep commands exact.
    """
    import sentencepiece as spm

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    lines = sample_lines(corpus_txt, pairs_jsonl_paths, sample_chars, seed)
    # Reuse an existing model trained on the same sample with the same settings: a retrained
    # tokenizer would orphan every checkpoint built on the old one.
    digest = hashlib.sha256("\n".join(lines).encode())
    digest.update(json.dumps([vocab_size, model_type, seed, sorted(USER_SYMBOLS)]).encode())
    manifest = out_prefix.with_suffix(".json")
    model_path = out_prefix.with_suffix(".model")
    if model_path.is_file() and manifest.is_file() and json.loads(manifest.read_text()).get("fingerprint") == digest.hexdigest():
        print(f"tokenizer: reusing {model_path}")
        return model_path
    spm.set_random_generator_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.txt"
        sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            spm.SentencePieceTrainer.train(
                input=str(sample),
                model_prefix=str(out_prefix),
                model_type=model_type,
                vocab_size=vocab_size,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
                user_defined_symbols=list(USER_SYMBOLS),
                byte_fallback=True,
                split_digits=True,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                allow_whitespace_only_pieces=True,
                character_coverage=0.9995,
                input_sentence_size=len(lines),  # we sampled already: SentencePiece keeps every line
                shuffle_input_sentence=False,
                max_sentence_length=MAX_LINE_CHARS * 4,  # bytes
                num_threads=num_threads,
                minloglevel=2,
            )
        except RuntimeError as exc:  # e.g. vocab_size too large for the text
            raise DataError(f"tokenizer training failed: {exc}") from None
    manifest.write_text(json.dumps({"fingerprint": digest.hexdigest(), "vocab_size": vocab_size,
                                    "model_type": model_type, "lines": len(lines)}, indent=1))
    return model_path
