"""The project's own training pairs: size, breadth, and every pair passing the validators; the validators
themselves reject what they should."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyllm.knowledge.shellparse import command_name, crontab_command
from tinyllm.knowledge.values import invented_values, missing_values, request_values
from tinyllm.train import pairs
from tinyllm.train.rank_tune import CALIBRATION_SET
from tinyllm.train.validate import (
    PAGE_CACHE,
    ManualPages,
    held_out_requests,
    known_program_test,
    stage_options,
    undocumented_options,
    validate,
    validate_files,
)

ROOT = Path(__file__).resolve().parent.parent
EVAL_SETS = sorted((ROOT / "bench" / "data").glob("*.jsonl"))
SHARED = ROOT.parent / "shared" / "data"


def own_files() -> list[Path]:
    return pairs.own_pair_files(pairs.CORE_PAIRS)


def own_rows() -> list[dict]:
    return [json.loads(line) for f in own_files() for line in f.read_text().splitlines() if line.strip()]


def test_own_pairs_are_many_broad_and_one_file_per_domain():
    files = {f.stem for f in own_files()}
    assert {"files", "text", "archives", "processes", "disk_memory", "network", "users_permissions", "packages", "git",
            "containers", "services_logs", "media", "development", "macos", "compound"} <= files
    rows = own_rows()
    assert len(rows) >= 20_000
    assert all(set(r) == {"instruction", "command", "platform", "source"} for r in rows)
    assert len({command_name(r["command"]) for r in rows} - {""}) >= 400
    compound = [json.loads(x) for x in (pairs.CORE_PAIRS / "compound.jsonl").read_text().splitlines() if x.strip()]
    assert len(compound) >= 4_000
    assert sum(r["platform"] == "macos" for r in rows) >= 500


@pytest.mark.slow
def test_every_own_pair_passes_the_validators():
    """Syntax, shellcheck, programs, options (where the man page is installed), values, duplicates, no pair
    within word-overlap F1 0.7 of an evaluation request, and none repeating a calibration request."""
    held = held_out_requests(EVAL_SETS)
    assert len(held) >= 500
    known = known_program_test(SHARED if SHARED.is_dir() else None)
    reserved = held_out_requests([CALIBRATION_SET])
    _, report = validate_files(own_files(), held, known, Path(PAGE_CACHE).expanduser(), reserved)
    shown = [(Path(r["_file"]).name, why, r["instruction"], r["command"]) for r, why in report.rejected[:10]]
    assert report.rejected == [], shown


def _check(rows, held=(), pages=None, known=lambda name: name in {"ls", "tail", "head", "git", "tar", "grep", "rm"}):
    rows = [{"platform": "common", "source": "core", **r} for r in rows]
    return validate(rows, known, held, pages)


def test_macos_base_programs_are_known_where_no_page_or_install_knows_them():
    """`dscl` has no tldr page and no Linux install, yet a macOS pair may use it; a made-up name stays unknown."""
    known = known_program_test(None)
    assert shutil.which("dscl") is None
    assert known("dscl") and known("dseditgroup") and known("memory_pressure")
    assert not known("frobnicatorx") and not known("dsclx")
    report = validate([{"instruction": "list the local user accounts on my mac", "command": "dscl . -list /Users",
                        "platform": "macos", "source": "core"}], known)
    assert report.rejected == []


def test_validator_rejects_each_kind_of_bad_pair():
    report = _check([
        {"instruction": "list files", "command": "ls 'unclosed"},
        {"instruction": "frobnicate the widget", "command": "frobnicatorx -v"},
        {"instruction": "show the end of app.log", "command": "tail -n 20 server.log"},
        {"instruction": "show the first lines of a file", "command": "head notes.txt"},
        {"instruction": "list the files here", "command": "ls"},
        {"instruction": "List the files here!", "command": "ls"},
        {"instruction": "list the files here", "command": "ls -l"},
        {"instruction": "undo my last git commit please", "command": "git reset --soft HEAD~1"},
        {"instruction": 3, "command": "ls"},
        {"instruction": "two lines", "command": "ls\nls"},
    ], held=["undo the last git commit"])
    reasons = [why.split(":", 1)[0] for _, why in report.rejected]
    assert reasons == ["schema", "schema", "syntax", "program", "value", "invented", "duplicate", "conflict", "held-out"]
    assert [r["command"] for r in report.accepted] == ["ls"]
    # the report is read by pair writers, who must not see the evaluation sets: it never quotes their requests
    assert all("undo the last git commit" not in why for _, why in report.rejected)


def test_validator_lets_linux_and_macos_answer_one_request_differently():
    """A request may have a Linux and a macOS answer (the model sees the user's platform); a `common` command
    is shown with either tag, so it contradicts both, and one platform may not have two answers."""
    rows = [{"instruction": "which wifi am i connected to", "command": "nmcli -t -f active,ssid dev wifi",
             "platform": "linux"},
            {"instruction": "Which wifi am I connected to?", "command": "networksetup -getairportnetwork en0",
             "platform": "macos"},
            {"instruction": "which wifi am i connected to", "command": "iwgetid -r", "platform": "linux"},
            {"instruction": "which wifi am i connected to", "command": "iwgetid -r", "platform": "common"},
            {"instruction": "show the date in utc", "command": "date -u", "platform": "common"},
            {"instruction": "show the date in utc", "command": "date -u", "platform": "macos"}]
    report = validate([{"source": "core", **r} for r in rows], lambda name: True, (), None, check_shell=False)
    assert [r["command"] for r in report.accepted] == ["nmcli -t -f active,ssid dev wifi",
                                                       "networksetup -getairportnetwork en0", "date -u"]
    assert [why.split(":")[0] for _, why in report.rejected] == ["conflict", "conflict", "duplicate"]


def test_validator_rejects_a_request_holding_a_prompt_marker():
    """`<macos>` typed into a request is read by the tokenizer as the platform token: the platform field says it."""
    rows = [{"instruction": "<macos> copy the clipboard into clip.txt", "command": "pbpaste > clip.txt"},
            {"instruction": "copy the clipboard into clip.txt", "command": "pbpaste > clip.txt"}]
    report = validate([{"platform": "macos", "source": "core", **r} for r in rows], lambda name: True, (), None,
                      check_shell=False)
    assert [why.split(":")[0] for _, why in report.rejected] == ["schema"]
    assert [r["instruction"] for r in report.accepted] == ["copy the clipboard into clip.txt"]


def test_validator_rejects_a_request_holding_a_placeholder():
    """`{{path/to/file}}` belongs in a command; a request with one teaches a prompt no user types."""
    rows = [{"instruction": "count lines with {{pattern}} in {{path/to/file}}",
             "command": "grep -c '{{pattern}}' {{path/to/file}}"},
            {"instruction": "count the lines of a file that match a pattern",
             "command": "grep -c '{{pattern}}' {{path/to/file}}"},
            {"instruction": "count lines with ERROR in app.log", "command": "grep -c ERROR app.log"}]
    report = validate([{"platform": "common", "source": "core", **r} for r in rows], lambda name: True, (), None,
                      check_shell=False)
    assert [(r["instruction"], why.split(":")[0]) for r, why in report.rejected] == [(rows[0]["instruction"], "schema")]
    assert len(report.accepted) == 2


def test_batched_bash_parse_gives_each_command_bashs_own_verdict():
    """Commands are read many to a bash process, yet each verdict is the one `bash -n -c` gives it alone:
    a broken command fails its batch and is read alone; two unclosed quotes that would pair up across
    lines, a dangling pipe and an unclosed loop are never batched."""
    from tinyllm.train.validate import BASH_BATCH, _bash_ok, bash_parses

    good = ["ls -la", "grep -c ERROR app.log | sort -u", "for f in *.txt; do echo \"$f\"; done",
            "cat <<< 'hi'", "echo 'a b'", "find . -name '*.py' -exec wc -l {} +"]
    bad = ["echo 'abc", "ls |", "for f in *; do echo $f", "echo 'def", "if true; then ls", "(ls"]
    commands = (good * 40)[:BASH_BATCH - 3] + bad + good * 40
    verdicts = bash_parses(commands)
    assert verdicts == [_bash_ok(c) for c in commands]
    assert [v for c, v in zip(commands, verdicts) if c in bad] == [False] * len(bad)
    assert all(v for c, v in zip(commands, verdicts) if c in good)


def test_validator_keeps_the_calibration_requests_out_of_training():
    rows = [{"instruction": "Which services failed?", "command": "systemctl --failed"},
            {"instruction": "which services failed since boot", "command": "systemctl --failed"}]
    rows = [{"platform": "common", "source": "core", **r} for r in rows]
    report = validate(rows, lambda name: True, (), None, check_shell=False, reserved=["which services failed"])
    assert [why.split(":")[0] for _, why in report.rejected] == ["calibration"]
    assert [r["instruction"] for r in report.accepted] == ["which services failed since boot"]


def test_validator_collapses_near_duplicates_but_keeps_other_phrasings():
    report = _check([
        {"instruction": "show hidden files in the current folder", "command": "ls -a"},
        {"instruction": "show hidden files in the current folder now", "command": "ls -a"},
        {"instruction": "what dotfiles are here?", "command": "ls -a"},
    ])
    assert [why.split(":")[0] for _, why in report.rejected] == ["near-duplicate"]
    assert len(report.accepted) == 2


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_validator_blames_each_shellcheck_error_on_its_own_command():
    # `[ -f x]` stops shellcheck's parser; bash reads `{{command}}` as a word, where shellcheck opens a brace
    # group that would run on to the end of a script of many commands
    report = _check([
        {"instruction": "is there a file called x", "command": "[ -f x]"},
        {"instruction": "list files", "command": "ls"},
        {"instruction": "is there a folder called y", "command": "[ -d y]"},
        {"instruction": "run a command in the background", "command": "{{command}} &"},
        {"instruction": "long listing", "command": "ls -la"},
        {"instruction": "say ok", "command": "echo ok"},
    ], known=lambda name: True)
    assert [(row["command"], why.split(":")[0]) for row, why in report.rejected] == [
        ("[ -f x]", "shellcheck"), ("[ -d y]", "shellcheck"), ("{{command}} &", "shellcheck")]
    assert [row["command"] for row in report.accepted] == ["ls", "ls -la", "echo ok"]


@pytest.mark.skipif(ManualPages().page("ls") is None or ManualPages().page("tar") is None,
                    reason="ls and tar manual pages not installed")
def test_validator_checks_options_against_the_manual_page(tmp_path):
    pages = ManualPages(tmp_path)
    report = _check([
        {"instruction": "long listing with hidden files", "command": "ls -la"},
        {"instruction": "extract logs.tar.gz", "command": "tar -xzf logs.tar.gz"},
        {"instruction": "list in colour", "command": "ls --colour-please"},
        {"instruction": "list with the j flag", "command": "ls -lj"},
    ], pages=pages)
    assert [why for _, why in report.rejected] == ["option: ls --colour-please not in its manual page",
                                                  "option: ls -lj not in its manual page"]
    assert (tmp_path / "ls.txt").is_file()  # rendered once, then read from the cache


@pytest.mark.skipif(ManualPages().page("ls") is None, reason="ls manual page not installed")
def test_a_page_cached_as_missing_is_read_once_installed(tmp_path):
    (tmp_path / "ls.txt").write_text("")  # cached before the package brought the page
    (tmp_path / "no-such-program-x.txt").write_text("")
    pages = ManualPages(tmp_path)

    assert pages.page("ls") is not None and "--all" in pages.page("ls")
    assert (tmp_path / "ls.txt").read_text()  # the cache now holds the page
    assert pages.page("no-such-program-x") is None


def test_a_cached_page_is_dropped_once_its_package_is_removed(tmp_path):
    # a page cached while its package was installed: once the page is gone, its options are not checked
    (tmp_path / "no-such-program-y.txt").write_text("NAME\n  no-such-program-y\nOPTIONS\n  --hold\n")
    pages = ManualPages(tmp_path)

    assert pages.page("no-such-program-y") is None
    assert (tmp_path / "no-such-program-y.txt").read_text() == ""  # cached as missing from now on


def _undocumented(pages: ManualPages):
    """`command -> options missing from its manual page`, read from `pages`."""
    return lambda command: undocumented_options(stage_options(command), pages)


@pytest.mark.skipif(ManualPages().page("ffmpeg-all") is None, reason="ffmpeg-all manual page not installed")
def test_codec_and_format_options_are_documented(tmp_path):
    bad = _undocumented(ManualPages(tmp_path))

    assert bad("ffmpeg -f concat -safe 0 -i list.txt -c copy out.mp4") == []
    assert bad("ffmpeg -i in.mp4 -c:v libx264 -preset slow -tune film -crf 22 out.mp4") == []
    assert bad("ffmpeg -i in.mp4 -frobnicate 3 out.mp4") == ["ffmpeg -frobnicate"]
    assert bad("exiftool -Model -datetimeoriginal -GPS:all= -overwrite_original photo.jpg") == []  # tags


@pytest.mark.skipif(ManualPages().page("iptables-extensions") is None, reason="iptables manual pages not installed")
def test_iptables_match_options_are_read_from_the_extensions_page(tmp_path):
    bad = _undocumented(ManualPages(tmp_path))

    assert bad("sudo iptables -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT") == []
    assert bad("sudo iptables -A INPUT -j LOG --log-prefix 'drop: '") == []
    assert bad("sudo iptables -A INPUT -p tcp --dportz 22 -j ACCEPT") == ["iptables --dportz"]


@pytest.mark.skipif(ManualPages().page("stty") is None or ManualPages().page("sqlite3") is None,
                    reason="stty and sqlite3 manual pages not installed")
def test_programs_whose_pages_miss_their_options_go_unchecked(tmp_path):
    bad = _undocumented(ManualPages(tmp_path))

    assert bad("stty -echo") == []  # the page writes "[-]echo"
    assert bad("sqlite3 -readonly -json app.db 'SELECT 1'") == []  # newer than Debian's page
    assert bad("gcloud compute ssh web-1 --zone us-east1-b") == []  # only the top-level page is installed
    assert bad("redis-cli -h cache01 -n 2 --scan --pattern 'user:*'") == []  # a stub page
    assert bad("go test -race -coverprofile=cover.out ./...") == []  # test flags live in `go help`
    assert bad("tail -Q app.log") == ["tail -Q"]  # a program with a complete page is still checked


@pytest.mark.skipif(ManualPages().page("podman-pod-create") is None, reason="podman manual pages not installed")
def test_a_nested_subcommand_is_checked_against_its_own_page(tmp_path):
    bad = _undocumented(ManualPages(tmp_path))

    assert bad("podman pod create --name web -p 8080:80") == []  # podman-pod-create, not podman-pod
    assert bad("podman system prune -a") == []
    assert bad("podman pod create --frobnicate web") == ["podman --frobnicate"]
    (st,) = stage_options("podman pod create --name web")
    assert (st.subcommand, st.subcommand2) == ("pod", "create")
    (st,) = stage_options("git push origin main")
    assert (st.subcommand, st.subcommand2) == ("push", "origin")  # no git-push-origin page: git-push reads it


@pytest.mark.skipif(ManualPages().page("pkill") is None or ManualPages().page("fuser") is None,
                    reason="procps and psmisc manual pages not installed")
def test_a_signal_given_as_an_option_is_documented(tmp_path):
    bad = _undocumented(ManualPages(tmp_path))

    assert bad("pkill -STOP -f 'python train.py'") == []
    assert bad("fuser -k -TERM 8080/tcp") == []
    assert bad("pkill -9 -u alice") == []
    assert bad("pkill -Z firefox") == ["pkill -Z"]  # one letter is an option, not a signal
    assert bad("tail -STOP app.log") == ["tail -STOP"]  # only signal senders take one
    assert [(s.program, s.options) for s in stage_options("watch -d -n 5 df -h")] == [
        ("watch", ("-d", "-n")), ("df", ("-h",))]


def test_the_file_after_a_process_substitution_is_an_operand():
    stages = stage_options("diff <(git show main:config.yml) config.yml")
    assert [(s.program, s.subcommand) for s in stages] == [("diff", ""), ("git", "show")]


def test_stage_options_follow_wrappers_and_subcommands():
    stages = stage_options("find . -name '*.log' -mtime +30 -exec rm -f {} \\; | xargs -0 -n 1 grep -l ERROR")
    assert [(s.program, s.options) for s in stages] == [
        ("rm", ("-f",)), ("find", ("-name", "-mtime", "-exec")), ("xargs", ("-0", "-n")), ("grep", ("-l",))]
    (git,) = stage_options("git -C repo commit -m 'msg' --amend")
    assert (git.program, git.subcommand, git.options) == ("git", "commit", ("-C", "-m", "--amend"))
    assert stage_options("for f in *.png; do ./convert.sh \"$f\"; done") == []
    (py,) = stage_options("python3 -m http.server 8080 --bind 127.0.0.1")
    assert py.options == ("-m",)
    inhibit, rsync = stage_options("systemd-inhibit --what=sleep --why 'backup' rsync -a --delete src/ dst/")
    assert (inhibit.program, inhibit.options) == ("systemd-inhibit", ("--what=sleep", "--why"))
    assert (rsync.program, rsync.options) == ("rsync", ("-a", "--delete"))
    assert [(s.program, s.options) for s in stage_options("ionice -c 3 nice -n 19 tar -czf a.tgz big/")] == [
        ("ionice", ("-c",)), ("tar", ("-czf",))]
    assert [(s.program, s.options) for s in stage_options("stdbuf -oL tail -f app.log | grep -v DEBUG")] == [
        ("stdbuf", ("-oL",)), ("tail", ("-f",)), ("grep", ("-v",))]
    # A runner's operands (the lock file, the new root) come before the command it runs.
    assert [(s.program, s.options) for s in stage_options("flock -n /tmp/job.lock bash -x run.sh")] == [
        ("flock", ("-n",)), ("bash", ("-x",))]
    assert [(s.program, s.options) for s in stage_options("flock -n /tmp/etl.lock -c 'cd /srv && ls -l'")] == [
        ("flock", ("-n", "-c")), ("cd", ()), ("ls", ("-l",))]
    assert [(s.program, s.options) for s in stage_options("sudo chroot /mnt/root ls -la")] == [
        ("chroot", ()), ("ls", ("-la",))]


def test_a_crontab_line_is_checked_as_the_command_it_schedules():
    (rsync,) = stage_options("15 2 * * 1-5 rsync -a --delete /home/ /mnt/backup/")
    assert (rsync.program, rsync.options) == ("rsync", ("-a", "--delete"))
    (tar,) = stage_options("@daily tar -czf /backups/etc.tgz /etc")
    assert (tar.program, tar.options) == ("tar", ("-czf",))
    assert stage_options("0 4 * * 0 rotate.sh") == []  # a bare script name is the user's own script
    report = _check([
        {"instruction": "cron line: prune at 4:45", "command": "45 4 * * * frobnicatorx --prune"},
        {"instruction": "crontab line listing /srv at 4:15", "command": "15 4 * * * ls -l /srv"},
    ])
    assert [why.split(":", 1)[0] for _, why in report.rejected] == ["program"]
    assert [r["command"] for r in report.accepted] == ["15 4 * * * ls -l /srv"]
    (ls,) = stage_options("ls -l 5 * * * *")  # not a crontab line: it starts with a program
    assert ls.program == "ls"
    assert crontab_command("*/15 * * * 1-5 cleanup.sh") == "cleanup.sh"
    assert crontab_command("ls -l 5 * * * *") is None


def test_request_values_are_what_the_user_named():
    assert request_values("copy report_q3.pdf to /tmp.") == ["report_q3.pdf", "/tmp"]
    assert request_values("ping db01 5 times") == ["db01", "5"]
    assert request_values("switch to branch feature/login") == ["feature/login"]
    assert request_values("send it to pi@raspberrypi.local") == ["pi@raspberrypi.local"]
    assert request_values("search for \"TODO\" in src") == ["TODO"]
    assert request_values("show only ipv4 addresses, in-place and human-readable") == []
    assert request_values("install node.js") == []


def test_missing_and_invented_values():
    assert missing_values("show the last 50 lines of app.log", "tail -n 50 app.log") == []
    assert missing_values("show the last 50 lines of app.log", "tail -n 20 app.log") == ["50"]
    assert missing_values("create a 1GB file", "fallocate -l 1G big.img") == []
    assert missing_values("top 5 processes by memory", "ps aux --sort=-%mem | head -n 6") == []
    assert missing_values("add ~/bin to PATH", 'export PATH="$HOME/bin:$PATH"') == []
    assert missing_values("ping DB01", "ping db01") == []
    assert invented_values("compress the logs folder", "tar -czf logs.tar.gz logs") == []
    # a printf pattern names the files a tool writes, not a file of its own
    assert invented_values("split report.pdf into one file per page", "pdfseparate report.pdf page-%d.pdf") == []


@pytest.mark.parametrize(("request_", "command", "missing"), [
    ("create folders day01 through day31", "mkdir day{01..31}", []),
    ("create folders day01 through day31", "mkdir day{01..30}", ["day31"]),
    ("create folders day01 through day31", "mkdir day{1..31}", ["day01"]),  # not padded: day1
    ("touch log_001.txt to log_020.txt", "touch log_{001..020}.txt", []),
    ("make src_a and src_b in proj1", "mkdir -p proj1/{src_a,src_b}", []),
    ("files a1 to c2", "touch {a..c}{1..2}", []),
    ("every 5th of 0 to 20: n0 n20", "echo n{0..20..5}", []),
    ("print day01", "echo 'day{01..31}'", ["day01"]),  # quoted: bash does not expand it
])
def test_brace_expansion_keeps_values(request_, command, missing):
    assert missing_values(request_, command) == missing


def test_brace_expansion_is_bounded():
    from tinyllm.knowledge.values import MAX_BRACE_WORDS, brace_words

    assert len(brace_words("touch f{1..100000}{1..100000}")) <= MAX_BRACE_WORDS
    assert brace_words("awk '{print $1,$2}' f.txt") == set()  # an awk program is not a list
    assert brace_words("x{10..0..5}") == {"x10", "x5", "x0"}


@pytest.mark.parametrize(("request_", "command", "missing"), [
    ("delete files older than 2 weeks", "find . -mtime +14 -delete", []),
    ("delete files older than 2 weeks", "find . -mtime +10 -delete", ["2"]),
    ("find logs older than 3 months", "find /var/log -mtime +90", []),
    ("files under 1.5GB", "find . -size -1536M", []),
    ("files over 1.5 GB", "find . -size +1500M", []),
    ("create a 1GB file", "fallocate -l 1024M big.img", []),
    ("create a 1GB file", "fallocate -l 2G big.img", ["1GB"]),
    ("journal entries of the last 2 days", "journalctl --since '48 hours ago'", []),
    # a number before seconds, minutes or hours is not checked: often a tool's default or a symptom
    ("run df -h every 2 seconds", "watch df -h", []),
])
def test_a_quantity_may_reach_the_command_in_another_unit(request_, command, missing):
    assert missing_values(request_, command) == missing


def test_unit_equivalents():
    from tinyllm.knowledge.values import unit_equivalents

    assert {"14", "336"} <= unit_equivalents("2", "weeks")
    assert {"1024", "1000"} <= unit_equivalents("1", "GB")
    assert "90" in unit_equivalents("1.5", "hours")
    assert unit_equivalents("3", "apples") == set()
    assert invented_values("resize video.mp4 to 720p", "ffmpeg -i video.mp4 -vf scale=-2:720 video_720p.mp4") == []
    assert invented_values("show the first lines of a file", "head notes.txt") == ["notes.txt"]


def test_validate_pairs_reads_a_gzip_copy_and_writes_plain_jsonl(tmp_path):
    """An installed package's pairs (.jsonl.gz) validate like the checkout's; --write gives plain JSONL."""
    import gzip

    from click.testing import CliRunner

    from tinyllm.train.cli import cli

    text = "".join(json.dumps(r) + "\n" for r in [
        {"instruction": "show hidden files in this folder", "command": "ls -a", "platform": "common", "source": "core"},
        {"instruction": "count the lines of notes.txt", "command": "wc -l notes.txt", "platform": "common",
         "source": "core"}])
    packed = tmp_path / "sample.jsonl.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["validate-pairs", str(packed), "--write", str(out), "--eval-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "2 pairs, 2 accepted" in res.output
    assert [json.loads(line)["command"] for line in (out / "sample.jsonl").read_text().splitlines()] == [
        "ls -a", "wc -l notes.txt"]
    assert not (out / "sample.jsonl.gz").exists()
    packed.write_bytes(b"not gzip")
    res = CliRunner().invoke(cli, ["validate-pairs", str(packed), "--eval-dir", str(tmp_path)])
    assert res.exit_code == 1 and "sample.jsonl.gz: not a readable gzip file" in res.output
