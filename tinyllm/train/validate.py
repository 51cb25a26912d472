"""Validation of the project's own training pairs: a wrong pair teaches a wrong answer.

Every pair is checked, and each rejection is reported with its reason:

- ``schema``: string fields, one line, a known platform, no prompt marker (``<macos>``) and no
  ``{{placeholder}}`` in the request (a user types neither);
- ``syntax``: ``bash -n`` parses the command;
- ``shellcheck``: no finding at error level (``shellcheck -S error``), when shellcheck is installed;
- ``program``: the first program of each pipeline stage is known to the lexicon or installed here;
- ``option``: each option appears in the program's manual page, when the page is installed here;
- ``value``: every value the request names appears in the command;
- ``invented``: the command names no file the request never mentions (a placeholder should hold it);
- ``duplicate`` / ``conflict``: the same request twice for platforms that meet (with the same or another
  command): a ``linux`` and a ``macos`` pair may answer one request differently, a ``common`` one meets both;
- ``near-duplicate``: a request almost identical (word-overlap F1 >= 0.9) to another with the same command;
- ``held-out``: within word-overlap F1 0.7 of a request of an evaluation set;
- ``calibration``: the same request (description key) as a row of the calibration set, which the confidence
  fit must see as a user's new request, not as one the model was trained on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.formats.prompt import PLATFORMS, USER_SYMBOLS
from tinyllm.knowledge.manpages import locate_page, render_man_file
from tinyllm.knowledge.retrieval import tokenize_for_search
from tinyllm.knowledge.shellparse import (
    COMMAND_RUNNERS,
    PREFIXES,
    RUNNER_OPERANDS,
    WRAPPER_OPTIONS,
    crontab_command,
    lex,
    pipelines,
    syntax_problem,
    utility_name,
    wrapper_length,
)
from tinyllm.knowledge.text import description_key
from tinyllm.knowledge.values import invented_values, missing_values

from .sources import read_pair_bytes

PAGE_CACHE = "~/.cache/nl2cmd/man-text"  # rendered pages by program name (the corpus cache keys by file)
HELD_OUT_F1 = 0.7
NEAR_DUPLICATE_F1 = 0.9

# Shell keywords and builtins: not programs, and their options are documented in bash(1) only.
SHELL_WORDS = frozenset({
    "for", "in", "do", "done", "if", "then", "else", "elif", "fi", "while", "until", "case", "esac", "select",
    "function", "{", "}", "!", "[[", "]]", "time", "cd", "export", "source", ".", "read", "set", "unset", "alias",
    "unalias", "history", "jobs", "fg", "bg", "disown", "wait", "trap", "ulimit", "umask", "type", "hash", "declare",
    "local", "readonly", "shift", "exit", "return", "break", "continue", "eval", "exec", "let", "pushd", "popd",
    "dirs", "builtin", "command", "complete", "shopt", "printf", "echo", "test", "[", "true", "false", ":",
    "kill", "getopts", "caller", "enable", "help", "logout", "mapfile", "readarray", "suspend", "times", "compgen",
})
_LOOP_HEADS = frozenset({"for", "case", "select", "done", "fi", "esac", "}", "in"})
_SUBCOMMAND_PROGRAMS = frozenset({
    "git", "docker", "kubectl", "systemctl", "apt", "apt-get", "dnf", "yum", "npm", "cargo", "pip", "pip3", "brew",
    "podman", "helm", "go", "journalctl", "ip", "nmcli", "gh", "snap", "flatpak", "zypper", "pacman", "gem",
    "diskutil", "launchctl", "defaults", "yarn", "pnpm", "rustup", "conda", "poetry", "ufw", "firewall-cmd",
    "openssl", "perf",
})
# Programs documented in another program's manual page (zgrep passes its options to grep).
_PAGE_OF = {"zgrep": "grep", "zegrep": "grep", "zfgrep": "grep", "bzgrep": "grep", "xzgrep": "grep",
            "xzegrep": "grep", "zstdgrep": "grep", "egrep": "grep", "fgrep": "grep", "perl": "perlrun"}


@dataclass(frozen=True)
class StageOptions:
    """One simple command: its program, subcommand (if any) and the options it uses; `subcommand2` is the
    word after the subcommand when it looks like one too (`podman pod create`), else empty."""

    program: str
    subcommand: str
    options: tuple[str, ...]
    subcommand2: str = ""


def _words(tokens) -> list:
    return [t for t in tokens if t.kind == "word"]


_SCRIPT_NAME = re.compile(r"[\w.-]+\.(?:sh|py|pl|rb)(?=\s|$)")


def _scheduled(command: str) -> str:
    """A crontab line's command (`crontab_command`), any other command unchanged; a bare script name there
    (`0 4 * * * backup.sh`) gets `./`, so that it counts as the user's own script, as a path does."""
    body = crontab_command(command)
    if body is None:
        return command
    return "./" + body if _SCRIPT_NAME.match(body) else body


def stage_options(command: str) -> list[StageOptions]:
    """The programs a command runs, with their options; wrappers (xargs, timeout, watch, find -exec) recurse.
    A crontab line counts as the command it schedules."""
    out: list[StageOptions] = []
    for pipe in pipelines(lex(_scheduled(command))):
        for simple in pipe:
            _collect(simple.tokens, out)
    return out


def _collect(words: list, out: list[StageOptions]) -> None:
    words = words[wrapper_length([t.value for t in words], PREFIXES, quoted=[t.quoted for t in words]):]
    if not words or words[0].value in _LOOP_HEADS or words[0].placeholder or "=" in words[0].value:
        return
    if "/" in words[0].value and not words[0].quoted:
        return  # a script or program named by its path (./deploy.sh, ~/bin/tool): the user's own
    name = utility_name(words[0])
    rest = words[1:]
    takes = WRAPPER_OPTIONS.get(name, COMMAND_RUNNERS.get(name))
    if takes is not None and name not in PREFIXES:
        opts, i = [], 0
        while i < len(rest) and rest[i].value.startswith("-") and not rest[i].quoted:
            opts.append(rest[i].value)
            i += 2 if rest[i].value in takes else 1
        if name == "taskset" and any(o == "--pid" or (not o.startswith("--") and "p" in o) for o in opts):
            out.append(StageOptions(name, "", tuple(opts)))
            return  # taskset -p MASK PID: no command follows
        i = min(len(rest), i + RUNNER_OPERANDS.get(name, 0))  # the duration, the CPU mask, the lock file ...
        if name == "flock" and i < len(rest) and rest[i].value in ("-c", "--command"):  # flock LOCK -c 'CMD'
            out.append(StageOptions(name, "", (*opts, rest[i].value)))
            out.extend(stage_options(rest[i + 1].value) if i + 1 < len(rest) else [])
            return
        out.append(StageOptions(name, "", tuple(opts)))
        if name == "watch" and i < len(rest) and rest[i].quoted:  # watch 'cmd | cmd'
            out.extend(stage_options(rest[i].value))
            return
        _collect(rest[i:], out)
        return
    if name == "find":
        own, i = [], 0
        while i < len(rest):
            own.append(rest[i])
            if rest[i].value in ("-exec", "-execdir", "-ok", "-okdir"):  # its command is a stage of its own
                j = i + 1
                while j < len(rest) and rest[j].value not in (";", "+", "\\;"):
                    j += 1
                _collect(rest[i + 1:j], out)
                i = j + 1
                continue
            i += 1
        out.append(StageOptions(name, "", tuple(_option_words(own, True))))
        return
    if name in _INTERPRETERS:  # options after the script or module belong to it
        for i, t in enumerate(rest):
            if t.value in ("-m", "-c", "-e", "-jar"):
                rest = rest[:i + 1]
                break
            if not t.value.startswith("-"):
                rest = rest[:i]
                break
    if name in ("chmod", "chattr"):  # -x, -w, -i are modes and attributes, not options
        rest = [t for t in rest if not re.fullmatch(r"[-+=][rwxXstugoaiAcdDeEjsStTu]+", t.value)]
    sub, sub2 = "", ""
    if name in _SUBCOMMAND_PROGRAMS:
        skip = False
        for i, t in enumerate(rest):
            if skip:
                skip = False
                continue
            if t.value.startswith("-"):
                skip = t.value in ("-C", "-c", "-n", "--namespace", "-f", "--file", "-p", "--project-name")
                continue
            if _is_subcommand(t):
                sub = t.value
                if i + 1 < len(rest) and _is_subcommand(rest[i + 1]):
                    sub2 = rest[i + 1].value
            break
    out.append(StageOptions(name, sub, tuple(_option_words(rest)), sub2))


def _is_subcommand(word) -> bool:
    """A word that can name a subcommand (`create`, `set-url`): lower case, unquoted."""
    return not word.quoted and re.fullmatch(r"[a-z][a-z0-9_-]*", word.value) is not None


_INTERPRETERS = frozenset({"python", "python3", "node", "perl", "ruby", "bash", "sh", "zsh", "java", "php", "deno"})
# Programs whose installed manual page does not list options users rely on (pip's is a stub, apt's leaves
# apt-get's options out, node's lags the releases people run): their options go unchecked.
# exiftool takes any tag name, in any case, as an option (-Model, -datetimeoriginal, -GPS:all=); stty's
# page writes its settings as "[-]echo", never "-echo"; Debian's sqlite3 page lags the program (-json,
# -readonly); gcloud installs only its top-level page, without any subcommand's flags (--zone).
_UNCHECKED = frozenset({"apt", "pip", "pip3", "node", "npm", "npx", "docker", "kubectl", "nslookup", "openssl", "mvn",
                        "exiftool", "stty", "sqlite3", "gcloud",
                        # Debian 12's pages leave out options people use: gs -dBATCH, -dPDFSETTINGS, -o;
                        # upower's short forms (-i, -e, -d); qpdf's page lists none at all, nor do
                        # redis-cli's and redis-server's (stubs that point to redis-doc); go's page
                        # keeps build and test flags (-race, -cover) in `go help`, and `go run`
                        # passes the rest to the program
                        "gs", "upower", "qpdf", "redis-cli", "redis-server", "go"})
# Pages whose options every subcommand accepts too (git stash list --date=relative is a log option).
_MORE_PAGES = {"git": ("git-log", "git-diff"),
               # match and target options (--dport, --ctstate, --log-prefix) live in their own page
               "iptables": ("iptables-extensions",), "ip6tables": ("iptables-extensions",)}


def _option_words(words: Sequence, single_dash_long: bool = False) -> list[str]:
    opts = []
    for t in words:
        v = t.value
        if single_dash_long and not re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", v):
            continue  # find -perm -u+x: a value
        if t.quoted or t.placeholder:
            continue
        if v == "--":
            break
        if not v.startswith("-") or v == "-" or re.match(r"^-\d", v) or "$" in v or "{" in v or "`" in v:
            continue
        opts.append(v)
    return opts


# ------------------------------------------------------------------------------------------------ manual pages
_PAGE_SECTIONS = ("1", "8", "1p", "1ssl")


class ManualPages:
    """Rendered manual pages by program name (section 1 or 8), cached on disk; None when not installed."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._docs: dict[str, str | None] = {}

    def page(self, name: str) -> str | None:
        if name not in self._docs:
            self._docs[name] = self._load(name)
        return self._docs[name]

    def _load(self, name: str) -> str | None:
        if not re.fullmatch(r"[\w.+-]+", name) or shutil.which("man") is None:
            return None
        cached = self.cache_dir / f"{name}.txt" if self.cache_dir else None
        path = None
        if cached is not None and cached.is_file():
            text = cached.read_text()
            # the page may have come or gone with its package since it was cached (a few stat calls tell)
            path = locate_page(name, _PAGE_SECTIONS, ask_man=False)
            if path is not None and text:
                return text
            if path is None and not text:
                return None
        path = path or locate_page(name, _PAGE_SECTIONS)
        text = render_man_file(path) if path else ""
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(text)
        return text or None


def _documented(opt: str, doc: str) -> bool:
    key = opt.split("=", 1)[0]

    def has(flag: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", doc) is not None

    if has(key):
        return True
    if key.startswith("--"):
        return key.startswith("--no-") and has("--" + key[5:])
    if key.startswith("-newer") and has("-newerXY"):
        return True
    letters = key[1:]
    if letters.isalpha():
        if all(has("-" + c) for c in letters):
            return True
        return has("-" + letters[0]) and re.search(rf"\b{re.escape(letters[1:])}\b", doc) is not None  # -Iseconds
    if letters[:1].isalpha() and has("-" + letters[0]):
        return True  # a value glued to its option: -n5, -F:, -k2,2, -d,
    return False


def undocumented_options(stages: Iterable[StageOptions], pages: ManualPages) -> list[str]:
    """`program option` for each option missing from an installed manual page (unchecked without a page)."""
    bad = []
    for st in stages:
        if st.program in SHELL_WORDS or st.program in _UNCHECKED or not st.options:
            continue
        program = _PAGE_OF.get(st.program, st.program)
        if program == "ffmpeg" and pages.page("ffmpeg-all"):
            program = "ffmpeg-all"
        names = [f"{program}-{st.subcommand}-{st.subcommand2}"] if st.subcommand2 else []
        names += [f"{program}-{st.subcommand}"] if st.subcommand else []
        names += [program, *_MORE_PAGES.get(program, ())]  # global options, options shared by subcommands
        docs = [d for d in map(pages.page, names) if d]
        if not docs:
            continue
        doc = "\n".join(docs)
        bad.extend(f"{st.program} {o}" for o in st.options
                   if not _documented(o, doc) and not (program == "ffmpeg-all" and _private_option(o, doc))
                   and not (program in _SIGNAL_SENDERS and _SIGNAL_OPTION.fullmatch(o)))
    return bad


# Programs that take a signal as an option (`pkill -STOP`, `fuser -k -TERM`); their pages name no signal.
_SIGNAL_SENDERS = frozenset({"pkill", "killall", "fuser", "skill", "snice"})
_SIGNAL_OPTION = re.compile(r"-(?:SIG)?(?:[A-Z]{2,6}[0-9]?|RTMIN(?:\+\d+)?|RTMAX(?:-\d+)?)|-\d{1,2}")


def _private_option(opt: str, doc: str) -> bool:
    """ffmpeg's codec, format and filter options (`-tune`, `-safe`) are documented as bare item tags."""
    key = opt.split("=", 1)[0]
    return bool(re.fullmatch(r"-\w+", key)) and re.search(rf"(?m)^ +{re.escape(key[1:])}(?: |$)", doc) is not None


# ------------------------------------------------------------------------------------------------ shell checks
def _bash_ok(command: str) -> bool:
    try:
        return subprocess.run(["bash", "-n", "-c", command], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


BASH_BATCH = 200
"""Commands `bash -n` reads at once, one per line, when each is complete on its own line (`_batchable`)."""


def _batchable(command: str) -> bool:
    """Can `command` share a script with others without its verdict hiding in theirs? Only when the
    project's structural check finds it complete (no unclosed quote, construct or trailing operator, which
    would run on into the next line) and it holds no here-document or line continuation."""
    return "<<" not in command and "\\\n" not in command and not command.rstrip().endswith("\\") \
        and syntax_problem(command) is None


def _bash_batch_ok(commands: Sequence[str]) -> bool:
    return _bash_ok("\n".join(commands))


def bash_parses(commands: Sequence[str], workers: int = 4) -> list[bool]:
    """`bash -n` verdict per command. Complete-looking commands are read `BASH_BATCH` to one bash process
    (one fork per command made this the validator's slowest step); a batch bash rejects, and every command
    that is not `_batchable`, is read alone, so each verdict is bash's own on that command."""
    verdicts: list[bool | None] = [None] * len(commands)
    batchable = [i for i, c in enumerate(commands) if _batchable(c)]
    groups = [batchable[s:s + BASH_BATCH] for s in range(0, len(batchable), BASH_BATCH)]
    with ThreadPoolExecutor(workers) as pool:
        for group, ok in zip(groups, pool.map(_bash_batch_ok, ([commands[i] for i in g] for g in groups))):
            if ok:
                for i in group:
                    verdicts[i] = True
        alone = [i for i, v in enumerate(verdicts) if v is None]
        for i, ok in zip(alone, pool.map(_bash_ok, (commands[i] for i in alone), chunksize=64)):
            verdicts[i] = ok
    return [bool(v) for v in verdicts]


def shellcheck_errors(commands: Sequence[str], workers: int | None = None) -> dict[int, str]:
    """Index -> first error-level shellcheck finding. Each command is a script of its own (a command that
    opens a construct, as `{{command}} &` opens a brace group for shellcheck, cannot spill onto the next),
    checked many files to a shellcheck run, the runs in parallel."""
    if shutil.which("shellcheck") is None or not commands:
        return {}
    workers = max(1, workers or os.cpu_count() or 1)
    size = min(_FILES_PER_RUN, -(-len(commands) // workers))
    with tempfile.TemporaryDirectory(prefix="nl2cmd-shellcheck-") as tmp:
        paths = []
        for i, command in enumerate(commands):
            path = os.path.join(tmp, f"{i}.sh")
            with open(path, "w") as f:
                f.write("#!/bin/bash\n" + command.replace("\n", " ") + "\n")
            paths.append(path)
        with ThreadPoolExecutor(workers) as pool:
            parts = pool.map(_shellcheck, (paths[s:s + size] for s in range(0, len(paths), size)))
            findings = [item for part in parts for item in part]
    errors: dict[int, str] = {}
    for item in findings:
        errors.setdefault(int(Path(item["file"]).stem), f"SC{item['code']}: {item['message']}")
    return errors


_FILES_PER_RUN = 2000  # keeps a run's argument list far below the system's limit


def _shellcheck(paths: Sequence[str]) -> list[dict]:
    res = subprocess.run(["shellcheck", "-S", "error", "-s", "bash", "-f", "json", *paths],
                         capture_output=True, text=True, timeout=1800)
    return json.loads(res.stdout or "[]")


# ------------------------------------------------------------------------------------------------ the validator
@dataclass
class Report:
    """Accepted rows and (row, reason) rejections."""

    accepted: list[dict] = field(default_factory=list)
    rejected: list[tuple[dict, str]] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for _, why in self.rejected:
            counts[why.split(":", 1)[0]] += 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _request_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _f1(a: set[str], b: set[str]) -> float:
    common = len(a & b)
    return 0.0 if not common else 2 * common / (len(a) + len(b))


PLACEHOLDER_IN_REQUEST = re.compile(r"\{\{[^{}]*\}\}")
"""A tldr-style placeholder, which belongs in a command, never in what a user types."""


def _schema_error(row: dict) -> str | None:
    for key in ("instruction", "command"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            return f"schema: '{key}' must be a non-empty string"
        if "\n" in value or "\r" in value:
            return f"schema: '{key}' must be one line"
    if row.get("platform") not in PLATFORMS:
        return f"schema: platform must be one of {', '.join(PLATFORMS)}"
    if marker := next((m for m in USER_SYMBOLS if m in row["instruction"]), None):
        return f"schema: the request holds the prompt marker {marker} (a user never types it; use the platform field)"
    if PLACEHOLDER_IN_REQUEST.search(row["instruction"]):
        return "schema: the request holds a {{placeholder}} (a user never types one; say 'a file' or give a value)"
    return None


def _platforms_met(platform: str) -> tuple[str, ...]:
    """The platforms whose pairs a pair for `platform` can contradict: a `common` command is shown to the
    model with either user's tag (tinyllm.formats.prompt), a `linux` or `macos` one with its own only."""
    return PLATFORMS if platform == "common" else (platform, "common")


def validate(rows: Sequence[dict], known_programs: Callable[[str], bool], held_out: Sequence[str] = (),
             pages: ManualPages | None = None, check_shell: bool = True, reserved: Sequence[str] = ()) -> Report:
    """Check rows in order; the first of two duplicates is kept. `reserved` requests (the calibration set's)
    may not appear as a pair's request (compared by description key)."""
    report = Report()
    reserved_keys = {description_key(r) for r in reserved}
    candidates: list[dict] = []
    for row in rows:
        why = _schema_error(row)
        if why:
            report.rejected.append((row, why))
        else:
            candidates.append(row)
    parses = bash_parses([r["command"] for r in candidates]) if check_shell else [True] * len(candidates)
    parsed = [i for i, ok in enumerate(parses) if ok]  # a line bash cannot parse would mislead shellcheck's next lines
    found = shellcheck_errors([candidates[i]["command"] for i in parsed]) if check_shell else {}
    sc_errors = {parsed[j]: why for j, why in found.items()}
    held = [set(tokenize_for_search(h)) for h in held_out]
    held_by_word: dict[str, list[int]] = defaultdict(list)
    for i, words in enumerate(held):
        for w in words:
            held_by_word[w].append(i)
    seen: dict[str, dict[str, str]] = {}  # request key -> platform -> command
    by_command: dict[str, list[set[str]]] = defaultdict(list)
    for i, row in enumerate(candidates):
        request, command = row["instruction"].strip(), row["command"].strip()
        why = None
        if not parses[i]:
            why = "syntax: bash -n fails"
        elif i in sc_errors:
            why = f"shellcheck: {sc_errors[i]}"
        if why is None:
            stages = stage_options(command)
            unknown = [s.program for s in stages if s.program not in SHELL_WORDS and not known_programs(s.program)]
            if unknown:
                why = f"program: unknown {unknown[0]!r}"
            elif pages is not None and row["platform"] != "macos" and (bad := undocumented_options(stages, pages)):
                why = f"option: {bad[0]} not in its manual page"
        if why is None and (missing := missing_values(request, command)):
            why = f"value: {missing[0]!r} from the request is not in the command"
        if why is None and (invented := invented_values(request, command)):
            why = f"invented: {invented[0]!r} is not in the request"
        key = _request_key(request)
        words = set(tokenize_for_search(request))
        met = [c for p, c in seen.get(key, {}).items() if p in _platforms_met(row["platform"])]
        if why is None and met:
            why = "duplicate: same request and command" if command in met else "conflict: same request, another command"
        if why is None and any(_f1(words, other) >= NEAR_DUPLICATE_F1 for other in by_command[command]):
            why = "near-duplicate: another request for this command differs by little"
        if why is None and words:
            counts: dict[int, int] = defaultdict(int)
            for w in words:
                for j in held_by_word.get(w, ()):
                    counts[j] += 1
            close = [j for j, c in counts.items() if 2 * c / (len(words) + len(held[j])) >= HELD_OUT_F1]
            if close:  # the evaluation request is not named: pair writers must not learn the sets from it
                why = "held-out: within word-overlap F1 0.7 of an evaluation request"
        if why is None and description_key(request) in reserved_keys:
            why = "calibration: the request of a calibration row"
        if why:
            report.rejected.append((row, why))
            continue
        seen.setdefault(key, {})[row["platform"]] = command
        by_command[command].append(words)
        report.accepted.append(row)
    return report


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file (or its ``.gz`` copy); a malformed line becomes a row that fails the schema check."""
    rows = []
    for n, line in enumerate(read_pair_bytes(path).decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = {"instruction": None, "command": None, "_error": f"line {n}: {exc}"}
        rows.append(row if isinstance(row, dict) else {"instruction": None})
    return rows


def held_out_requests(paths: Iterable[Path]) -> list[str]:
    """The requests of evaluation sets (JSONL rows with an ``instruction``)."""
    out = []
    for path in paths:
        out.extend(r["instruction"] for r in read_jsonl(path) if isinstance(r.get("instruction"), str))
    return out


MACOS_BASE_PROGRAMS = frozenset({
    "createhomedir", "dscacheutil", "dscl", "dseditgroup", "dsmemberutil", "fs_usage", "ioreg", "jot",
    "kextstat", "memory_pressure", "purge", "sysadminctl",
})
"""Programs of macOS's base system that neither a tldr page nor a Linux machine knows (user and group
management, memory and I/O inspection, BSD's `jot`): the validator knows them although no machine that
validates pairs can run them (their options go unchecked: no manual page is installed)."""


def known_program_test(data_dir: Path | None = None) -> Callable[[str], bool]:
    """Is a program known? The shipped lexicon, the tldr page names under `data_dir`, macOS's base programs
    (`MACOS_BASE_PROGRAMS`), or installed here."""
    from tinyllm.formats.checkpoint import default_model_path
    from tinyllm.knowledge.retrieval import load_tool_lexicon

    index = default_model_path().with_suffix(".idx")
    known = set(load_tool_lexicon(index).known) if index.is_file() else set()
    known.update(MACOS_BASE_PROGRAMS)
    pages = Path(data_dir) / "tldr" / "pages" if data_dir else None
    if pages is not None and pages.is_dir():
        known.update(p.stem for p in pages.glob("*/*.md"))
    return lambda name: name in known or shutil.which(name) is not None


def validate_files(files: Sequence[Path], held_out: Sequence[str], known: Callable[[str], bool],
                   man_cache: Path | None = None, reserved: Sequence[str] = ()) -> tuple[dict[Path, list[dict]], Report]:
    """Validate pair files together (duplicates are found across files); accepted rows by file, and the report."""
    rows = []
    for path in files:
        for row in read_jsonl(path):
            row["_file"] = path
            rows.append(row)
    report = validate(rows, known, held_out, ManualPages(man_cache), reserved=reserved)
    by_file: dict[Path, list[dict]] = {p: [] for p in files}
    for row in report.accepted:
        by_file[row.pop("_file")].append(row)
    return by_file, report


def write_report(report: Report, path: Path) -> None:
    """Rejections as TSV: file, reason, request, command."""
    with open(path, "w") as f:
        f.write("file\treason\tinstruction\tcommand\n")
        for row, why in report.rejected:
            name = Path(row.get("_file", "")).name
            f.write(f"{name}\t{why}\t{row.get('instruction')}\t{row.get('command')}\n")
