"""The candidate checks (tinyllm.knowledge.checks and shellparse.syntax_problem) on crafted commands."""

import pytest

from tinyllm.knowledge.checks import check, named_unused, stutter, unknown_options, unknown_programs
from tinyllm.knowledge.shellparse import syntax_problem
from tinyllm.knowledge.tools import ToolLexicon

PARSES = [
    "ls -la", 'echo "a b" | grep a', "if [ -f x ]; then echo y; fi",
    'for f in *.txt; do mv "$f" "${f%.txt}.md"; done', "case $x in a) echo a;; b|c) echo b;; esac",
    "f() { echo hi; }", "(cd /tmp && ls)", "echo $(date +%s)", "x=$((1+2))", "ls 2>&1 | less",
    "cmd > out.txt 2>/dev/null", r'find . -name "*.py" -exec rm {} \;', "while true; do sleep 1; done",
    "[[ -n $a ]] && echo y", "adig {{example.com}}", "echo `date`", 'cat <<< "hi"', "echo a; echo b &",
    "{ echo a; echo b; } > f", "ls -l | awk '{ print $5 }' | sort -n", "! grep -q x f",
    "if grep -q x f; then echo a; elif true; then echo b; else echo c; fi", "diff <(ls a) <(ls b)",
    "declare -a arr=(a b c)", "{ while true; do echo; done } | head",
]
BROKEN = [
    ('echo "abc', "unclosed"), ("ls |", "dangling |"), ("ls && ", "dangling &&"), ("| grep x", "no command before"),
    ("echo $(date", "unclosed"), ("if true; then echo", "if without fi"), ("for x in a; do echo", "do without done"),
    ("case a in a) echo;;", "case without esac"), ("echo `date", "unclosed"), ("ls >", "without a target"),
    ("echo ${HOME", "unclosed ${"), ("(ls", "( without )"), ("ls )", ") without ("), ("then echo", "then without if"),
    ("grep x | | y", "no command before"), ("echo $(ls |)", "inside a substitution"), ("[ -f x ; echo", "[ without ]"),
    ("echo {{x", "unclosed"), ("done", "done without do"), ("if then fi", "then right after if"),
]


@pytest.mark.parametrize("command", PARSES)
def test_valid_shell_parses(command):
    assert syntax_problem(command) is None


@pytest.mark.parametrize("command, why", BROKEN)
def test_broken_shell_is_named(command, why):
    problem = syntax_problem(command)
    assert problem is not None and why in problem


@pytest.mark.parametrize("command", ["echo " + "s" * 30, "ls ls ls", "git git git status", "cp a.txt a.txt",
                                     "sudo mv {{path/to/file}} {{path/to/file}}", "echo abababababababababab",
                                     "git clean -fd -fd -u git clean -fd", "sudo git log --oneline -n 5 --oneline",
                                     "ls | sort --unique -r --unique", "diff <(sort a.txt) a.txt a.txt"])
def test_stutter(command):
    assert stutter(command)


@pytest.mark.parametrize("command", ["cp a.txt b.txt", "ssh -v -v -v host", "dd if=/dev/zero of=f bs=1M count=1000000",
                                     "echo hello hello", "rsync -a src/ dst/",
                                     # a flag repeated side by side raises a level; one taking values repeats
                                     "git status --verbose --verbose", "grep -e foo -e bar log.txt",
                                     "docker run -p 80:80 -p 443:443 nginx", "find . -name a -print -o -name b -print",
                                     "git log --oneline && git log --oneline -n 5"])
def test_no_stutter(command):
    assert stutter(command) is None


LEXICON = ToolLexicon.build([{"instruction": f"list files {i}", "command": f"ls -l{'a' if i % 2 else 'h'} dir{i}"}
                             for i in range(6)] + [{"instruction": "find python files", "command": "find . -name '*.py'"}])


def test_lexicon_options_and_programs():
    assert LEXICON.options["ls"] == frozenset({"-l", "-a", "-h"})
    assert "find" not in LEXICON.options  # too few commands to judge its options
    assert unknown_options("ls -lZ dir", LEXICON) == ["-Z"]
    assert unknown_options("find . -newer x", LEXICON) == []
    assert unknown_programs("lsx -l | sortt", "list files", LEXICON) == ["lsx", "sortt"]
    assert unknown_programs("for f in *; do ls $f; done", "list", LEXICON) == []
    assert unknown_programs("fdupes -r .", "find duplicates with fdupes", LEXICON) == []  # the user named it
    # the operand after a process substitution is a file, not a program
    tools = ToolLexicon.build([{"instruction": "compare", "command": "diff a.txt b.txt"},
                               {"instruction": "sort", "command": "sort a.txt"}])
    assert unknown_programs("diff <(sort dir1.txt) report.txt", "compare", tools) == []
    assert unknown_programs("diff <(sortt dir1.txt) report.txt", "compare", tools) == ["sortt"]
    again = ToolLexicon.from_json(LEXICON.to_json())
    assert again.options == LEXICON.options and again.known == LEXICON.known
    assert ToolLexicon.from_json({"known": ["ls"], "named": []}).options == {}  # an older index


def test_check_reports_each_failure():
    assert check("ls -la dir0", "list files in dir0", LEXICON) == {}
    assert check('ls -la "dir0', "list files in dir0", LEXICON) == {"syntax": 1}
    assert "missing_value" in check("ls -la", "list files in dir0", LEXICON)
    assert "invented_value" in check("ls -la notes.txt", "list the files", LEXICON)
    assert "invented_value" not in check("ls -la {{path/to/file.txt}}", "list the files", LEXICON)
    assert check("lsx -Q", "list", LEXICON) == {"unknown_program": 1}
    assert check("ls ls ls", "list", LEXICON) == {"stutter": 1}
    gone = check("ls dir0", "list files in dir0", LEXICON, is_installed=lambda name: False)
    assert gone == {"not_installed": 1}


def test_crontab_line_is_judged_by_the_command_it_schedules():
    # its schedule is neither a program (`15`, `*/5`) nor a stutter (`* * *`)
    assert check("15 4 * * * ls -la dir0", "list dir0 at 4:15 every day", LEXICON) == {}
    assert check("*/5 * * * * ls -la dir0", "list dir0 every 5 minutes", LEXICON) == {}
    assert check("@daily ls -la dir0", "list dir0 daily", LEXICON) == {}
    # the command it schedules is still checked, and the schedule's values still count
    assert check("15 4 * * * lsx -Q", "list at 4:15", LEXICON) == {"unknown_program": 1}
    assert check("15 4 * * * ls ls ls", "list at 4:15", LEXICON) == {"stutter": 1}
    assert "missing_value" not in check("15 4 * * * ls -la dir0", "list dir0 at 4:15", LEXICON)
    assert check("30 4 * * * ls -la dir0", "list dir0 at 4:15", LEXICON) == {"missing_value": 1}


def test_named_program_unused():
    lex = ToolLexicon.build([{"instruction": f"open session {i} with zellij", "command": f"zellij attach s{i}"}
                             for i in range(3)] + [{"instruction": "jump to dir", "command": "z dir"}])
    assert "zellij" in lex.named
    assert named_unused("z reflectij", "open a new session with zellij", lex) == ["zellij"]
    assert check("z reflectij", "open a new session with zellij", lex) == {"named_unused": 1}
    assert named_unused("zellij init", "open a new session with zellij", lex) == []
    assert named_unused("sudo zellij", "open a new session with zellij", lex) == []  # any word of the command
    assert named_unused("z dir", "jump to dir", lex) == []  # nothing named: nothing to miss


@pytest.mark.parametrize("request_, command, first", [
    ("turn audio.wav into an mp3 called audio.mp3", "ffmpeg -i audio.wav -q:a 2 out_song.mp3",
     "ffmpeg -i audio.wav -q:a 2 audio.mp3"),  # an invented file name, same extension
    ("save the first 30 seconds of input.mp4 as intro.mp4", "ffmpeg -i input.mp4 -t 30 {{path/to/output.mp4}}",
     "ffmpeg -i input.mp4 -t 30 intro.mp4"),
    ("show the last 50 lines of app.log", "tail -n {{10}} {{path/to/file}}", "tail -n 50 app.log"),
    ("ssh to 10.0.0.5 on port 2222", "ssh -p {{port}} {{user}}@{{host}}", "ssh -p 2222 {{user}}@10.0.0.5"),
    ("search for 'def main' in app.py", "grep -n '{{pattern}}' {{path/to/file}}", "grep -n 'def main' app.py"),
    ("log 'backup finished' to the system log", "logger {{message}}", "logger 'backup finished'"),
])
def test_fill_values_puts_the_request_values_in_their_slots(request_, command, first):
    from tinyllm.knowledge.values import MAX_FILLS, fill_values, missing_values

    filled = fill_values(request_, command)
    assert filled[0] == first and not missing_values(request_, first)
    assert len(filled) <= MAX_FILLS and command not in filled and len(set(filled)) == len(filled)
    assert all(syntax_problem(c) is None for c in filled)


def test_fill_values_leaves_alone_what_it_cannot_place():
    from tinyllm.knowledge.values import fill_values

    assert fill_values("list files", "ls -la") == []  # nothing missing
    assert fill_values("show app.log", "less notes") == []  # missing, but no slot to put it in
    assert fill_values("count lines in a.txt", "wc -l {{path/to/file.csv}}") == []  # another extension
    assert fill_values("show the last 50 lines", "tail -n {{10}} {{path/to/file}}") == ["tail -n 50 {{path/to/file}}"]
    assert all("10.0.0.5" not in c.split()[2] for c in fill_values("ssh to 10.0.0.5 on port 2222",
                                                                   "ssh -p {{port}} {{host}}"))  # no IP as a port


@pytest.mark.parametrize("request_, command, wrong", [
    ("compress big.iso with xz", "xz -l big.iso", True),  # lists instead
    ("compress db.sql using zstd", "zstd -d db.sql", True),
    ("compress db.sql using zstd", "zstd -z db.sql", False),
    ("extract site.tar.gz", "tar -czf site.tar.gz site", True),
    ("extract site.tar.gz", "tar -xzf site.tar.gz", False),
    ("pull config/app.yml out of site.tar.gz", "tar -czf config.tar.gz config/app.yml", True),
    ("unzip photos.zip", "zip -r photos.zip photos", True),
    ("create a tar archive of logs", "tar -xf logs.tar", True),
    ("list archive.tar.gz without extracting", "tar -tzf archive.tar.gz", False),  # asks neither
    ("decompress notes.gz", "gunzip notes.gz", False),
    ("compress the logs folder", "ls -la logs", False),  # no archive program: nothing to judge
])
def test_wrong_direction(request_, command, wrong):
    assert bool(check(command, request_).get("wrong_direction")) is wrong
