"""Pretraining text corpus: rendered man pages, tldr page text, plain text files and Hugging Face datasets.

``corpus.txt`` holds one document after another, each followed by the separator line ``DOC_SEPARATOR``
(a form feed on a line of its own, so documents can contain blank lines): split on ``"\\n\\f\\n"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinyllm.text import ascii_typography, strip_control

from .sources import DataError, iter_tldr_pages

DOC_SEPARATOR = "\f"
"""A line holding only a form feed ends every document in corpus.txt."""
DOC_SPLIT = "\n\f\n"

MAN_ROOTS = (Path("/usr/share/man"), Path("/usr/local/share/man"))
_OVERSTRIKE_RE = re.compile(r".\x08")
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_HEADER_RE = re.compile(r"^\S.*\(\w+\)\s*$")  # "LS(1)   User Commands   LS(1)" and the footer "... LS(1)"


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


def clean_man_text(text: str) -> str:
    """Rendered man page -> plain text: overstrike and escapes removed, ASCII typography, no header/footer."""
    text = _OVERSTRIKE_RE.sub("", text)
    # man renders '-' in options as U+2010 in UTF-8 locales: commands must come out as ASCII.
    text = ascii_typography(strip_control(text)).replace("\u00ad", "")
    lines = [ln.rstrip() for ln in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if lines and _HEADER_RE.match(lines[0]):
        lines.pop(0)
    if lines and _HEADER_RE.match(lines[-1]):
        lines.pop()
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(lines)).strip()


def render_man_file(path: Path, timeout: float = 60.0) -> str:
    """Render one man page file to cleaned plain text (empty string if man fails)."""
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="", MANPAGER="cat", PAGER="cat")
    try:
        # --nh/--nj: no hyphenation or justification, so words and spacing come out as written.
        out = subprocess.run(
            ["man", "--nh", "--nj", "-P", "cat", "-l", str(path)],
            env=env, capture_output=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if out.returncode != 0:
        return ""
    return clean_man_text(out.stdout.decode("utf-8", errors="replace"))


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
) -> list[Path]:
    """Render man pages into `cache_dir` (one .txt per page, keyed by file path+mtime) and return the
    non-empty cached files. Pages already cached are not rendered again, so reruns are instant."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    pages = list_man_pages(sections) if pages is None else list(pages)
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
