"""Tests for tinyllm.train.metrics on concrete predicted/gold command pairs."""

from __future__ import annotations

import pytest

from tinyllm.train.metrics import (
    CATEGORIES,
    command_name,
    command_name_match,
    exact_match,
    failure_category,
    nlc2cmd_score,
    summarize,
    template,
    template_match,
    utilities,
)


def test_exact_match_ignores_whitespace_and_quoting_that_changes_nothing() -> None:
    assert exact_match("ls  -la ", "ls -la")
    assert exact_match("ls\t-la", "ls -la")
    assert exact_match("find src -name \"*.py\" | wc -l", "find src -name '*.py' | wc -l")
    assert exact_match("git log --oneline|grep -i 'fix'", "git log --oneline | grep -i fix")
    assert exact_match("find . -exec rm {} \\;", "find . -exec rm '{}' ';'")
    assert not exact_match("ls -al", "ls -la")
    assert not exact_match("LS -la", "ls -la")
    assert not exact_match("find src -name *.py", "find src -name '*.py'")  # the glob expands
    assert not exact_match('echo "$HOME"', "echo '$HOME'")  # one expands, one does not
    assert not exact_match("grep 'a b' f", "grep a b f")  # one word against two


def test_an_exact_match_scores_full_marks_on_every_metric() -> None:
    pred, gold = "awk -F, '{s+=$3} END {print s}' d.csv", "awk -F',' '{s+=$3} END {print s}' d.csv"
    assert exact_match(pred, gold)
    assert template_match(pred, gold) and nlc2cmd_score(pred, gold) == 1.0
    assert template_match("pip install 'django==4.2'", "pip install django==4.2")


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("ls -la", "ls"),
        ("sudo apt install vim", "apt"),
        ("sudo -u postgres psql", "psql"),
        ("env LANG=C sort file", "sort"),
        ("LC_ALL=C FOO=1 grep -r x .", "grep"),
        ("time nohup ./train.sh", "train.sh"),
        ("/usr/bin/find . -name x", "find"),
        ("find . | xargs rm", "find"),
        ("  ", ""),
        ("sudo", ""),
        ("{{[ls|list]}} -a", "ls"),
    ],
)
def test_command_name(command: str, name: str) -> None:
    assert command_name(command) == name


def test_command_name_match() -> None:
    assert command_name_match("sudo rm -rf build", "rm -r {{path/to/dir}}")
    assert not command_name_match("cat a", "less a")
    assert not command_name_match("", "")


def test_utilities_in_pipeline_order() -> None:
    assert utilities("find . -name '*.py' | xargs grep -l foo | sort > out.txt && echo done") == [
        "find", "xargs", "sort", "echo"]
    assert utilities("echo 'a | b; c'") == ["echo"]  # operators inside quotes are not operators
    assert utilities("grep x file 2>&1 | less") == ["grep", "less"]


def test_template_replaces_values() -> None:
    assert template("find {{path/to/dir}} -name '*.txt' -mtime +7") == "find ARG -name ARG -mtime ARG"
    assert template("find . -name \"*.txt\" -mtime +7") == "find ARG -name ARG -mtime ARG"
    assert template("dd if=/dev/sda of={{file}} bs=4M") == "dd if=ARG of=ARG bs=ARG"
    assert template("curl --output=out.html https://x.org") == "curl --output=ARG ARG"
    assert template("git push origin main") == "git push origin main"
    assert template("rm {{[-r|--recursive]}} {{path}}") == "rm -r ARG"
    assert template("echo \"$(date)\" > out.txt") == "echo ARG > ARG"
    assert template("FOO=1 make -j4") == "FOO=ARG make -j4"


def test_template_match() -> None:
    assert template_match("find . -name '*.log' -delete", "find {{path/to/dir}} -name {{'*.ext'}} -delete")
    assert template_match("tar -xzf backup.tar.gz", "tar -xzf {{path/to/file.tar.gz}}")
    assert template_match("cat notes", "cat {{path/to/file}}")  # placeholder matches a bare word
    assert template_match("rm --recursive build/", "rm {{[-r|--recursive]}} {{path/to/dir}}")
    assert template_match("head -n 20 log.txt", "head -n 10 {{file}}")  # numbers are values
    assert not template_match("find . -type d", "find . -type f")  # bare words are literal
    assert not template_match("rm -f x", "rm -r {{path}}")  # a placeholder never stands for an option
    assert not template_match("cat a b", "cat {{file}}")
    assert not template_match("ls", "ls | wc -l")
    assert not template_match("", "")


def test_nlc2cmd_score_values() -> None:
    assert nlc2cmd_score("ls -la", "ls -al") == 1.0  # flag order / clustering ignored
    assert nlc2cmd_score("ls -l -a", "ls -la") == 1.0
    assert nlc2cmd_score("cat a.txt", "less a.txt") == -1.0
    # one of two flags right: S_F = (2*1 - 2)/2 = 0 -> 0.5; tail identical -> 1; mean 0.75
    assert nlc2cmd_score("find . -type f | tail -n 5", "find . -type f -ctime -3 | tail -n 5") == pytest.approx(0.75)
    # missing a whole pipeline stage costs -1 for that position: (1 - 1) / 2
    assert nlc2cmd_score("ps aux", "ps aux | grep python") == pytest.approx(0.0)
    # disjoint flags: S_F = (0 - 2)/1 = -2 -> (1 - 2)/2 = -0.5
    assert nlc2cmd_score("ls -a", "ls -l") == pytest.approx(-0.5)
    # arguments do not matter
    assert nlc2cmd_score("grep -r foo src", "grep -r bar .") == 1.0
    # tldr alternatives: any spelling matches
    assert nlc2cmd_score("rm --recursive --force x", "rm {{[-r|--recursive]}} {{[-f|--force]}} {{path}}") == 1.0
    assert nlc2cmd_score("", "") == 1.0
    assert nlc2cmd_score("", "ls") == -1.0


@pytest.mark.parametrize(
    ("pred", "gold"),
    [("ls", "find . -exec rm {} +"), ("tar -cvf a b", "zip -r a b"), ("a | b | c", "d"),
     ("sort -u -r -n x", "sort y"), ("", "ls -la")],
)
def test_nlc2cmd_score_range(pred: str, gold: str) -> None:
    assert -1.0 <= nlc2cmd_score(pred, gold) <= 1.0


@pytest.mark.parametrize(
    ("pred", "gold", "category"),
    [
        ("ls -la", "ls  -la", "exact"),
        ("", "ls -la", "stopped_early"),
        ("find . -name '*.py'", "find . -name '*.py' -exec wc -l {} +", "stopped_early"),
        ("ps -ef", "ps -ef | grep python | awk '{print $2}' | xargs kill", "stopped_early"),
        ("cat file.txt", "less file.txt", "wrong_utility"),
        ("ps aux | wc -l", "ps aux | grep x", "wrong_utility"),
        ("ls -l", "ls -la", "wrong_flags"),
        ("grep -i foo a.txt", "grep -r foo .", "wrong_flags"),
        ("cp a.txt b.txt", "cp x.txt y.txt", "wrong_arguments"),
        ("rm --recursive build", "rm {{[-r|--recursive]}} {{path/to/dir}}", "wrong_arguments"),
    ],
)
def test_failure_category(pred: str, gold: str, category: str) -> None:
    assert failure_category(pred, gold) == category


def test_summarize() -> None:
    rows = [
        {"pred": "ls -la", "gold": "ls -la"},
        {"pred": "cat x", "gold": "less x"},
        {"pred": "tar -xzf a.tgz", "gold": "tar -xzf {{path/to/archive}}"},
        ("ls -l", "ls -la"),
    ]
    s = summarize(rows)
    assert s["n"] == 4
    assert s["exact_match"] == pytest.approx(0.25)
    assert s["command_name_acc"] == pytest.approx(0.75)
    assert s["template_acc"] == pytest.approx(0.5)
    expected = (1.0 - 1.0 + 1.0 + 0.5) / 4  # ls -l vs ls -la: S_F = (2 - 2)/2 = 0 -> 0.5
    assert s["nlc2cmd"] == pytest.approx(expected)
    assert s["categories"] == {"exact": 1, "stopped_early": 0, "wrong_utility": 1, "wrong_flags": 1,
                               "wrong_arguments": 1}
    assert set(s["categories"]) == set(CATEGORIES)


def test_summarize_empty_and_bad_rows() -> None:
    s = summarize([])
    assert s["n"] == 0 and s["exact_match"] == 0.0 and sum(s["categories"].values()) == 0
    with pytest.raises(ValueError, match="no 'gold' field"):
        summarize([{"pred": "ls"}])


def test_robust_to_unbalanced_quotes() -> None:
    assert command_name("echo 'unterminated") == "echo"
    assert isinstance(template('grep "abc'), str)
    assert -1.0 <= nlc2cmd_score("awk '{print", "awk '{print $1}'") <= 1.0
