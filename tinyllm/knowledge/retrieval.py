"""BM25 retrieval over (instruction, command) pairs: few-shot neighbours for the prompt and a baseline.

The index stores, per term, the documents containing it and a precomputed BM25 weight (CSR
arrays), so a query is a handful of numpy slice-adds. Saved as a single ``.npz`` (no pickle):
the distinct pairs and vocabulary as UTF-8 JSON bytes, each row's distinct pair (a training split repeats
the own pairs), and the CSR term-frequency arrays with each term's documents as gaps (they ascend); the
rows, postings and weights are rebuilt exactly at load (vectorised, milliseconds). An index of the
training pairs also carries their `tinyllm.knowledge.tools.ToolLexicon` (optional: older files and
user-pair indexes have none).

numpy only (no torch): the daemon imports this, the thin client never does.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .text import description_key, whitespace_key
from .tools import ToolLexicon

__all__ = ["BM25Index", "Hit", "load_tool_lexicon", "nearest_command", "tokenize_for_search"]

FORMAT_VERSION = 2
"""2: distinct rows once and document gaps (a training index in about two thirds of the bytes); 1 is read too."""
_ARRAYS = {1: ("indptr", "docs", "tfs", "doclen"), FORMAT_VERSION: ("indptr", "doc_gaps", "tfs", "doclen", "row_pair")}
"""The arrays each format version stores."""

_WORD_RE = re.compile(r"[a-z0-9]+")
# Small: words like "all", "not", "only", "first" carry meaning for commands and are kept.
STOPWORDS = frozenset(
    "a an the of in on at to for from by with into onto and or is are be been was were it its this that these "
    "those which what who whom how do does can could should would will shall may might please i me my we our you "
    "your using use via as so then there here some".split()
)


def _stem(word: str) -> str:
    """Very light suffix stripping; only consistency between queries and documents matters."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ied") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    elif word.endswith("es") and len(word) > 4 and word[-3] in "sxz":  # boxes, passes
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    # running -> runn -> run, stopped -> stopp -> stop
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    # delete/deleted/deleting -> delet
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def tokenize_for_search(text: str) -> list[str]:
    """Search terms of `text`: lower-cased alphanumeric runs (``.jpg`` -> ``jpg``), stopwords dropped, lightly stemmed."""
    return [_stem(w) for w in _WORD_RE.findall(text.lower()) if w not in STOPWORDS]


@dataclass(frozen=True)
class Hit:
    """One retrieved pair; `index` is its row in the index (stable across save/load)."""

    score: float
    instruction: str
    command: str
    platform: str
    index: int


class BM25Index:
    """Okapi BM25 over instructions, platform-aware. Build with `BM25Index.build`, or `BM25Index.load`."""

    def __init__(self) -> None:
        self.instructions: list[str] = []
        self.commands: list[str] = []
        self.platforms: list[str] = []
        self.sources: list[str] = []
        self.k1 = 1.2
        self.b = 0.75
        self._vocab: dict[str, int] = {}
        self._indptr = np.zeros(1, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int32)
        self._tfs = np.zeros(0, dtype=np.uint16)
        self._doclen = np.zeros(0, dtype=np.int32)
        self._weights = np.zeros(0, dtype=np.float32)
        self._platform_codes = np.zeros(0, dtype=np.int16)
        self._platform_names: list[str] = []
        self._masks: dict[str | None, np.ndarray] = {}
        self.tools: ToolLexicon | None = None
        """The programs of the indexed pairs, when the index was saved with them (see `with_tools`)."""

    def __len__(self) -> int:
        return len(self.instructions)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, pairs: Iterable[Mapping[str, str]], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        """Index `pairs` (mappings with ``instruction``, ``command``, ``platform`` and optional ``source``)."""
        index = cls()
        index.k1, index.b = float(k1), float(b)
        term_ids: list[int] = []
        doc_ids: list[int] = []
        tfs: list[int] = []
        doclen: list[int] = []
        vocab = index._vocab
        for row, pair in enumerate(pairs):
            try:
                instruction, command, platform = pair["instruction"], pair["command"], pair["platform"]
            except KeyError as exc:
                raise ValueError(f"pair {row} has no {exc.args[0]!r} field") from None
            index.instructions.append(instruction)
            index.commands.append(command)
            index.platforms.append(platform)
            index.sources.append(pair.get("source", "") or "")
            terms = tokenize_for_search(instruction)
            doclen.append(len(terms))
            for term, tf in Counter(terms).items():
                term_ids.append(vocab.setdefault(term, len(vocab)))
                doc_ids.append(row)
                tfs.append(min(tf, 65535))
        index._set_postings(np.asarray(term_ids, dtype=np.int64), np.asarray(doc_ids, dtype=np.int32),
                            np.asarray(tfs, dtype=np.uint16), np.asarray(doclen, dtype=np.int32))
        return index

    def _set_postings(self, term_ids: np.ndarray, doc_ids: np.ndarray, tfs: np.ndarray, doclen: np.ndarray) -> None:
        """Sort (term, doc, tf) triples into CSR by term (stable: docs stay ascending within a term)."""
        order = np.argsort(term_ids, kind="stable")
        counts = np.bincount(term_ids, minlength=len(self._vocab))
        self._indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._docs = doc_ids[order]
        self._tfs = tfs[order]
        self._doclen = doclen
        self._finish()

    def _finish(self) -> None:
        """Derived arrays: per-posting BM25 weights (idf included) and platform codes."""
        n = len(self.instructions)
        df = np.diff(self._indptr).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))  # Lucene's non-negative idf
        avgdl = float(self._doclen.mean()) if n and self._doclen.sum() else 1.0
        tf = self._tfs.astype(np.float64)
        dl = self._doclen[self._docs].astype(np.float64)
        term_of_posting = np.repeat(np.arange(len(df)), np.diff(self._indptr))
        norm = tf + self.k1 * (1.0 - self.b + self.b * dl / avgdl)
        self._weights = (idf[term_of_posting] * tf * (self.k1 + 1.0) / norm).astype(np.float32)
        self._platform_names = sorted(set(self.platforms))
        code = {p: i for i, p in enumerate(self._platform_names)}
        self._platform_codes = np.asarray([code[p] for p in self.platforms], dtype=np.int16)
        self._masks = {}

    def _eligible(self, platform: str | None) -> np.ndarray | None:
        """Boolean mask of rows usable for `platform` ("common" rows always are); None = all rows."""
        if platform is None:
            return None
        if platform not in self._masks:
            wanted = [i for i, p in enumerate(self._platform_names) if p in (platform, "common")]
            self._masks[platform] = np.isin(self._platform_codes, wanted)
        return self._masks[platform]

    # -- querying ---------------------------------------------------------------------------

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for `query` (float32, zeros where no term matches)."""
        out = np.zeros(len(self.instructions), dtype=np.float32)
        for term in set(tokenize_for_search(query)):
            tid = self._vocab.get(term)
            if tid is not None:
                lo, hi = self._indptr[tid], self._indptr[tid + 1]
                out[self._docs[lo:hi]] += self._weights[lo:hi]  # docs are unique within a term
        return out

    def search(
        self,
        query: str,
        k: int = 5,
        platform: str | None = "linux",
        exclude_command: str | None = None,
        exclude_instruction: str | None = None,
    ) -> list[Hit]:
        """The `k` best rows for `query`, best first (ties: lower row first).

        Only rows whose platform is `platform` or ``"common"`` are eligible (``platform=None``: all).
        `exclude_command` drops rows whose whitespace-normalised command equals it, and
        `exclude_instruction` rows with the same `description_key` (so an SFT row never sees itself).
        """
        if k <= 0 or not self.instructions:
            return []
        scores = self.scores(query)
        mask = self._eligible(platform)
        if mask is not None:
            scores[~mask] = 0.0
        candidates = np.flatnonzero(scores > 0)
        if candidates.size == 0:
            return []
        skip_cmd = whitespace_key(exclude_command) if exclude_command is not None else None
        skip_desc = description_key(exclude_instruction) if exclude_instruction is not None else None
        want = k + 16
        while True:
            if candidates.size > want:
                top = candidates[np.argpartition(-scores[candidates], want - 1)[:want]]
                # argpartition's cut can split a tie: take every row tied with the last one kept.
                top = candidates[scores[candidates] >= scores[top].min()]
            else:
                top = candidates
            top = top[np.lexsort((top, -scores[top]))]
            hits: list[Hit] = []
            for row in top.tolist():
                if skip_cmd is not None and whitespace_key(self.commands[row]) == skip_cmd:
                    continue
                if skip_desc is not None and description_key(self.instructions[row]) == skip_desc:
                    continue
                hits.append(Hit(float(scores[row]), self.instructions[row], self.commands[row], self.platforms[row], row))
                if len(hits) == k:
                    return hits
            if top.size >= candidates.size:
                return hits
            want *= 4

    def with_tools(self) -> ToolLexicon:
        """The tool lexicon of the indexed pairs, counted now if the index has none yet, or one without the
        option lists or program counts of older files (seconds for 50k rows)."""
        if self.tools is None or not self.tools.options or not self.tools.starts:
            rows = ({"instruction": i, "command": c} for i, c in zip(self.instructions, self.commands))
            self.tools = ToolLexicon.build(rows)
        return self.tools

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the index as one compressed ``.npz`` (no pickled objects)."""
        meta = {"version": FORMAT_VERSION, "k1": self.k1, "b": self.b}
        distinct: dict[tuple[str, str, str, str], int] = {}
        row_pair = np.asarray([distinct.setdefault(row, len(distinct)) for row in
                               zip(self.instructions, self.commands, self.platforms, self.sources)], dtype=np.int32)
        columns = list(zip(*distinct)) or [(), (), (), ()]
        rows = {name: list(col) for name, col in zip(("instruction", "command", "platform", "source"), columns)}
        vocab = sorted(self._vocab, key=self._vocab.__getitem__)
        extra = {"tools": _encode(self.tools.to_json())} if self.tools is not None else {}
        with open(path, "wb") as fh:  # a file handle: np.savez would append ".npz" to a bare name
            np.savez_compressed(
                fh,
                **extra,
                meta=_encode(meta),
                rows=_encode(rows),
                row_pair=row_pair,
                vocab=_encode(vocab),
                indptr=self._indptr,
                doc_gaps=_gaps(self._docs, self._indptr),
                tfs=self._tfs,
                doclen=self._doclen,
            )

    @classmethod
    def load(cls, path: str | Path) -> BM25Index:
        """Read an index written by `save`; raises ValueError if the file is not one."""
        with _index_file(path) as data:
            meta, rows, vocab = _decode(data["meta"]), _decode(data["rows"]), _decode(data["vocab"])
            version = meta.get("version") if isinstance(meta, dict) else None
            if version not in _ARRAYS:
                raise ValueError(f"{path}: unsupported retrieval index version {version!r}")
            if lost := [name for name in _ARRAYS[version] if name not in data.files]:
                raise ValueError(f"{path}: not a retrieval index (no {lost[0]!r})")
            arrays = {name: data[name] for name in _ARRAYS[version]}
            tools = _tool_lexicon(data)
        index = cls()
        index.k1, index.b = float(meta["k1"]), float(meta["b"])
        index._indptr = arrays["indptr"].astype(np.int64)
        postings = arrays["docs" if version == 1 else "doc_gaps"]  # checked here once, before any rebuilding
        if (not len(index._indptr) or np.any(np.diff(index._indptr) < 0)
                or not index._indptr[-1] == len(postings) == len(arrays["tfs"])):
            raise ValueError(f"{path}: retrieval index is inconsistent (truncated or corrupted)")
        if version == 1:
            index._docs = postings.astype(np.int32)
        else:
            index._docs = _ungap(postings, index._indptr)
            pair, distinct = arrays["row_pair"], len(rows["instruction"])
            if any(len(col) != distinct for col in rows.values()) or (
                    len(pair) and (pair.min() < 0 or pair.max() >= distinct)):
                raise ValueError(f"{path}: retrieval index is inconsistent (truncated or corrupted)")
            rows = {name: [col[i] for i in pair.tolist()] for name, col in rows.items()}
        index.instructions, index.commands = rows["instruction"], rows["command"]
        index.platforms, index.sources = rows["platform"], rows["source"]
        index._vocab = {term: i for i, term in enumerate(vocab)}
        index._tfs = arrays["tfs"].astype(np.uint16)
        index._doclen = arrays["doclen"].astype(np.int32)
        n = len(index.instructions)
        if not (len(index.commands) == len(index.platforms) == len(index.sources) == len(index._doclen) == n
                and len(index._indptr) == len(vocab) + 1
                and (not len(index._docs) or int(index._docs.max()) < n)):
            raise ValueError(f"{path}: retrieval index is inconsistent (truncated or corrupted)")
        index.tools = tools
        index._finish()
        return index


def load_tool_lexicon(path: str | Path) -> ToolLexicon | None:
    """Only the tool lexicon of an index file (a few ms: the BM25 arrays and rows are not read);
    None if the file has none. ValueError if the file is not a readable index."""
    with _index_file(path) as data:
        return _tool_lexicon(data)


@contextlib.contextmanager
def _index_file(path: str | Path) -> Iterator[Any]:
    """The open ``.npz`` of an index; reading it raises ValueError on anything that is not an index
    (FileNotFoundError passes through)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            yield data
    except FileNotFoundError:
        raise
    except (OSError, KeyError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a retrieval index ({exc})") from None


def _gaps(docs: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Each term's ascending documents as gaps: its first document, then the differences (small numbers
    that compress well)."""
    gaps = np.diff(docs.astype(np.int64), prepend=0)
    starts = indptr[:-1][np.diff(indptr) > 0]
    gaps[starts] = docs[starts]
    return gaps.astype(np.int32)


def _ungap(gaps: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """The documents that `_gaps` encoded: a running sum that starts again at each term."""
    total = np.concatenate([[0], np.cumsum(gaps.astype(np.int64))])
    before = total[indptr[:-1]]  # the running sum where each term starts
    return (total[1:] - np.repeat(before, np.diff(indptr))).astype(np.int32)


def _tool_lexicon(data: Any) -> ToolLexicon | None:
    return ToolLexicon.from_json(_decode(data["tools"])) if "tools" in data.files else None


def _encode(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def _decode(arr: np.ndarray) -> object:
    return json.loads(arr.tobytes().decode("utf-8"))


def nearest_commands(index: BM25Index | None, query: str, platform: str | None = "linux"):
    """The ranker's fallback source: a function k -> the commands of the k most similar indexed
    instructions, or None without an index (serving and eval use this one)."""
    if index is None:
        return None
    return lambda k: [h.command for h in index.search(query, k=k, platform=platform)]


def nearest_command(index: BM25Index, query: str, platform: str | None = "linux") -> str | None:
    """Nearest-neighbour baseline: the command of the most similar indexed instruction (None if nothing matches)."""
    hits = index.search(query, k=1, platform=platform)
    return hits[0].command if hits else None
