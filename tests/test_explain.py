"""`nl2cmd explain` against the man pages installed on this machine (.ci/run installs the Debian packages
listed in .ci/debian-packages.txt): the manual's own words for each option, sub-command pages, operators and
redirections, bad input, the CLI and the REPL. A case whose page is not installed is skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyllm.knowledge import manpages
from tinyllm.knowledge.explain import Explanation, _redirection_text, explain

HAVE_MAN = shutil.which("man") is not None
pytestmark = pytest.mark.skipif(not HAVE_MAN, reason="man is not installed")

# (command, pages it needs, expected (label, words of the manual's text) pairs)
CASES: list[tuple[str, tuple[str, ...], list[tuple[str, str]]]] = [
    ("tar -czf logs.tar.gz logs", ("tar",), [("-c", "Create a new archive"), ("-z", "gzip"),
                                             ("-f logs.tar.gz", "Use archive file")]),
    ("tar -xvf backup.tar", ("tar",), [("-x", "Extract files"), ("-v", "Verbosely list"), ("-f backup.tar", "archive")]),
    ("tar xzvf a.tgz", ("tar",), [("x", "Extract files"), ("z", "gzip"), ("f a.tgz", "archive")]),
    ("tar --extract --file=a.tar", ("tar",), [("--extract", "Extract files"), ("--file=a.tar", "archive")]),
    ("ps aux", ("ps",), [("a", "only yourself"), ("u", "user-oriented"), ("x", "must have a tty")]),
    ("ps -ef", ("ps",), [("-e", "Select all processes"), ("-f", "full-format")]),
    ("grep -rn TODO src", ("grep",), [("-r", "recursively"), ("-n", "line number")]),
    ("grep -i -v error log.txt", ("grep",), [("-i", "Ignore case"), ("-v", "non-matching")]),
    ("grep -e foo -e bar file", ("grep",), [("-e foo", "PATTERNS")]),
    ("grep --color=auto -E 'a|b' f", ("grep",), [("--color=auto", "Surround"), ("-E", "extended")]),
    ("find . -name '*.log' -delete", ("find",), [("-name '*.log'", "Base of file name"), ("-delete", "Delete files")]),
    ("find /tmp -type f -mtime +7", ("find",), [("-type f", "File is of type"), ("-mtime +7", "last modified")]),
    ("find . -size +100M", ("find",), [("-size +100M", "File uses")]),
    ("ls -la", ("ls",), [("-l", "long listing"), ("-a", "do not ignore")]),
    ("ls -lhS", ("ls",), [("-h", "print sizes"), ("-S", "sort by file size")]),
    ("ls --all -1", ("ls",), [("--all", "do not ignore"), ("-1", "one file per line")]),
    ("rm -rf build", ("rm",), [("-r", "recursively"), ("-f", "never prompt")]),
    ("rm -i notes.txt", ("rm",), [("-i", "prompt before every removal")]),
    ("cp -a src dst", ("cp",), [("-a", "preserve")]),
    ("cp -r dir1 dir2", ("cp",), [("-r", "recursively")]),
    ("mv -n a b", ("mv",), [("-n", "overwrite")]),
    ("chmod -R 755 dir", ("chmod",), [("-R", "recursively")]),
    ("mkdir -p a/b/c", ("mkdir",), [("-p", "parent")]),
    ("ln -s target link", ("ln",), [("-s", "symbolic")]),
    ("du -sh *", ("du",), [("-s", "total"), ("-h", "human readable")]),
    ("df -h", ("df",), [("-h", "powers of 1024")]),
    ("head -n 20 file", ("head",), [("-n 20", "lines")]),
    ("tail -f /var/log/syslog", ("tail",), [("-f", "appended data")]),
    ("sort -k2 -n -r data", ("sort",), [("-k2", "key"), ("-n", "numerical"), ("-r", "reverse")]),
    ("wc -l file", ("wc",), [("-l", "newline counts")]),
    ("sed -i 's/a/b/g' f.txt", ("sed",), [("-i", "in place")]),
    ("sed -n '1,5p' f", ("sed",), [("-n", "suppress automatic printing")]),
    ("xargs -0 -n 1 echo", ("xargs", "echo"), [("-0", "null character"), ("-n 1", "max-args")]),
    ("curl -fsSL https://example.com", ("curl",), [("-f", "Fail"), ("-s", "Silent"), ("-L", "moved")]),
    ("curl -o out.html -X POST https://x", ("curl",), [("-o out.html", "Write output"), ("-X POST", "request method")]),
    ("rsync -avz --progress src/ dst/", ("rsync",), [("-a", "-rlptgoD"), ("-v", "information"), ("-z", "compress"),
                                                      ("--progress", "progress")]),
    ("rsync --delete -n a/ b/", ("rsync",), [("--delete", "delete extraneous"), ("-n", "trial run")]),
    ("git commit -am 'fix typo'", ("git", "git-commit"), [("commit", "Record changes"), ("-a", "stage files"),
                                                           ("-m 'fix typo'", "commit message")]),
    ("git commit --amend --no-edit", ("git", "git-commit"), [("--amend", "Replace the tip"), ("--no-edit", "")]),
    ("git log --oneline -n 5", ("git", "git-log"), [("log", "Show commit logs"), ("--oneline", "")]),
    ("git status -s", ("git", "git-status"), [("status", "working tree status"), ("-s", "short")]),
    ("jq -r '.name' package.json", ("jq",), [("-r", "written directly")]),
    ("jq -c . data.json", ("jq",), [("-c", "compact")]),
    ("ffmpeg -i in.mp4 -vf scale=640:-1 out.mp4", ("ffmpeg",), [("-i in.mp4", "input"), ("-vf scale=640:-1", "filtergraph")]),
    ("ffmpeg -y -i a.wav -c:a libmp3lame b.mp3", ("ffmpeg",), [("-y", "Overwrite"), ("-c:a libmp3lame", "encoder")]),
    ("ssh -i key.pem -p 2222 user@host", ("ssh",), [("-i key.pem", "identity"), ("-p 2222", "Port")]),
    ("ssh -L 8080:localhost:80 host", ("ssh",), [("-L 8080:localhost:80", "forwarded")]),
    ("sudo -u www-data ls", ("sudo", "ls"), [("-u www-data", "user")]),
    ("kill -9 1234", ("kill",), []),
    ("awk -F: '{print $1}' /etc/passwd", ("gawk",), [("-F:", "field separator")]),
    ("systemctl restart nginx", ("systemctl",), [("restart", "Stop and then start")]),
    ("systemctl --user status", ("systemctl",), [("--user", "calling user")]),
    ("journalctl -u nginx -f", ("journalctl",), [("-u nginx", "unit"), ("-f", "")]),
]


def _needs(pages: tuple[str, ...]) -> None:
    for name in pages:
        if manpages.locate_page(name) is None:
            pytest.skip(f"the {name} man page is not installed")


def _norm(label: str) -> str:
    return " ".join(label.replace("=", " ").split())


def _find(exp: Explanation, label: str):
    wanted = _norm(label)
    for part in exp.parts:
        if _norm(part.label) == wanted or part.label == label:
            return part
    raise AssertionError(f"no part {label!r} in {[(p.label, p.text[:40]) for p in exp.parts]}")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_at_least_forty_commands_over_twenty_programs() -> None:
    assert len(CASES) >= 40
    assert len({pages[0] for _, pages, _ in CASES}) >= 20


@pytest.mark.parametrize(("command", "pages", "expected"), CASES, ids=[c[0] for c in CASES])
def test_real_commands_get_the_manuals_words(command: str, pages: tuple[str, ...],
                                             expected: list[tuple[str, str]], cache: Path) -> None:
    _needs(pages)
    exp = explain(command, cache_dir=cache)
    program = exp.parts[0] if exp.parts[0].kind == "program" else next(p for p in exp.parts if p.kind == "program")
    assert program.source.startswith("man:") and program.text, program
    for label, words in expected:
        part = _find(exp, label)
        assert part.found, part
        assert part.source.startswith("man:"), part
        assert words.lower() in part.text.lower(), (label, part.text)
    for part in exp.parts:  # spans point into the command
        assert 0 <= part.start <= part.end <= len(command)
        if part.kind == "option" and part.label.startswith("-") and " " not in part.label:
            assert command[part.start:part.end] in (part.label, part.label[1:]), part


def test_done_when_tar(cache: Path) -> None:
    _needs(("tar",))
    exp = explain("tar -czf logs.tar.gz logs", cache_dir=cache)
    page = manpages.find_page("tar", cache_dir=cache)
    assert page is not None
    for flag in ("-c", "-z", "-f"):
        part = next(p for p in exp.parts if p.label.split()[0] == flag)
        manual = " ".join(page.option(flag).split())
        assert part.text and manual.startswith(part.text.rstrip(".")[: len(part.text) - 4])
        assert part.source == "man:tar(1)"


def test_done_when_pipe(cache: Path) -> None:
    _needs(("ps", "grep"))
    exp = explain("ps aux | grep nginx", cache_dir=cache)
    programs = [p for p in exp.parts if p.kind == "program"]
    assert [p.label for p in programs] == ["ps", "grep"]
    assert all(p.source.startswith("man:") and p.text for p in programs)
    pipe = next(p for p in exp.parts if p.kind == "operator")
    assert pipe.label == "|" and "`ps`" in pipe.text and "`grep`" in pipe.text
    assert (pipe.start, pipe.end) == (7, 8)


def test_done_when_warning_first(cache: Path) -> None:
    exp = explain("rm -rf /", cache_dir=cache)
    assert exp.parts[0].kind == "warning" and exp.parts[0].source == "safety"
    assert exp.warnings


def test_operators_and_redirections(cache: Path) -> None:
    exp = explain("make 2>&1 > build.log && echo ok || echo failed; sleep 1 & cat < in.txt >> out.txt", cache_dir=cache)
    texts = {p.label: p.text for p in exp.parts if p.kind in ("operator", "redirection")}
    assert "error output" in texts["2>&1"] and "standard output" in texts["2>&1"]
    assert "replacing" in texts["> build.log"]
    assert "succeeds" in texts["&&"] and "fails" in texts["||"]
    assert "whatever the result" in texts[";"] and "background" in texts["&"]
    assert "read standard input from in.txt" == texts["< in.txt"]
    assert texts[">> out.txt"].startswith("append")



@pytest.mark.parametrize(("op", "target", "text"), [
    (">", "out.txt", "write standard output to out.txt (replacing its contents)"),
    ("2>", "err.log", "write error output to err.log (replacing its contents)"),
    (">|", "out.txt", "write standard output to out.txt, replacing it even with noclobber set"),
    (">>", "out.txt", "append standard output to out.txt"),
    ("&>", "out.txt", "write standard output and error output to out.txt (replacing it)"),
    ("&>>", "out.txt", "append standard output and error output to out.txt"),
    ("<", "in.txt", "read standard input from in.txt"),
    ("3<>", "f", "open f for reading and writing as file descriptor 3"),
    ("<<<", "word", "give word as standard input (here-string)"),
    ("<<-", "EOF", "here-document: standard input is the lines that follow, up to a line EOF"),
    ("2>&1", "", "send error output to where standard output goes"),
    (">&", "2", "send standard output to where error output goes"),
    (">&", "out.txt", "write standard output and error output to out.txt (replacing it)"),
    ("<&", "3", "read standard input from file descriptor 3"),
    ("2>&-", "", "close error output"),
    ("<&-", "", "close standard input"),
    (">", "", "write standard output to the file (replacing its contents)"),
    ("=>", "x", "redirection"),
])
def test_redirection_texts(op: str, target: str, text: str) -> None:
    assert _redirection_text(op, target) == text


def test_wrappers_and_substitutions(cache: Path) -> None:
    _needs(("find", "rm", "xargs", "date", "echo"))
    exp = explain("find . -name '*.tmp' -exec rm -f {} + ; echo $(date +%F) | xargs -I{} echo {}", cache_dir=cache)
    nested = [(p.label, p.depth) for p in exp.parts if p.kind == "program"]
    assert ("rm", 1) in nested and ("date", 1) in nested and ("echo", 1) in nested
    rm_f = next(p for p in exp.parts if p.label == "-f" and p.program == "rm")
    assert "never prompt" in rm_f.text
    assert any(p.kind == "substitution" for p in exp.parts)


def test_command_runners_explain_the_command_they_run(cache: Path) -> None:
    # Without pages, shellparse's runner table says which options take a value and which operands come first.
    exp = explain("watch -d df -h; flock -n /tmp/job.lock tar -czf a.tgz src; timeout --signal KILL 5 make",
                  cache_dir=cache, pages=lambda name: None)
    nested = [(p.label, p.depth) for p in exp.parts if p.kind == "program"]
    assert ("df", 1) in nested and ("tar", 1) in nested and ("make", 1) in nested
    assert not any(p.kind == "program" and p.label in ("/tmp/job.lock", "KILL", "5") for p in exp.parts)


def test_env_assignments_and_sudo(cache: Path) -> None:
    exp = explain("LANG=C sudo -E env FOO=1 ls -l", cache_dir=cache)
    kinds = [(p.kind, p.label) for p in exp.parts]
    assert ("assignment", "LANG=C") in kinds and ("assignment", "FOO=1") in kinds
    assert [p.label for p in exp.parts if p.kind == "program"] == ["sudo", "env", "ls"]


def test_unclosed_quote_explains_what_it_can(cache: Path) -> None:
    exp = explain("ls -l && echo 'unfinished", cache_dir=cache)
    assert exp.stopped_at == 14
    assert [p.label for p in exp.parts if p.kind == "program"] == ["ls", "echo"]
    assert exp.parts[-1].kind == "error" and "column 15" in exp.parts[-1].text and "never closed" in exp.parts[-1].text


@pytest.mark.parametrize(("command", "message"), [
    ("| grep x", "has no command before it"),
    ("ls | | wc", "has no command before it"),
    ("ls &&", "has no command after it"),
    ("ls >", "no file after"),
    ("echo $(date", "never closed"),
])
def test_syntax_errors_say_where_parsing_stopped(command: str, message: str, cache: Path) -> None:
    exp = explain(command, cache_dir=cache)
    assert exp.stopped_at is not None
    assert message in exp.parts[-1].text and "column" in exp.parts[-1].text


def test_unknown_program_and_undocumented_option(cache: Path) -> None:
    exp = explain("nosuchprogram-xyz --frob", cache_dir=cache)
    assert "no manual page found for nosuchprogram-xyz" in exp.parts[0].text and not exp.parts[0].found
    _needs(("ls",))
    exp = explain("ls --no-such-option -l", cache_dir=cache)
    missing = _find(exp, "--no-such-option")
    assert not missing.found and "not documented in ls(1)" in missing.text
    assert _find(exp, "-l").found


def test_tldr_summary_when_no_page(tmp_path: Path, cache: Path) -> None:
    import tinyllm

    idx = Path(tinyllm.__file__).resolve().parent / "models" / "default.idx"
    if not idx.is_file():
        pytest.skip("no shipped retrieval index")
    exp = explain("ls -l", cache_dir=cache, index_path=idx, pages=lambda name: None)
    assert exp.parts[0].source == "tldr" and exp.parts[0].text == "List directory contents"


def test_never_raises_on_odd_input(cache: Path) -> None:
    for text in ["", " ", "'", '"', "`", "$(", ")", "((", "&&", ";;", "\\", "a\\", "ls \x1b[31m", "{{path}}",
                 "x" * 3000, "$(" * 50, "# only a comment", "ls # trailing comment", "a=1", "'ls' -l"]:
        exp = explain(text, cache_dir=cache)
        assert isinstance(exp.to_json(), dict)


# ------------------------------------------------------------------------------------------ manpages


ROFF = r""".TH FROB 1 "2024" "frob 1.0" "User Commands"
.SH NAME
frob \- frobnicate files
.SH OPTIONS
.TP
\fB\-x\fR, \fB\-\-extract\fR
Extract the frobs.
.TP
\fB\-f\fR, \fB\-\-file\fR=\fIARCHIVE\fR
Use archive file ARCHIVE.
.TP
\fB\-i\fR[\fISUFFIX\fR], \fB\-\-in\-place\fR[=\fISUFFIX\fR]
Edit in place.
.TP
\fB\-name\fR \fIpattern\fR
Base of file name matches pattern.
.TP
.B \-H
.TQ
.B \-\-with\-name
Print the name.
"""


def test_manual_page_parsing_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page_file = tmp_path / "man" / "man1" / "frob.1"
    page_file.parent.mkdir(parents=True)
    page_file.write_text(ROFF)
    monkeypatch.setenv("MANPATH", str(tmp_path / "man"))
    cache = tmp_path / "cache"
    page = manpages.find_page("frob", cache_dir=cache)
    assert page is not None and page.ref == "frob(1)" and page.summary == "frobnicate files"
    assert page.option("-x") == "Extract the frobs." == page.option("--extract")
    entry = page.entry("--file=x.tar")
    assert entry is not None and entry.argument == "ARCHIVE" and not entry.optional and page.option("-f")
    assert page.entry("-i").optional and page.option("--in-place") == "Edit in place."
    assert page.entry("-name").argument == "pattern"
    assert page.option("-H") == page.option("--with-name") == "Print the name."
    assert page.option("-q") is None
    # A second process reads the parsed page from the cache: nothing is rendered again.
    manpages._MEMO.clear()
    monkeypatch.setattr(manpages, "render_man_file", lambda *_a, **_k: pytest.fail("rendered a cached page"))
    assert manpages.find_page("frob", cache_dir=cache).option("-x") == "Extract the frobs."
    # A new version of the page (mtime, size) is rendered again.
    manpages._MEMO.clear()
    page_file.write_text(ROFF.replace("Extract the frobs.", "Extract all frobs."))
    monkeypatch.undo()
    monkeypatch.setenv("MANPATH", str(tmp_path / "man"))
    assert manpages.find_page("frob", cache_dir=cache).option("-x") == "Extract all frobs."


def test_negatable_option_tags_name_both_forms() -> None:
    text = ("NAME\n       sqlite3 - A command line interface for SQLite\n\nOPTIONS\n"
            "       -[no]header\n              Turn headers on or off.\n\n"
            "       --[no-]color\n              Colour the output, or not.\n\n"
            "       -csv   Set output mode to CSV.\n")
    page = manpages.parse_page(text, name="sqlite3", section="1")
    assert page.option("-header") == page.option("-noheader") == "Turn headers on or off."
    assert page.option("--color") == page.option("--no-color") == "Colour the output, or not."
    assert page.option("-csv") == "Set output mode to CSV." and page.option("-no") is None


# ------------------------------------------------------------------------------------------- the CLI


def _nl2cmd(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_")}
    env.update(NL2CMD_HOME=str(home), COLUMNS="100")
    code = "import sys; from tinyllm.cli.entry import console_main; sys.argv[0] = 'nl2cmd'; console_main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60)


def test_cli_text_json_and_stdin(tmp_path: Path) -> None:
    _needs(("tar", "ls", "wc"))
    out = _nl2cmd("explain", "tar", "-czf", "logs.tar.gz", "logs", home=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tar ") and "an archiving utility" in lines[0]
    assert "\033[" not in out.stdout and all(len(line) <= 100 for line in lines)
    assert any(line.strip().startswith("-f logs.tar.gz") and "Use archive file" in line for line in lines)
    js = _nl2cmd("explain", "--json", "rm -rf /", home=tmp_path)
    payload = json.loads(js.stdout)
    assert payload["warnings"] and payload["parts"][0]["kind"] == "warning"
    assert {"start", "end", "kind", "label", "text", "source"} <= set(payload["parts"][1])
    many = _nl2cmd("explain", "-", home=tmp_path, stdin="ls -l\n\nls -l | wc -l\n")
    assert many.returncode == 0 and many.stdout.count("use a long listing format") == 2
    narrow = _nl2cmd("explain", "--width", "40", "ls -l", home=tmp_path)
    assert all(len(line) <= 40 for line in narrow.stdout.splitlines())
    # no daemon was started: explanations need no model
    assert not list(tmp_path.rglob("*.sock")) and not list(tmp_path.rglob("*.pid"))


@pytest.mark.parametrize(("args", "stdin", "code"), [
    (["explain"], None, 2), (["explain", "   "], None, 2), (["explain", "-"], "\n\n", 2),
    (["explain", "--bogus", "ls"], None, 2), (["explain", "x" * 5000], None, 1),
])
def test_cli_errors_are_one_line(args: list[str], stdin: str | None, code: int, tmp_path: Path) -> None:
    out = _nl2cmd(*args, home=tmp_path, stdin=stdin)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert out.stdout == "" and len(out.stderr.splitlines()) == 1 and out.stderr.startswith("nl2cmd: error:")


def test_repl_explain(nl2cmd_home: Path) -> None:
    _needs(("ls",))
    from tests.test_cli import run

    result = run("repl", "--no-daemon", input=":explain\nlist files\n:explain\n:explain ls -l\nexit\n")
    assert result.exit_code == 0, result.stderr
    assert "nothing to explain yet" in result.stderr
    assert "printf" in result.stdout and "format and print data" in result.stdout  # the last suggestion
    assert "use a long listing format" in result.stdout


def test_explain_path_imports_neither_click_nor_numpy(tmp_path: Path) -> None:
    code = ("import sys\nfrom tinyllm.cli.entry import main\ntry:\n    main(['explain', 'ls -l'])\nexcept SystemExit:\n"
            "    pass\nheavy = [m for m in ('click', 'numpy', 'torch', 'prompt_toolkit') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    env = {**os.environ, "NL2CMD_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
