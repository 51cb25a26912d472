"""Tests for tinyllm.train.tokenizer_train and tinyllm.train.shards (tiny tokenizer, uint16 shards)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyllm.formats.prompt import BOS_ID, EOS_ID, SPECIAL_IDS, USER_SYMBOLS
from tinyllm.formats.tokenizer import Tokenizer
from tinyllm.train.corpus import DOC_SEPARATOR, iter_corpus_docs
from tinyllm.train.shards import ShardReader, is_val_doc, load_shards, write_shards
from tinyllm.train.sources import DataError
from tinyllm.train.tokenizer_train import sample_lines, train_tokenizer

WORDS = ("list files in the current directory with details and sizes find every text file under home "
         "compress the folder into an archive show disk usage of the partition print lines matching a pattern").split()


def _write_corpus(path: Path, n_docs: int = 60) -> list[str]:
    docs = []
    for i in range(n_docs):
        body = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40 + i % 13))
        docs.append(f"Document {i}\n\n{body}\n    ls -la --color=auto /tmp/{i}")
    path.write_text("".join(d + "\n" + DOC_SEPARATOR + "\n" for d in docs), encoding="utf-8")
    return docs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A corpus, a pairs file and a ~320-piece tokenizer trained on them (shared by the tests here)."""
    root = tmp_path_factory.mktemp("tok")
    corpus_txt = root / "corpus.txt"
    docs = _write_corpus(corpus_txt)
    pairs = root / "train.jsonl"
    pairs.write_text("".join(json.dumps({"instruction": f"list files {i}", "command": f"ls -la dir{i}",
                                         "source": "t", "platform": "linux"}) + "\n" for i in range(50)))
    model = train_tokenizer(corpus_txt, [pairs], root / "tok" / "tiny", vocab_size=320, sample_chars=1_000_000)
    return {"root": root, "corpus": corpus_txt, "docs": docs, "pairs": pairs, "model": model}


def test_special_ids_fixed_and_atomic(tiny):
    tok = Tokenizer.from_file(tiny["model"])  # the runtime loader checks every special id itself
    assert tok.vocab_size == 320
    for piece, want in SPECIAL_IDS.items():
        assert tok.sp.piece_to_id(piece) == want
    assert [tok.sp.piece_to_id(s) for s in USER_SYMBOLS] == list(range(4, 4 + len(USER_SYMBOLS)))
    ids = tok.sp.encode("<instruction> <linux> list files<command>ls -la<excommand>", out_type=int)
    for sym in ("<instruction>", "<linux>", "<command>", "<excommand>"):
        assert ids.count(SPECIAL_IDS[sym]) == 1  # one id, never split into pieces
    assert tok.sp.decode(ids) == "<instruction> <linux> list files<command>ls -la<excommand>"


@pytest.mark.parametrize("text", ["grep -rn 'é😀' ./src  ", "日本語のファイル", "tab\there\x01\x7f", "  two  spaces\n"])
def test_byte_fallback_round_trip(tiny, text):
    tok = Tokenizer.from_file(tiny["model"])
    ids = tok.sp.encode(text, out_type=int)
    assert tok.sp.unk_id() not in ids
    assert tok.sp.decode(ids) == text


def test_sample_lines_upweights_pairs_and_respects_budget(tiny):
    lines = sample_lines(tiny["corpus"], [tiny["pairs"]], sample_chars=0)
    assert lines.count("ls -la dir7") == 3 and lines.count("list files 7") == 3
    assert not any(line.startswith("Document") for line in lines)  # no corpus budget left
    full = sample_lines(tiny["corpus"], [tiny["pairs"]], sample_chars=10**9)
    assert "Document 5" in full and DOC_SEPARATOR not in full
    assert sample_lines(tiny["corpus"], [tiny["pairs"]], 5000, seed=1) == sample_lines(
        tiny["corpus"], [tiny["pairs"]], 5000, seed=1)
    with pytest.raises(DataError, match="not found"):
        sample_lines(None, [tiny["root"] / "missing.jsonl"], 10)


def test_write_shards_round_trip_and_reuse(tiny, tmp_path, capsys):
    out = tmp_path / "shards"
    m = write_shards(tiny["corpus"], tiny["model"], out, shard_tokens=500, val_fraction=0.1, workers=2)
    tok = Tokenizer.from_file(tiny["model"])
    expected = {"train": [], "val": []}
    for doc in iter_corpus_docs(tiny["corpus"]):
        expected["val" if is_val_doc(doc, 0.1) else "train"] += [BOS_ID, *tok.encode(doc), EOS_ID]
    assert expected["val"], "fixture should put some documents in val"
    for split in ("train", "val"):
        shards = load_shards(out, split)
        assert all(isinstance(s, np.memmap) and s.dtype == np.uint16 for s in shards)
        assert all(len(s) == 500 for s in shards[:-1]) and 0 < len(shards[-1]) <= 500
        reader = ShardReader(out, split)
        assert reader.tokens().tolist() == expected[split]
        assert len(reader) == m["splits"][split]["tokens"] == len(expected[split])
    assert m["splits"]["train"]["docs"] + m["splits"]["val"]["docs"] == len(tiny["docs"])
    assert m["tokenizer_sha256"] == tok.sha256 and m["vocab_size"] == 320
    assert sorted(p.name for p in out.glob("*.npy"))[0] == "train_000.npy"

    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    again = write_shards(tiny["corpus"], tiny["model"], out, shard_tokens=500, val_fraction=0.1)
    assert again["reused"] is True and "reusing" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.npy")} == mtimes
    # other parameters: rebuilt, and stale shards from the first run are gone
    bigger = write_shards(tiny["corpus"], tiny["model"], out, shard_tokens=100_000, val_fraction=0.1)
    assert "reused" not in bigger and sorted(p.name for p in out.glob("*.npy")) == ["train_000.npy", "val_000.npy"]


def test_shard_reader_window(tiny, tmp_path):
    out = tmp_path / "s"
    write_shards(tiny["corpus"], tiny["model"], out, shard_tokens=400, val_fraction=0.0)
    reader = ShardReader(out, "train")
    flat = reader.tokens()
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = reader.window(rng, 64)
        assert len(w) == 64
        starts = [i for i in range(len(flat) - 63) if np.array_equal(flat[i : i + 64], w)]
        assert starts
    with pytest.raises(DataError, match="no shard holds"):
        reader.window(rng, 401)
    assert load_shards(out, "val") == []


def test_write_shards_errors(tiny, tmp_path):
    with pytest.raises(DataError, match="corpus not found"):
        write_shards(tmp_path / "none.txt", tiny["model"], tmp_path / "o")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot load tokenizer"):
        write_shards(tiny["corpus"], bad, tmp_path / "o")
    with pytest.raises(DataError, match="no shard manifest"):
        load_shards(tmp_path / "o", "train")
