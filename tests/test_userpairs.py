"""tinyllm.knowledge.userpairs: the user's learnt pairs as plain, hand-editable JSONL."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from tinyllm.knowledge import userpairs
from tinyllm.knowledge.text import MAX_REQUEST_CHARS
from tinyllm.knowledge.userpairs import UserPair, UserPairsError


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "user_pairs.jsonl"


def test_add_list_remove_round_trip(pairs_file: Path) -> None:
    assert userpairs.list_pairs(pairs_file) == []
    n1, p1 = userpairs.add("deploy the site", "rsync -av public/ web:/srv/www/", path=pairs_file)
    n2, _ = userpairs.add("open the notes", "vim ~/notes.md", path=pairs_file)
    n3, _ = userpairs.add("show uptime", "uptime", platform="macos", path=pairs_file)
    assert (n1, n2, n3) == (1, 2, 3)
    assert p1.instruction == "deploy the site" and p1.added and p1.platform is None
    listed = userpairs.list_pairs(pairs_file)
    assert [p.command for p in listed] == ["rsync -av public/ web:/srv/www/", "vim ~/notes.md", "uptime"]
    assert listed[2].platform == "macos"

    removed = userpairs.remove(2, pairs_file)
    assert removed.instruction == "open the notes"
    assert [p.instruction for p in userpairs.list_pairs(pairs_file)] == ["deploy the site", "show uptime"]
    # The file stays plain JSONL, one object per line.
    lines = pairs_file.read_text().splitlines()
    assert [json.loads(line)["instruction"] for line in lines] == ["deploy the site", "show uptime"]


def test_file_is_private_and_written_atomically(pairs_file: Path) -> None:
    userpairs.add("a b", "ls", path=pairs_file)
    assert stat.S_IMODE(pairs_file.stat().st_mode) == 0o600
    leftovers = [p.name for p in pairs_file.parent.iterdir() if p.name.startswith(".user_pairs.")]
    assert leftovers == []


def test_same_instruction_replaces_the_pair(pairs_file: Path) -> None:
    userpairs.add("Deploy the site", "make deploy", path=pairs_file)
    number, pair = userpairs.add("deploy  the SITE.", "rsync -a x y", path=pairs_file)
    assert number == 1
    assert [p.command for p in userpairs.list_pairs(pairs_file)] == ["rsync -a x y"]
    # A platform-specific pair for the same words is a separate entry.
    number, _ = userpairs.add("deploy the site", "open deploy.app", platform="macos", path=pairs_file)
    assert number == 2


def test_normalisation_and_validation(pairs_file: Path) -> None:
    _, pair = userpairs.add("  list \u201cbig\u201d\x1b[31m files\x07.  ", "ls\t-la \x1b[0m", path=pairs_file)
    assert pair.instruction == 'list "big" files'
    assert pair.command == "ls -la"
    for instr, cmd, fragment in [
        ("   ", "ls", "empty instruction"),
        ("list", " \x07 ", "empty command"),
        ("x" * (MAX_REQUEST_CHARS + 1), "ls", "instruction too long"),
        ("list", "x" * (userpairs.MAX_USER_COMMAND_CHARS + 1), "command too long"),
    ]:
        with pytest.raises(UserPairsError, match=fragment):
            userpairs.add(instr, cmd, path=pairs_file)
    with pytest.raises(UserPairsError, match="platform"):
        userpairs.add("list", "ls", platform="windows", path=pairs_file)
    assert len(userpairs.list_pairs(pairs_file)) == 1


def test_malformed_lines_are_reported_skipped_and_preserved(pairs_file: Path) -> None:
    pairs_file.parent.mkdir(parents=True)
    pairs_file.write_text(
        '{"instruction": "one", "command": "echo 1"}\n'
        "this is not json\n"
        "\n"
        '["a list"]\n'
        '{"instruction": "no command"}\n'
        '{"instruction": "two", "command": "echo 2"}\n'
        '{"instruction": "", "command": "echo empty"}\n'
        '{"instruction": "three", "command": 3}\n'
    )
    pairs, problems = userpairs.load(pairs_file)
    assert [p.instruction for p in pairs] == ["one", "two"]
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in problems] == ["2", "4", "5", "7", "8"]
    assert "invalid JSON" in problems[0] and "expected a JSON object" in problems[1]
    assert "needs 'instruction' and 'command'" in problems[2] and "empty instruction" in problems[3]
    # Removing by the listed number skips malformed lines; they survive the rewrite verbatim.
    assert userpairs.remove(2, pairs_file).instruction == "two"
    text = pairs_file.read_text()
    assert "this is not json" in text and '{"instruction": "no command"}' in text
    assert [p.instruction for p in userpairs.list_pairs(pairs_file)] == ["one"]


def test_non_utf8_file_does_not_crash(pairs_file: Path) -> None:
    pairs_file.parent.mkdir(parents=True)
    pairs_file.write_bytes(b'{"instruction": "caf\xe9", "command": "echo \xff"}\n\xff\xfe\n')
    pairs, problems = userpairs.load(pairs_file)
    assert len(pairs) == 1 and "\ufffd" in pairs[0].instruction
    assert len(problems) == 1 and ":2:" in problems[0]


def test_remove_out_of_range(pairs_file: Path) -> None:
    with pytest.raises(UserPairsError, match="no learnt pairs"):
        userpairs.remove(1, pairs_file)
    userpairs.add("a", "ls", path=pairs_file)
    for n in (0, 2, -1):
        with pytest.raises(UserPairsError, match="no pair number"):
            userpairs.remove(n, pairs_file)
    assert len(userpairs.list_pairs(pairs_file)) == 1


def test_import(tmp_path: Path, pairs_file: Path) -> None:
    userpairs.add("existing", "echo old", path=pairs_file)
    src = tmp_path / "import.jsonl"
    src.write_text(
        '{"instruction": "existing", "command": "echo new"}\n'
        '{"instruction": "fresh one", "command": "echo fresh", "platform": "linux"}\n'
        "{broken\n"
        '{"instruction": "fresh two", "command": "echo two", "added": "2020-01-01T00:00:00Z"}\n'
    )
    result = userpairs.import_file(src, pairs_file)
    assert (result.added, result.updated) == (2, 1)
    assert result.problems and len(result.problems) == 1 and f"{src}:3:" in result.problems[0]
    pairs = userpairs.list_pairs(pairs_file)
    assert [(p.instruction, p.command) for p in pairs] == [
        ("existing", "echo new"), ("fresh one", "echo fresh"), ("fresh two", "echo two")]
    assert pairs[1].platform == "linux" and pairs[2].added == "2020-01-01T00:00:00Z" and pairs[1].added
    with pytest.raises(UserPairsError, match="no such file"):
        userpairs.import_file(tmp_path / "missing.jsonl", pairs_file)


def test_lookup_is_case_insensitive_and_platform_aware() -> None:
    pairs = [
        UserPair("deploy the site", "make deploy"),
        UserPair("show uptime", "uptime -p", platform="linux"),
        UserPair("show uptime", "uptime", platform="macos"),
    ]
    assert userpairs.lookup(pairs, "Deploy  the SITE.").command == "make deploy"
    assert userpairs.lookup(pairs, "deploy the sites") is None
    assert userpairs.lookup(pairs, "show uptime", "linux").command == "uptime -p"
    assert userpairs.lookup(pairs, "show uptime", "macos").command == "uptime"
    assert userpairs.pair_key("  A\u00a0B. ") == "a b"


def test_concurrent_writers_lose_nothing(pairs_file: Path) -> None:
    def writer(tag: str) -> None:
        for i in range(15):
            userpairs.add(f"{tag} {i}", f"echo {tag}{i}", path=pairs_file)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("alpha", "beta", "gamma")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(userpairs.list_pairs(pairs_file)) == 45


def test_default_path_follows_nl2cmd_home(nl2cmd_home: Path) -> None:
    assert userpairs.default_path() == nl2cmd_home / "data" / "user_pairs.jsonl"
    userpairs.add("x y", "ls")
    assert userpairs.list_pairs()[0].command == "ls"
