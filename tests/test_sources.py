"""Tests for tinyllm.train.sources: tldr, NL2Bash, raw and JSONL pair parsers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tinyllm.train.sources import (
    DataError,
    Problems,
    download_tldr,
    iter_jsonl_pairs,
    iter_nl2bash,
    iter_raw_pairs,
    iter_tldr,
    parse_tldr_page,
    resolve_alternatives,
)

FIXTURES = Path(__file__).parent / "fixtures" / "data"
TAR_PAGE = (FIXTURES / "tldr" / "pages" / "common" / "tar.md").read_text()


def test_parse_tldr_page_rows_and_cleanup():
    rows = parse_tldr_page(TAR_PAGE, "common", "tar.md")
    assert [r["instruction"] for r in rows] == [
        "create an archive and write it to a file",
        "Extract a (compressed) archive file into the target directory",
        "List the contents of a tar file verbosely",
        "Display help",
    ]
    # placeholders kept verbatim, {{[-C|--directory]}} resolved to the long option
    assert rows[0]["command"] == "tar cf {{path/to/target.tar}} {{path/to/file1 path/to/file2 ...}}"
    assert rows[1]["command"] == "tar xf {{path/to/source.tar[.gz|.bz2|.xz]}} --directory {{path/to/directory}}"
    assert all(r["source"] == "tldr" and r["platform"] == "common" for r in rows)
    assert parse_tldr_page(TAR_PAGE, "osx")[0]["platform"] == "macos"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("ls {{[-a|--all]}}", "ls --all"),
        ("ip {{[a|address]}}", "ip address"),  # no long option: the longer spelling
        ("mysql {{[-p|--password]}}{{password}}", "mysql -p{{password}}"),  # glued value: short form only
        ("x {{[gzip|bzip2|xz]}}", "x {{gzip|bzip2|xz}}"),  # a real choice stays a placeholder
        ("x {{[-ngl|--gpu-layers|--n-gpu-layers]}}", "x --gpu-layers"),
        ("cat {{path/to/file}}", "cat {{path/to/file}}"),
    ],
)
def test_resolve_alternatives(command, expected):
    assert resolve_alternatives(command) == expected


def test_malformed_tldr_blocks_reported_with_line_numbers():
    page = "# bad\n\n> Summary.\n\n- Lonely description:\n\n- Good one:\n\n`ls`\n\n`orphan command`\nstray text\n"
    problems = Problems()
    rows = parse_tldr_page(page, "linux", "bad.md", problems=problems)
    assert rows == [{"instruction": "Good one", "command": "ls", "source": "tldr", "platform": "linux"}]
    assert problems.messages == [
        "bad.md:5: description without a command",
        "bad.md:11: command without a description",
        "bad.md:12: unexpected line 'stray text'",
    ]
    with pytest.raises(DataError, match=r"bad\.md:5: description without a command"):
        parse_tldr_page(page, "linux", "bad.md", strict=True)


def test_interactive_examples_are_skipped():
    page = "# debugfs\n\n- [Interactive] List all commands:\n\n`lr`\n\n- Open a device:\n\n`debugfs {{/dev/sdXN}}`\n"
    assert [r["command"] for r in parse_tldr_page(page, "linux")] == ["debugfs {{/dev/sdXN}}"]


def test_iter_tldr_directory_keeps_common_linux_osx_only():
    rows = list(iter_tldr(FIXTURES / "tldr" / "pages"))
    assert {r["platform"] for r in rows} == {"common", "linux", "macos"}
    assert not any(r["command"] == "dir" for r in rows)  # windows page skipped
    assert list(iter_tldr(FIXTURES / "tldr")) == rows  # the tldr root works too


def _make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pages/common/tar.md", TAR_PAGE)
        zf.writestr("pages/windows/dir.md", "# dir\n\n- List:\n\n`dir`\n")
        zf.writestr("pages.de/common/tar.md", "# tar\n\n- Archiv erstellen:\n\n`tar cf a.tar b`\n")
    return path


def test_iter_tldr_zip(tmp_path):
    rows = list(iter_tldr(_make_zip(tmp_path / "tldr.zip")))
    assert len(rows) == 4
    assert {r["platform"] for r in rows} == {"common"}


def test_iter_tldr_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list(iter_tldr(tmp_path / "missing"))
    with pytest.raises(DataError, match="no tldr pages"):
        list(iter_tldr(tmp_path))
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(DataError, match="not a tldr zip"):
        list(iter_tldr(tmp_path / "junk.zip"))


def test_download_tldr_from_file_url(tmp_path):
    src = _make_zip(tmp_path / "upstream.zip")
    dest = tmp_path / "dl"
    dest.mkdir()
    got = download_tldr(dest, url=src.as_uri())
    assert got == dest / "tldr.zip"
    assert got.read_bytes() == src.read_bytes()
    assert len(list(iter_tldr(got))) == 4
    (tmp_path / "page.html").write_text("<html>")
    with pytest.raises(DataError, match="not a zip"):
        download_tldr(tmp_path / "x.zip", url=(tmp_path / "page.html").as_uri())
    with pytest.raises(DataError, match="could not download"):
        download_tldr(tmp_path / "y.zip", url=(tmp_path / "absent.zip").as_uri())
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "y.zip").exists()


def test_iter_nl2bash(tmp_path):
    rows = list(iter_nl2bash(FIXTURES / "nl2bash"))
    assert rows[0] == {"instruction": "Display information on CPU usage.", "command": "top -bn1 | sed -n '/Cpu/p'",
                       "source": "nl2bash", "platform": "linux"}
    assert len(rows) == 4
    (tmp_path / "all.nl").write_text("(Mac OSX specific) Copy to clipboard\nb\n")
    (tmp_path / "all.cm").write_text("pbcopy < f\n")
    with pytest.raises(DataError, match="line counts differ"):
        list(iter_nl2bash(tmp_path))
    (tmp_path / "all.cm").write_text("pbcopy < f\nls\n")
    assert [r["platform"] for r in iter_nl2bash(tmp_path)] == ["macos", "linux"]
    with pytest.raises(DataError, match="not found"):
        list(iter_nl2bash(tmp_path / "nope"))


def test_iter_raw_pairs(tmp_path, capsys):
    path = tmp_path / "raw.txt"
    path.write_text(
        "# comment\nList files\nls -la\n\nShow disk usage\n# inline comment\ndu -sh .\n"
        "Count lines\twc -l notes.txt\n\nOne\nTwo\nThree\n\n"
    )
    rows = list(iter_raw_pairs(path))
    assert [(r["instruction"], r["command"]) for r in rows] == [
        ("List files", "ls -la"), ("Show disk usage", "du -sh ."), ("Count lines", "wc -l notes.txt")]
    assert "raw.txt:10: expected instruction and command lines, got 3 lines" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"raw\.txt:10:"):
        list(iter_raw_pairs(path, strict=True))


def test_iter_jsonl_pairs(tmp_path, capsys):
    path = tmp_path / "user.jsonl"
    path.write_text(
        '{"instruction": "list files", "command": "ls", "platform": "osx"}\n'
        "\n"
        "{not json\n"
        '{"instruction": "no command"}\n'
        '["a list"]\n'
        '{"instruction": "show date", "command": "date"}\n'
    )
    rows = list(iter_jsonl_pairs(path))
    assert rows == [
        {"instruction": "list files", "command": "ls", "source": "user", "platform": "macos"},
        {"instruction": "show date", "command": "date", "source": "user", "platform": "common"},
    ]
    err = capsys.readouterr().err
    assert "skipped 3 malformed" in err and "user.jsonl:3: invalid JSON" in err
    with pytest.raises(DataError, match=r"user\.jsonl:3: invalid JSON"):
        list(iter_jsonl_pairs(path, strict=True))
    with pytest.raises(DataError, match="file not found"):
        list(iter_jsonl_pairs(tmp_path / "missing.jsonl"))
