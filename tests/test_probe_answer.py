"""scripts/probe_answer.py: a probe's rows get the served model's answers; a bad file is left untouched."""

import json
from pathlib import Path

import pytest

from .script_module import load_script


@pytest.fixture(scope="module")
def pa():
    return load_script("probe_answer")


class EchoSuggester:
    """Answers each request with its platform and request, and fails on one request."""

    class Answer:
        def __init__(self, command: str):
            self.command = command

    def suggest(self, request: str, platform: str):
        if request == "boom":
            raise RuntimeError("engine failed")
        return self.Answer(f"{platform}: {request}")


def _write(path: Path, rows: list) -> str:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_text(text)
    return text


def test_rows_get_answers_fields_are_kept_and_a_backup_is_written(pa, tmp_path):
    probe = tmp_path / "probe.jsonl"
    before = _write(probe, [{"request": "list files", "platform": "common", "accept": ["ls"]},
                            {"request": "show disk use", "platform": "macos"},
                            {"request": "boom"}])
    rows = pa.read_probe(probe)
    shown = []
    pa.answer_rows(rows, EchoSuggester(), echo=shown.append)
    pa.write_rows(probe, rows)
    after = [json.loads(line) for line in probe.read_text().splitlines()]
    assert [r["answer"] for r in after] == ["linux: list files", "macos: show disk use", "ERROR: engine failed"]
    assert after[0]["accept"] == ["ls"] and after[1]["platform"] == "macos"
    assert (tmp_path / "probe.jsonl.bak").read_text() == before
    assert shown[0] == "list files\t->\tlinux: list files"


def test_answers_are_echoed_without_control_characters(pa):
    rows = [{"request": "say \x1b[31mhi\x07"}]
    shown = []
    pa.answer_rows(rows, EchoSuggester(), echo=shown.append)
    assert "\x1b" not in shown[0] and "\x07" not in shown[0]
    assert rows[0]["answer"] == "linux: say \x1b[31mhi\x07"  # the file keeps what the model said


@pytest.mark.parametrize("lines, message", [
    (['{"request": "ok"}', "not json"], ":2: not JSON"),
    (['{"platform": "linux"}'], ':1: expected an object with a non-empty "request"'),
    (['{"request": "x", "platform": "windows"}'], ":1: platform 'windows'"),
    ([""], "no requests"),
])
def test_a_malformed_probe_is_reported_on_one_line_and_left_untouched(pa, tmp_path, capsys, lines, message):
    probe = tmp_path / "probe.jsonl"
    before = _write(probe, lines)
    assert pa.main([str(probe)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("probe_answer: ")
    assert probe.read_text() == before and not (tmp_path / "probe.jsonl.bak").exists()


def test_the_shipped_model_answers_a_probe(pa, tmp_path, capsys):
    probe = tmp_path / "probe.jsonl"
    _write(probe, [{"request": "list files", "platform": "linux", "accept": ["ls"]}])
    assert pa.main([str(probe)]) == 0
    row = json.loads(probe.read_text())
    assert row["answer"] and not row["answer"].startswith("ERROR") and row["accept"] == ["ls"]
    assert "list files\t->\t" in capsys.readouterr().out


@pytest.mark.parametrize("command, compound", [
    ("ls -la", False),
    ("find . -name '*.tmp' -delete", False),
    ("sort names.txt 2>/dev/null", False),
    ("wc -l < notes.txt", False),
    ("make -j4 >/dev/null 2>&1", False),
    ("ls -l | grep '^d'", True),
    ("mkdir -p out && cd out", True),
    ("for f in *.png; do convert \"$f\" \"${f%.png}.jpg\"; done", True),
    ("tar -czf backup-$(date +%F).tar.gz docs", True),
    ("sort names.txt > sorted.txt", True),
    ("find . -name '*.log' -exec gzip {} +", True),
    ("diff <(sort a.txt) <(sort b.txt)", True),
])
def test_compound_means_more_than_one_step(pa, command, compound):
    assert pa.is_compound(command) is compound


def test_summary_counts_each_group_and_the_total(pa, tmp_path, capsys):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(first, [{"request": "r1", "platform": "macos", "accept": ["ls | wc -l"], "right": True},
                   {"request": "r2", "platform": "common", "accept": ["ls"], "right": False},
                   {"request": "r3", "platform": "linux", "accept": [], "answer": "du -sh . > size.txt",
                    "right": True}])
    _write(second, [{"request": "r4", "platform": "linux", "accept": ["df -h"], "right": True}])
    assert pa.main(["--summary", str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("| a.jsonl | 2 of 3 (67%) | 2 of 2 (100%) | 0 of 1 (0%) | 1 of 2 (50%) | 1 of 1 (100%) | 0 |")
    assert lines[-1].startswith("| **total** | 3 of 4 (75%) | 2 of 2 (100%) | 1 of 2 (50%) | 2 of 3 (67%) |")


def test_summary_of_a_probe_not_fully_judged_fails(pa, tmp_path, capsys):
    probe = tmp_path / "p.jsonl"
    _write(probe, [{"request": "r1", "accept": ["ls"], "right": True}, {"request": "r2", "answer": "ls"}])
    assert pa.main(["--summary", str(probe)]) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith("| 1 |")


def test_summary_of_a_malformed_probe_is_one_line(pa, tmp_path, capsys):
    probe = tmp_path / "p.jsonl"
    _write(probe, ["not json"])
    assert pa.main(["--summary", str(probe)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("probe_answer: ") and err.count("\n") == 1


def test_asking_takes_one_probe(pa, tmp_path, capsys):
    probe = tmp_path / "p.jsonl"
    _write(probe, [{"request": "list files"}])
    assert pa.main([str(probe), str(probe)]) == 2
    assert "--summary" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl.bak").exists()


def test_summary_names_probes_of_the_same_name_by_their_folder(pa, tmp_path, capsys):
    for writer in ("git", "media"):
        (tmp_path / writer).mkdir()
        _write(tmp_path / writer / "probe.jsonl", [{"request": "r", "accept": ["ls"], "right": True}])
    assert pa.main(["--summary", str(tmp_path / "git" / "probe.jsonl"), str(tmp_path / "media" / "probe.jsonl")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| git/probe.jsonl |") and rows[3].startswith("| media/probe.jsonl |")
