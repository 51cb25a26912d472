"""Tests for tinyllm.knowledge.retrieval: tokenisation, BM25 ranking, platform filtering, exclusions, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyllm.knowledge.retrieval import BM25Index, Hit, nearest_command, tokenize_for_search

PAIRS = [
    {"instruction": "List all files in the current directory", "command": "ls -a", "platform": "common"},
    {"instruction": "Find all .jpg images under the home directory", "command": "find ~ -name '*.jpg'",
     "platform": "common", "source": "tldr"},
    {"instruction": "Show disk usage of each directory", "command": "du -sh *", "platform": "common"},
    {"instruction": "Copy a file to the clipboard", "command": "xclip -sel clip < file.txt", "platform": "linux"},
    {"instruction": "Copy a file to the clipboard", "command": "pbcopy < file.txt", "platform": "macos"},
    {"instruction": "Flush the DNS cache", "command": "sudo resolvectl flush-caches", "platform": "linux"},
    {"instruction": "Flush the DNS cache", "command": "sudo dscacheutil -flushcache", "platform": "macos"},
    {"instruction": "Delete all .log files recursively", "command": "find . -name '*.log' -delete",
     "platform": "common"},
    {"instruction": "Count lines in a file", "command": "wc -l file.txt", "platform": "common"},
    {"instruction": "Count the lines of every Python file", "command": "wc -l *.py", "platform": "common"},
    {"instruction": "List files sorted by size", "command": "ls -lS", "platform": "common"},
    {"instruction": "list files sorted by size!", "command": "ls  -lS", "platform": "windows"},
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(PAIRS)


def test_tokenize_for_search() -> None:
    assert tokenize_for_search("Find all the .JPG files") == ["find", "all", "jpg", "fil"]
    # inflections of one word meet at one stem
    assert len({tokenize_for_search(w)[0] for w in ("delete", "deletes", "deleted", "deleting")}) == 1
    assert len({tokenize_for_search(w)[0] for w in ("copy", "copies", "copied")}) == 1
    assert tokenize_for_search("running stopped") == tokenize_for_search("run stop")
    assert tokenize_for_search("the of a to") == []
    assert tokenize_for_search("last 10 lines") == ["last", "10", "lin"]


def test_neighbour_order(index: BM25Index) -> None:
    hits = index.search("count lines in file.txt", k=3, platform="linux")
    assert [h.command for h in hits[:2]] == ["wc -l file.txt", "wc -l *.py"]
    assert hits[0].score > hits[1].score > 0
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0].index == 8 and hits[0].instruction == PAIRS[8]["instruction"]
    jpg = index.search("find jpg pictures", k=1)
    assert jpg[0].command == "find ~ -name '*.jpg'"


def test_platform_filtering(index: BM25Index) -> None:
    linux = index.search("copy file to clipboard", k=5, platform="linux")
    macos = index.search("copy file to clipboard", k=5, platform="macos")
    assert linux[0].command.startswith("xclip") and all(h.platform in ("linux", "common") for h in linux)
    assert macos[0].command.startswith("pbcopy") and all(h.platform in ("macos", "common") for h in macos)
    assert not any(h.platform == "macos" for h in linux)
    common_only = index.search("flush dns cache", k=5, platform="common")
    assert common_only == []
    everything = index.search("flush dns cache", k=5, platform=None)
    assert {h.platform for h in everything} == {"linux", "macos"}
    assert not any(h.platform == "windows" for h in index.search("list files sorted by size", k=20, platform="linux"))


def test_exclude_command_and_instruction(index: BM25Index) -> None:
    query = "List files sorted by size"
    assert index.search(query, k=1, platform=None)[0].command in ("ls -lS", "ls  -lS")
    # whitespace-normalised: both the common and the windows row go
    hits = index.search(query, k=5, platform=None, exclude_command="ls   -lS")
    assert hits and all(h.command.split() != ["ls", "-lS"] for h in hits)
    # description_key equality drops both spellings of the instruction
    hits = index.search(query, k=5, platform=None, exclude_instruction="list files, sorted by size.")
    assert all("sorted by size" not in h.instruction.lower() for h in hits)
    assert index.search("count lines", k=5, exclude_command="wc -l file.txt")[0].command == "wc -l *.py"


def test_k_and_no_match(index: BM25Index) -> None:
    assert index.search("files", k=0) == []
    assert index.search("zzzz qqqq", k=3) == []
    assert index.search("", k=3) == []
    assert len(index.search("files", k=2, platform=None)) == 2
    assert BM25Index.build([]).search("files") == []


def test_ties_are_deterministic() -> None:
    rows = [{"instruction": "same words here", "command": f"c{i}", "platform": "common"} for i in range(100)]
    hits = BM25Index.build(rows).search("same words", k=25)
    assert [h.index for h in hits] == list(range(25))


def test_exclusions_beyond_first_candidate_batch() -> None:
    rows = [{"instruction": "echo hello", "command": "echo hello", "platform": "common"} for _ in range(60)]
    rows.append({"instruction": "echo hello world", "command": "echo hello world", "platform": "common"})
    hits = BM25Index.build(rows).search("echo hello", k=3, exclude_command="echo hello")
    assert [h.command for h in hits] == ["echo hello world"]


def test_nearest_command(index: BM25Index) -> None:
    assert nearest_command(index, "how much disk does each directory use", "linux") == "du -sh *"
    assert nearest_command(index, "flush dns cache", "macos") == "sudo dscacheutil -flushcache"
    assert nearest_command(index, "xyzzy", "linux") is None


def test_save_load_round_trip(index: BM25Index, tmp_path: Path) -> None:
    path = tmp_path / "retrieval.idx"
    index.save(path)
    assert path.exists()  # no ".npz" appended to the name
    loaded = BM25Index.load(path)
    assert len(loaded) == len(index)
    assert loaded.sources[1] == "tldr" and loaded.sources[0] == ""
    for query in ("copy file to clipboard", "count lines", "list files sorted by size", "dns"):
        for platform in ("linux", "macos", None):
            assert loaded.search(query, k=5, platform=platform) == index.search(query, k=5, platform=platform)
    np.testing.assert_allclose(loaded.scores("count lines"), index.scores("count lines"))


def _arrays_equal(a: BM25Index, b: BM25Index) -> bool:
    same_rows = (a.instructions, a.commands, a.platforms, a.sources) == (b.instructions, b.commands, b.platforms,
                                                                          b.sources)
    return same_rows and a._vocab == b._vocab and all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in ("_indptr", "_docs", "_tfs", "_doclen",
                                                                          "_weights"))


def test_repeated_rows_are_stored_once_and_restored_exactly(tmp_path: Path) -> None:
    # a training split repeats the own pairs: the file keeps each distinct pair once, the loaded index
    # has every row in its place, with the same BM25 statistics, scores and ties
    rows = [dict(p) for _ in range(40) for p in PAIRS]
    index = BM25Index.build(rows)
    index.save(tmp_path / "many.idx")
    BM25Index.build(PAIRS).save(tmp_path / "once.idx")
    assert (tmp_path / "many.idx").stat().st_size < 2 * (tmp_path / "once.idx").stat().st_size
    loaded = BM25Index.load(tmp_path / "many.idx")
    assert _arrays_equal(loaded, index) and len(loaded) == 40 * len(PAIRS)
    for query in ("copy file to clipboard", "count lines", "dns"):
        assert loaded.search(query, k=30, platform="macos") == index.search(query, k=30, platform="macos")


def test_an_index_of_the_first_format_still_loads(index: BM25Index, tmp_path: Path) -> None:
    # version 1 (every row written out, documents as they are): the shipped v29.idx is one
    import json

    def enc(obj: object) -> np.ndarray:
        return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)

    rows = {"instruction": index.instructions, "command": index.commands, "platform": index.platforms,
            "source": index.sources}
    old = tmp_path / "old.idx"
    with open(old, "wb") as fh:
        np.savez_compressed(fh, meta=enc({"version": 1, "k1": index.k1, "b": index.b}), rows=enc(rows),
                            vocab=enc(sorted(index._vocab, key=index._vocab.__getitem__)), indptr=index._indptr,
                            docs=index._docs, tfs=index._tfs, doclen=index._doclen)
    assert _arrays_equal(BM25Index.load(old), index)


def test_load_rejects_a_damaged_file_of_the_second_format(index: BM25Index, tmp_path: Path) -> None:
    path = tmp_path / "r.idx"
    index.save(path)
    with np.load(path, allow_pickle=False) as data:
        parts = {name: data[name] for name in data.files}
    for name, broken, error in (("row_pair", parts["row_pair"] + 1, "inconsistent"),
                                ("doc_gaps", parts["doc_gaps"][:-1], "inconsistent"),
                                ("row_pair", None, "not a retrieval index")):
        kept = {k: v for k, v in parts.items() if k != name}
        if broken is not None:
            kept[name] = broken
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **kept)
        with pytest.raises(ValueError, match=error):
            BM25Index.load(path)


def test_build_rejects_incomplete_pairs() -> None:
    with pytest.raises(ValueError, match="no 'command' field"):
        BM25Index.build([{"instruction": "x", "platform": "linux"}])


def test_load_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an index at all")
    with pytest.raises(ValueError, match="not a retrieval index"):
        BM25Index.load(bad)
    other = tmp_path / "other.npz"
    with open(other, "wb") as fh:
        np.savez(fh, x=np.arange(3))
    with pytest.raises(ValueError, match="not a retrieval index"):
        BM25Index.load(other)
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "missing.npz")
