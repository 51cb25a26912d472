"""Tests for tinyllm.train.corpus: man page rendering/cache, text sources, build_corpus."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tinyllm.knowledge.manpages import clean_man_text
from tinyllm.train import corpus
from tinyllm.train.corpus import (
    build_corpus,
    iter_corpus_docs,
    iter_hf_text,
    iter_pair_docs,
    list_man_pages,
    render_man_pages,
    strip_tldr_examples,
)
from tinyllm.train.sources import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "data"
HAVE_MAN = shutil.which("man") is not None

ROFF = """.TH FROB 1 "2024" "frob 1.0" "User Commands"
.SH NAME
frob \\- frobnicate files
.SH SYNOPSIS
.B frob
[\\-v] [\\-\\-level=N] FILE
.SH DESCRIPTION
Frob reads FILE and writes it back, frobnicated.
.PP
Use \\-\\-level to choose the strength.
"""


def _man_root(tmp_path: Path) -> Path:
    root = tmp_path / "man"
    (root / "man1").mkdir(parents=True)
    (root / "man8").mkdir()
    (root / "man1" / "frob.1").write_text(ROFF)
    (root / "man8" / "frobd.8").write_text(ROFF.replace("FROB 1", "FROBD 8").replace("frob \\-", "frobd \\-"))
    (root / "man1" / "frob-alias.1").symlink_to(root / "man1" / "frob.1")
    (root / "man1" / "dangling.1").symlink_to(root / "man1" / "nope.1")
    for i in range(5):
        (root / "man1" / f"gcloud_sub{'x' * i}.1").write_text(ROFF)
    return root


def test_clean_man_text():
    raw = ("LS(1)                 User Commands                LS(1)\n\n\nN\bNA\bAM\bME\bE\n"
           "       ls \u2010 list, \u201cquoted\u201d\x1b[1m\n\n\n\n       more\n\nGNU coreutils 9.1   2022   LS(1)\n")
    assert clean_man_text(raw) == 'NAME\n       ls - list, "quoted"\n\n       more'


def test_list_man_pages_dedupes_and_caps_families(tmp_path):
    root = _man_root(tmp_path)
    pages = list_man_pages(roots=[root], max_per_prefix=2)
    names = sorted(p.name for p in pages)
    assert names == ["frob.1", "frobd.8", "gcloud_sub.1", "gcloud_subx.1"]  # symlink deduped, shortest gcloud kept
    assert [p.name for p in list_man_pages(sections=("8",), roots=[root])] == ["frobd.8"]


@pytest.mark.skipif(not HAVE_MAN, reason="man is not installed")
def test_render_man_pages_and_cache(tmp_path, monkeypatch):
    root = _man_root(tmp_path)
    cache = tmp_path / "cache"
    files = render_man_pages(cache, roots=[root], workers=2, progress=False, limit=2)
    assert len(files) == 2
    text = files[0].read_text()
    assert "frob - frobnicate files" in text and "--level=N" in text
    assert "User Commands" not in text  # header/footer dropped
    # Second run: everything comes from the cache, nothing is rendered.
    monkeypatch.setattr(corpus, "render_man_file", lambda *_: pytest.fail("re-rendered a cached page"))
    assert render_man_pages(cache, roots=[root], progress=False, limit=2) == files
    # A changed page (new mtime) is rendered again.
    page = root / "man1" / "frob.1"
    os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(corpus, "render_man_file", lambda *_: "re-rendered")
    again = render_man_pages(cache, roots=[root], progress=False, limit=2)
    assert "re-rendered\n" in [f.read_text() for f in again]


def test_iter_hf_text_local_json(tmp_path):
    pytest.importorskip("datasets")
    data = tmp_path / "wiki.jsonl"
    data.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(["Alpha.", "", "Gamma."])))
    assert list(iter_hf_text("json", data_files=str(data))) == ["Alpha.", "Gamma."]
    assert list(iter_hf_text("json", data_files=str(data), limit=1)) == ["Alpha."]
    with pytest.raises(DataError, match="no text field 'body'"):
        list(iter_hf_text("json", data_files=str(data), text_field="body"))


def test_strip_tldr_examples():
    page = (FIXTURES / "tldr" / "pages" / "common" / "tar.md").read_text()
    out = strip_tldr_examples(page, {"tar tvf {{path/to/source.tar}}", "tar xf {{path/to/source.tar[.gz|.bz2|.xz]}} "
                                     "--directory {{path/to/directory}}"})
    assert "tvf" not in out and "Lis[t]" not in out and "E[x]tract" not in out
    assert "tar cf" in out and "# tar" in out


def test_build_corpus(tmp_path, capsys):
    pytest.importorskip("datasets")
    texts = tmp_path / "texts"
    (texts / "sub").mkdir(parents=True)
    (texts / "a.txt").write_text("First doc.\n\n\n\nSecond paragraph.\fstill first\n")
    (texts / "sub" / "b.md").write_text("Markdown doc.\n")
    (texts / "sub" / "skip.bin").write_text("ignored")
    hf = tmp_path / "hf.jsonl"
    hf.write_text(json.dumps({"text": "From a dataset."}) + "\n" + json.dumps({"text": "Markdown doc."}) + "\n")
    held = tmp_path / "test.jsonl"
    held.write_text(json.dumps({"instruction": "x", "command": "tar tvf {{path/to/source.tar}}"}) + "\n")
    out = build_corpus(tmp_path / "out", None, FIXTURES, text_paths=[texts],
                       hf={"name": "json", "data_files": str(hf)}, exclude_pairs=[held])
    docs = list(iter_corpus_docs(out))
    manifest = json.loads((tmp_path / "out" / "corpus_manifest.json").read_text())
    assert manifest["sources"]["tldr"]["docs"] == 6  # common, linux, osx pages; windows skipped
    assert manifest["sources"]["text"]["docs"] == 2
    assert manifest["sources"]["hf:json"]["docs"] == 1  # the duplicate "Markdown doc." is written once
    assert manifest["docs"] == len(docs) == 9
    assert "First doc.\n\nSecond paragraph.\nstill first" in docs
    assert not any("tar tvf" in d for d in docs)  # held-out example removed from the tldr text
    assert all("\f" not in d for d in docs)
    # unchanged inputs: reused
    mtime = out.stat().st_mtime_ns
    build_corpus(tmp_path / "out", None, FIXTURES, text_paths=[texts], hf={"name": "json", "data_files": str(hf)},
                 exclude_pairs=[held])
    assert "reusing" in capsys.readouterr().out and out.stat().st_mtime_ns == mtime


def test_own_pairs_become_text_without_held_out_commands(tmp_path):
    pairs = tmp_path / "files.jsonl"
    rows = [{"instruction": f"show file {i}.txt", "command": f"cat  {i}.txt", "platform": "common"} for i in range(5)]
    rows.append({"instruction": "copy it to the clipboard", "command": "pbcopy < a.txt", "platform": "macos"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = list(iter_pair_docs([pairs], held_out={"cat 3.txt"}, per_doc=2))
    assert [d.count("# ") for d in docs] == [2, 2, 1]  # 5 pairs left, 2 a document
    text = "\n\n".join(docs)
    assert "# show file 0.txt\ncat 0.txt" in text  # the request, then its normalised command
    assert "cat 3.txt" not in text and "show file 3.txt" not in text
    assert "# copy it to the clipboard (macOS)\npbcopy < a.txt" in text
    held = tmp_path / "test.jsonl"
    held.write_text(json.dumps({"instruction": "x", "command": "cat 1.txt"}) + "\n")
    out = build_corpus(tmp_path / "out", None, None, exclude_pairs=[held], pair_files=[pairs])
    manifest = json.loads((tmp_path / "out" / "corpus_manifest.json").read_text())
    assert manifest["sources"] == {"pairs": {"docs": 1, "chars": len(next(iter_corpus_docs(out)))}}
    assert "cat 1.txt" not in out.read_text() and "cat 4.txt" in out.read_text()


@pytest.mark.skipif(not HAVE_MAN, reason="man is not installed")
def test_build_corpus_with_man_pages(tmp_path):
    out = build_corpus(tmp_path / "out", tmp_path / "cache", None, man_roots=[_man_root(tmp_path)])
    docs = list(iter_corpus_docs(out))
    # 7 pages rendered; the gcloud_* copies have the same text as frob.1 and are written once
    assert len(docs) == 2 and all("frobnicate" in d for d in docs)
    assert json.loads((tmp_path / "out" / "corpus_manifest.json").read_text())["sources"]["man"]["docs"] == 2


def test_build_corpus_errors(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        build_corpus(tmp_path / "out", None, tmp_path / "missing")
    with pytest.raises(DataError, match="corpus is empty"):
        build_corpus(tmp_path / "out", None, tmp_path)
    with pytest.raises(DataError, match="text path not found"):
        build_corpus(tmp_path / "out", None, None, text_paths=[tmp_path / "nope.txt"])
