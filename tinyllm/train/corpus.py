"""Pretraining text corpus: rendered man pages, tldr page text, plain text files and Hugging Face datasets.

``corpus.txt`` holds one document after another, each followed by the separator line ``DOC_SEPARATOR``
(a form feed on a line of its own, so documents can contain blank lines): split on ``"\\n\\f\\n"``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinyllm.knowledge.manpages import render_man_file
from tinyllm.knowledge.text import normalize_command, strip_control

from .sources import DataError, iter_tldr_pages, pair_file_digest, pair_file_name, read_pair_bytes, resolve_alternatives

DOC_SEPARATOR = "\f"
"""A line holding only a form feed ends every document in corpus.txt."""
DOC_SPLIT = "\n\f\n"
CORPUS_VERSION = 2  # 2: the own pairs as plain text

MAN_ROOTS = (Path("/usr/share/man"), Path("/usr/local/share/man"))
_BLANK_RUN_RE = re.compile(r"\n{3,}")


# ------------------------------------------------------------------------------------------- man pages


def list_man_pages(
    sections: Iterable[str] = ("1", "8"), roots: Iterable[Path] = MAN_ROOTS, max_per_prefix: int = 300
) -> list[Path]:
    """Man page files of `sections` (symlinks resolved, duplicates dropped), sorted.

    Families with a shared ``prefix_`` (16k ``gcloud_*`` pages on Debian) are capped at `max_per_prefix`
    pages, shortest names first (the top-level commands), so one tool cannot swamp the corpus.
    """
    seen: set[Path] = set()
    pages: list[Path] = []
    for root in roots:
        for sec in sections:
            folder = Path(root) / f"man{sec}"
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                try:
                    real = f.resolve(strict=True)
                except OSError:
                    continue  # dangling symlink
                if real.is_file() and real not in seen:
                    seen.add(real)
                    pages.append(real)
    by_prefix: dict[str, list[Path]] = {}
    for p in pages:
        by_prefix.setdefault(p.name.split("_", 1)[0] if "_" in p.name else p.name, []).append(p)
    kept: list[Path] = []
    for group in by_prefix.values():
        kept.extend(sorted(group, key=lambda p: (len(p.name), p.name))[:max_per_prefix])
    return sorted(kept)


def _cache_file(cache_dir: Path, page: Path) -> Path:
    st = page.stat()
    key = hashlib.sha1(f"{page}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:20]
    return cache_dir / f"{page.name.split('.', 1)[0][:60]}-{key}.txt"


def render_man_pages(
    cache_dir: Path | str,
    sections: Iterable[str] = ("1", "8"),
    workers: int = 2,
    limit: int | None = None,
    pages: list[Path] | None = None,
    progress: bool = True,
    roots: Iterable[Path] = MAN_ROOTS,
) -> list[Path]:
    """Render man pages into `cache_dir` (one .txt per page, keyed by file path+mtime) and return the
    non-empty cached files. Pages already cached are not rendered again, so reruns are instant."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    pages = list_man_pages(sections, roots) if pages is None else list(pages)
    if limit is not None:
        pages = pages[:limit]
    targets = [(p, _cache_file(cache_dir, p)) for p in pages]
    todo = [(p, c) for p, c in targets if not c.exists()]

    def work(item: tuple[Path, Path]) -> None:
        page, cache = item
        text = render_man_file(page)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(text + "\n" if text else "", encoding="utf-8")  # empty file = "failed, don't retry"
        tmp.replace(cache)

    if todo:
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in tqdm(pool.map(work, todo), total=len(todo), desc="man pages", file=sys.stderr,
                          disable=not progress, mininterval=2.0):
                pass
    return [c for _, c in targets if c.exists() and c.stat().st_size > 0]


# ------------------------------------------------------------------------------------- other sources


def iter_hf_text(
    name: str,
    config: str | None = None,
    split: str = "train",
    text_field: str = "text",
    limit: int | None = None,
    data_files: str | Sequence[str] | dict | None = None,
) -> Iterator[str]:
    """Stream the `text_field` of a Hugging Face dataset (e.g. ``wikimedia/wikipedia``, ``20231101.en``).

    Uses ``datasets.load_dataset(..., streaming=True)`` so nothing is downloaded up front; also works with
    local builders (``name="json"``, ``data_files=...``).
    """
    try:
        from datasets import load_dataset
    except ImportError as exc:  # the train extra is not installed
        raise DataError("the 'datasets' package is needed for Hugging Face text (pip install nl2cmd[train])") from exc
    try:
        ds = load_dataset(name, config, split=split, streaming=True, data_files=data_files)
        for i, example in enumerate(ds):
            if limit is not None and i >= limit:
                break
            text = example.get(text_field)
            if text is None:
                raise DataError(f"dataset {name!r} has no text field {text_field!r} (fields: {', '.join(example)})")
            if isinstance(text, str) and text.strip():
                yield text
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types (network, missing config, bad files)
        raise DataError(f"could not read dataset {name!r}: {type(exc).__name__}: {exc}") from exc


def iter_text_files(paths: Iterable[Path | str], suffixes: tuple[str, ...] = (".txt", ".md")) -> Iterator[tuple[Path, str]]:
    """Yield (path, text) for plain text files; folders are walked for `suffixes` (sorted, recursive)."""
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
        elif p.is_file():
            files = [p]
        else:
            raise DataError(f"text path not found: {p}")
        for f in files:
            yield f, f.read_text(encoding="utf-8", errors="replace")


def strip_tldr_examples(markdown: str, commands: set[str]) -> str:
    """Remove example blocks (description + command) whose normalised command is in `commands` (held-out data)."""
    if not commands:
        return markdown
    lines = markdown.splitlines()
    drop: set[int] = set()
    last_desc = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("- "):
            last_desc = i
        elif s.startswith("`") and s.endswith("`") and len(s) >= 2:
            if normalize_command(resolve_alternatives(s[1:-1].strip())) in commands:
                drop.add(i)
                if last_desc is not None:
                    drop.add(last_desc)
    return "\n".join(ln for i, ln in enumerate(lines) if i not in drop)


def iter_pair_docs(files: Iterable[Path | str], held_out: set[str], per_doc: int = 100) -> Iterator[str]:
    """The own pairs as plain text: a ``# request`` line, then its command; `per_doc` pairs a document.

    Pairs whose normalised command is held out (dev/test) are left out, as in the tldr text.
    """
    held = {normalize_command(c) for c in held_out}
    for f in files:
        lines: list[str] = []
        for raw in read_pair_bytes(f).decode("utf-8").splitlines():
            if not raw.strip():
                continue
            row = json.loads(raw)
            command = normalize_command(row["command"])
            if command in held:
                continue
            where = " (macOS)" if row.get("platform") == "macos" else ""
            lines.append(f"# {row['instruction']}{where}\n{command}")
            if len(lines) == per_doc:
                yield "\n\n".join(lines)
                lines = []
        if lines:
            yield "\n\n".join(lines)


def _held_out_commands(paths: Iterable[Path | str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.add(json.loads(line)["command"])
    return out


# ---------------------------------------------------------------------------------------------- build


def _clean_doc(text: str) -> str:
    # The separator must not occur inside a document; trailing spaces carry no information.
    text = strip_control(text.replace("\f", "\n").replace("\r\n", "\n"))
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(ln.rstrip() for ln in text.splitlines())).strip()


def build_corpus(
    out_dir: Path | str,
    man_cache: Path | str | None,
    data_dir: Path | str | None,
    text_paths: Sequence[Path | str] = (),
    hf: dict | Sequence[dict] | None = None,
    limit_man: int | None = None,
    exclude_pairs: Sequence[Path | str] = (),
    pair_files: Sequence[Path | str] = (),
    workers: int = 2,
    man_roots: Iterable[Path] = MAN_ROOTS,
) -> Path:
    """Write out_dir/corpus.txt (documents separated by a form-feed line) and corpus_manifest.json.

    Sources: rendered man pages (cached in `man_cache`; None skips them), the tldr pages under
    data_dir/tldr/pages as markdown text (examples whose command is in the `exclude_pairs` JSONL files,
    i.e. dev/test, are removed so evaluation stays clean), the own pairs in `pair_files` as plain text
    (``iter_pair_docs``, held-out commands removed too), plain text files/folders, and Hugging Face
    datasets (`hf`: keyword arguments of iter_hf_text, or a list of them). Identical documents are
    written once. Reuses the existing corpus when the inputs' fingerprint is unchanged.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_list = [] if hf is None else [hf] if isinstance(hf, dict) else list(hf)
    man_files = (render_man_pages(man_cache, workers=workers, limit=limit_man, roots=man_roots)
                 if man_cache is not None else [])
    tldr_dir = Path(data_dir) / "tldr" / "pages" if data_dir is not None else None
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data directory not found: {data_dir}")
    held_out = _held_out_commands(exclude_pairs)

    fp = hashlib.sha256(json.dumps({"hf": hf_list, "version": CORPUS_VERSION}, sort_keys=True, default=str).encode())
    for f in man_files:
        fp.update(f.name.encode())  # cache names embed the man file's path and mtime
    for p in [*([tldr_dir] if tldr_dir and tldr_dir.is_dir() else []), *map(Path, text_paths), *map(Path, exclude_pairs)]:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                fp.update(str(f).encode() + hashlib.sha256(f.read_bytes()).digest())
    for f in map(Path, pair_files):  # by content: a checkout's pairs and an install's .gz copies agree
        fp.update(pair_file_name(f).encode() + pair_file_digest(f))
    fingerprint = fp.hexdigest()
    corpus, manifest_path = out_dir / "corpus.txt", out_dir / "corpus_manifest.json"
    if corpus.is_file() and manifest_path.is_file():
        if json.loads(manifest_path.read_text()).get("fingerprint") == fingerprint:
            print(f"corpus: reusing {corpus}")
            return corpus

    def docs() -> Iterator[tuple[str, str]]:
        for f in man_files:
            yield "man", f.read_text(encoding="utf-8", errors="replace")
        if tldr_dir is not None and tldr_dir.is_dir():
            for _plat, _name, text in iter_tldr_pages(tldr_dir):
                yield "tldr", strip_tldr_examples(text, held_out)
        for text in iter_pair_docs(pair_files, held_out):
            yield "pairs", text
        for _path, text in iter_text_files(text_paths):
            yield "text", text
        for spec in hf_list:
            for text in iter_hf_text(**spec):
                yield f"hf:{spec.get('name')}", text

    stats: dict[str, dict[str, int]] = {}
    seen: set[bytes] = set()
    tmp = corpus.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for source, raw in docs():
            doc = _clean_doc(raw)
            digest = hashlib.sha1(doc.encode()).digest()
            if not doc or digest in seen:
                continue
            seen.add(digest)
            out.write(doc + "\n" + DOC_SEPARATOR + "\n")
            s = stats.setdefault(source, {"docs": 0, "chars": 0})
            s["docs"] += 1
            s["chars"] += len(doc)
    if not stats:
        tmp.unlink()
        raise DataError("the corpus is empty: no man pages, tldr pages, text files or datasets were found")
    tmp.replace(corpus)
    manifest = {"version": CORPUS_VERSION, "fingerprint": fingerprint, "separator": "\\n\\f\\n", "sources": stats,
                "docs": sum(s["docs"] for s in stats.values()), "chars": sum(s["chars"] for s in stats.values()),
                "held_out_commands": len(held_out), "hf": hf_list}
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    print(f"corpus: wrote {corpus} ({manifest['docs']} docs, {manifest['chars']:,} chars)")
    return corpus


def iter_corpus_docs(corpus_txt: Path | str) -> Iterator[str]:
    """Yield the documents of a corpus.txt written by build_corpus (streaming, line by line)."""
    buf: list[str] = []
    with Path(corpus_txt).open(encoding="utf-8") as f:
        for line in f:
            if line == DOC_SEPARATOR + "\n":
                yield "".join(buf).rstrip("\n")
                buf.clear()
            else:
                buf.append(line)
    if "".join(buf).strip():
        yield "".join(buf).rstrip("\n")
