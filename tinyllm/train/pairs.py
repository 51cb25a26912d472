"""Instruction/command pairs: cleaning, dedup, leak-free train/dev/test split, placeholder augmentation.

``build_pairs`` turns the raw sources (sources.py) into ``train/dev/test.jsonl`` plus a manifest.
Splits are grouped: rows sharing a command (whitespace key) or a description (description_key) are
connected (union-find) and a whole group goes to one split, chosen by the sha1 of the group's
canonical key, so the split is identical on every run and machine and never leaks a command or a
description between splits. Groups larger than ``MAX_HELD_OUT_GROUP`` rows (generic descriptions
such as "Display help" join hundreds of rows) always go to train, so dev/test keep their size.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from tinyllm.knowledge import text as _text
from tinyllm.knowledge.text import (
    description_key,
    normalize_command,
    normalize_instruction,
    placeholder_matches,
    whitespace_key,
)

from . import sources as _sources
from .sources import (
    DataError,
    Row,
    count_by,
    iter_jsonl_pairs,
    iter_nl2bash,
    iter_pair_file,
    iter_tldr,
    iter_tldr_summaries,
    pair_file_digest,
    pair_file_name,
)

MAX_INSTRUCTION_CHARS = 300
MAX_COMMAND_CHARS = 300
MAX_HELD_OUT_GROUP = 50
# NL2Bash is ~60% `find`; people ask for ls/du/grep/tar far more often than that. Train keeps this
# fraction of its find rows so "list all files in the current directory" is not pulled towards find.
NL2BASH_FIND_KEEP = 0.5
SUMMARY_REPEAT = 2  # tldr page summaries ("List directory contents" -> ls) are few; each is seen twice
# This project's own everyday pairs, one JSONL file per domain (train only; see data/README.md), and
# how often each is repeated against NL2Bash's thousands of `find` answers.
CORE_PAIRS = Path(__file__).parent / "data" / "pairs"
CORE_REPEAT = 3
SPLITS = ("train", "dev", "test")
PAIRS_VERSION = 4  # bump when cleaning/splitting/augmentation changes, to invalidate cached outputs
FIELDS = ("instruction", "command", "source", "platform")

# ---------------------------------------------------------------------------------------- cleaning


def quotes_balanced(command: str) -> bool:
    """True if single/double quotes and backticks in a shell command are closed (backslash escapes honoured)."""
    quote = ""
    backtick = False
    i = 0
    while i < len(command):
        ch = command[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\":
            i += 1  # skip the escaped character
        elif ch == "`":
            backtick = not backtick
        elif quote == '"':
            if ch == '"':
                quote = ""
        elif ch in "'\"":
            quote = ch
        i += 1
    return not quote and not backtick


def _garbled(text: str) -> bool:
    # Replacement chars come from bad decoding; Cc/Cf/Co/Cs/Cn are invisible or unassigned characters.
    return "\ufffd" in text or any(unicodedata.category(ch)[0] == "C" for ch in text)


def clean_row(row: Row) -> tuple[Row | None, str]:
    """Normalise one row; returns (row, "") or (None, reason it was dropped)."""
    instruction = normalize_instruction(row["instruction"])
    command = normalize_command(row["command"])
    if not instruction or not command:
        return None, "empty"
    if len(instruction) > MAX_INSTRUCTION_CHARS or len(command) > MAX_COMMAND_CHARS:
        return None, "too_long"
    if _garbled(instruction) or _garbled(command) or "\ufffd" in row["instruction"] + row["command"]:
        return None, "garbled"
    if not quotes_balanced(command):
        return None, "unbalanced_quotes"
    return {"instruction": instruction, "command": command, "source": row["source"], "platform": row["platform"]}, ""


def clean_rows(rows: Iterable[Row]) -> tuple[list[Row], dict[str, int]]:
    """Clean and deduplicate rows on (normalised instruction, command); returns (rows, drop counts)."""
    out: list[Row] = []
    seen: set[tuple[str, str]] = set()
    dropped: dict[str, int] = {}
    for row in rows:
        clean, reason = clean_row(row)
        if clean is not None:
            key = (clean["instruction"], clean["command"])
            if key in seen:
                clean, reason = None, "duplicate"
            else:
                seen.add(key)
                out.append(clean)
        if clean is None:
            dropped[reason] = dropped.get(reason, 0) + 1
    return out, dict(sorted(dropped.items()))


# ------------------------------------------------------------------------------------------- split


def _sha_fraction(key: str) -> float:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def split_groups(rows: Sequence[Row]) -> list[int]:
    """Union-find group id per row: rows sharing a command key or a description key are one group."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        for key in ("c:" + whitespace_key(row["command"]), "d:" + description_key(row["instruction"])):
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(rows))]


def assign_splits(rows: Sequence[Row], fractions: tuple[float, float, float] = (0.94, 0.03, 0.03)) -> list[str]:
    """Deterministic grouped split name per row (see module docstring)."""
    groups = split_groups(rows)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    train_frac, dev_frac = fractions[0] / sum(fractions), fractions[1] / sum(fractions)
    names = [""] * len(rows)
    for idx in members.values():
        # Canonical key: the smallest command key in the group, independent of row order.
        canonical = min(whitespace_key(rows[i]["command"]) for i in idx)
        x = _sha_fraction(canonical)
        if len(idx) > MAX_HELD_OUT_GROUP or x < train_frac:
            name = "train"
        elif x < train_frac + dev_frac:
            name = "dev"
        else:
            name = "test"
        for i in idx:
            names[i] = name
    return names


# ------------------------------------------------------------------------------ placeholder filling

_BRACKET_ALT_RE = re.compile(r"\[([^\]|]*)(?:\|[^\]]*)?\]")  # "source.tar[.gz|.bz2]" -> "source.tar.gz"
_WORD_RE = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]?$")
_NUMBER_RE = re.compile(r"^\d+$")

FILES = ["notes.txt", "report.pdf", "data.csv", "main.py", "config.yaml", "todo.md", "server.log", "photo.jpg",
         "index.html", "backup.tar.gz", "app.js", "readme.txt", "results.json", "script.sh", "draft.docx"]
STEMS = ["notes", "report", "data", "photo", "output", "backup", "project", "draft", "image", "archive", "input"]
DIRS = ["src", "docs", "backup", "photos", "build", "projects/web", "logs", "downloads", "assets", "tmp/work"]

# Keyed by the placeholder's last word (``{{remote_host}}`` -> "host").
WORDS: dict[str, list[str]] = {
    "username": ["alice", "bob", "deploy", "maria"], "user": ["alice", "bob", "deploy", "maria"],
    "owner": ["alice", "root", "www-data"], "group": ["developers", "staff", "docker"],
    "password": ["hunter2", "s3cret", "P4ssw0rd"], "port": ["8080", "3000", "5432", "2222", "443"],
    "host": ["example.com", "server1", "192.168.1.10", "db.local"], "hostname": ["server1", "web01", "pi.local"],
    "server": ["example.com", "10.0.0.5", "mail.example.org"], "domain": ["example.org", "mysite.com", "example.net"],
    "url": ["https://example.com/file.tar.gz", "https://github.com/user/repo", "http://localhost:8080"],
    "address": ["192.168.1.10", "10.0.0.5", "172.16.0.3"], "ip": ["192.168.1.10", "10.0.0.5"],
    "name": ["myapp", "web", "demo", "backend"], "container": ["web", "db", "redis"], "image": ["nginx", "ubuntu:22.04", "redis"],
    "package": ["htop", "curl", "jq", "tree"], "version": ["1.2.0", "2.0.1", "3.11"], "tag": ["v1.2.0", "latest", "v2.0"],
    "branch": ["main", "feature/login", "develop"], "remote": ["origin", "upstream"], "commit": ["HEAD~1", "a1b2c3d"],
    "message": ["Fix typo in README", "Initial commit", "Update config"], "pid": ["1234", "4821", "31337"],
    "pattern": ["error", "TODO", "foo.*bar"], "regex": ["^[0-9]+$", "error|warning"], "keyword": ["error", "python"],
    "string": ["hello", "foo"], "text": ["Hello world", "hello"], "query": ["linux kernel", "weather"],
    "term": ["linux", "backup"], "command": ["ls -la", "make", "sleep 5", "python3 script.py"],
    "subcommand": ["list", "status"], "interface": ["eth0", "wlan0", "enp3s0"], "key": ["API_KEY", "color"],
    "variable": ["PATH", "EDITOR", "HOME"], "value": ["42", "true", "blue"], "width": ["800", "1920"],
    "height": ["600", "1080"], "database": ["mydb", "inventory"], "table": ["users", "orders"],
    "service": ["nginx", "sshd", "docker"], "unit": ["nginx.service", "sshd.service"], "id": ["42", "7", "1001"],
    "repository": ["user/repo", "octocat/hello-world"], "project": ["myproject", "website"], "number": ["5", "10", "3"],
    "n": ["5", "10", "3"], "count": ["3", "5", "10"], "seconds": ["30", "5", "60"], "minutes": ["10", "5"],
    "size": ["10M", "1G", "512K"], "mode": ["755", "644"], "permissions": ["755", "644", "u+x"],
    "signal": ["SIGTERM", "SIGKILL"], "device": ["/dev/sdb", "/dev/sdc"], "module": ["os", "requests"],
    "file": FILES, "filename": FILES, "directory": DIRS, "dir": DIRS, "folder": DIRS, "path": FILES + DIRS,
    "token": ["ghp_abc123"], "email": ["alice@example.com", "bob@example.org"], "region": ["us-east-1", "eu-west-1"],
    "namespace": ["default", "kube-system"], "cluster": ["prod", "staging"], "pod": ["web-7d4b9", "api-0"],
    "bucket": ["my-bucket", "backups"], "process": ["firefox", "python3"], "program": ["firefox", "vim"],
}
# Tool-specific package names read better than a generic "htop".
PACKAGES_BY_TOOL = {
    "pip": ["requests", "numpy", "flask"], "pip3": ["requests", "numpy", "flask"], "pipx": ["black", "httpie"],
    "uv": ["requests", "ruff"], "npm": ["express", "lodash", "react"], "yarn": ["express", "lodash"],
    "pnpm": ["express", "lodash"], "cargo": ["ripgrep", "serde"], "gem": ["rails", "bundler"],
    "go": ["github.com/user/tool"], "conda": ["numpy", "pandas"],
}
# Concrete tldr example values that have a nicer real-world substitute.
LITERALS = {"/dev/sdX": ["/dev/sdb", "/dev/sdc"], "/dev/sdXY": ["/dev/sdb1", "/dev/sdc2"],
            "/dev/sdXN": ["/dev/sdb1", "/dev/sdc1"], "ethX": ["eth0", "eth1"], "image:tag": ["nginx:1.25", "redis:7"],
            "wlanX": ["wlan0"]}


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def _path_value(spec: str, rng: random.Random, used: set[str]) -> str:
    """A value for ``path/to/<last>``: keeps a given extension, picks a file or directory by the name."""
    last = spec.rsplit("/", 1)[-1]
    stem, dot, ext = last.partition(".")
    words = _words(stem)
    if dot:  # explicit extension: keep it, so "path/to/image.png" -> "photo.png"
        choices = [f"{s}.{ext}" for s in STEMS]
    elif "or" in words and any(w in ("file", "directory") for w in words):  # file_or_directory
        choices = FILES + DIRS
    elif words and words[-1] in ("directory", "dir", "folder", "point", "destination", "target", "parent"):
        choices = DIRS
    elif not words or words == ["to"]:  # "{{path/to}}/file": the folder part
        choices = DIRS
    else:
        choices = FILES
    return _pick(choices, rng, used)


def _pick(choices: list[str], rng: random.Random, used: set[str]) -> str:
    fresh = [c for c in choices if c not in used]
    value = rng.choice(fresh or choices)
    used.add(value)
    return value


def label_of(spec: str) -> str:
    """A short human label for a placeholder (``path/to/output_file`` -> "output file"; lists get none)."""
    if "..." in spec:
        return ""
    last = spec.split("|", 1)[0].rsplit("/", 1)[-1].split(".", 1)[0]
    words = [w for w in _words(last) if not w.isdigit()]
    return " ".join(words[-3:]) if words else ""


def _concrete(spec: str) -> str:
    """A concrete tldr example value with brackets/alternatives resolved to the first form."""
    return _BRACKET_ALT_RE.sub(lambda m: m.group(1), spec).split("|", 1)[0].strip() or spec


def fill_value(spec: str, rng: random.Random, used: set[str], tool: str = "") -> str | None:
    """A realistic value for the placeholder text `spec` (without braces), or None to leave it alone."""
    spec = _BRACKET_ALT_RE.sub(lambda m: m.group(1), spec.strip())
    if "|" in spec:  # "{{name|id}}": a choice between kinds; take the first
        spec = spec.split("|", 1)[0].strip()
    if not spec:
        return None
    if "..." in spec:  # "path/to/file1 path/to/file2 ...": two values
        items = [s for s in spec.replace("...", " ").split() if s]
        if not items:
            return None
        vals = [fill_value(items[min(i, len(items) - 1)], rng, used, tool) for i in range(2)]
        return " ".join(v for v in vals if v) or None
    if spec in LITERALS:
        return _pick(LITERALS[spec], rng, used)
    if _NUMBER_RE.match(spec):
        base = int(spec)
        return str(rng.choice([v for v in (base * 2, base + 5, base + 1, max(1, base // 2)) if v != base]))
    if spec.startswith(("path/to", "~/path/to", "/path/to")):
        return _path_value(spec, rng, used)
    if not _WORD_RE.match(spec):
        return None  # a concrete example value (example.com, *.html, ~/myhosts): keep tldr's own
    words = _words(spec)
    last = words[-1].rstrip("0123456789") or words[-1]
    if last in ("package", "name") and "package" in words and tool in PACKAGES_BY_TOOL:
        return _pick(PACKAGES_BY_TOOL[tool], rng, used)
    for w in (last, "_".join(words[-2:])):
        if w in WORDS:
            return _pick(WORDS[w], rng, used)
    if last == "name" and len(words) > 1:  # "vm_name" -> "my-vm"
        return _pick([f"my-{words[-2]}", f"{words[-2]}1"], rng, used)
    return _pick([f"my{last}", f"{last}1"], rng, used)


def fill_placeholders(command: str, instruction: str, rng: random.Random) -> tuple[str, list[tuple[str, str]]] | None:
    """Fill every placeholder in `command`; returns (filled command, [(label, value), ...] to mention).

    Mentions are formatted for the instruction (multi-word values quoted, lists joined with "and").
    Returns None when nothing could be filled. A placeholder whose literal text already occurs in the
    instruction (``head -n {{10}}`` for "the first 10 lines") keeps its value and is not mentioned again.
    """
    tool = command.split(" ", 1)[0]
    values: dict[str, str | None] = {}
    mentions: list[tuple[str, str]] = []
    used: set[str] = set()
    low = instruction.lower()
    found = placeholder_matches(command)  # Go template actions ({{.Names}}) are part of the command
    for spec in (m.group(1) for m in found):
        if spec in values:
            continue
        if spec.lower() in low and not _WORD_RE.match(spec) and "/" not in spec:
            values[spec] = spec  # the instruction already names this literal value
            continue
        value = fill_value(spec, rng, used, tool)
        values[spec] = _concrete(spec) if value is None else value  # None: keep tldr's example, braces dropped
        if value is None:
            continue
        if "..." in spec:
            text = " and ".join(value.split(" "))
        else:
            text = f'"{value}"' if " " in value else value  # a multi-word value stays one unit
        mentions.append((label_of(spec), text))
    if not mentions:
        return None
    filled, end = "", 0
    for m in found:
        filled += command[end:m.start()] + (values[m.group(1)] or m.group(1))
        end = m.end()
    filled += command[end:]
    return filled, mentions


def mention(instruction: str, mentions: list[tuple[str, str]], rng: random.Random) -> str:
    """The instruction with the filled values worked in, in one of a few natural styles."""
    base = instruction.rstrip(" .:")
    quoted = mentions
    style = rng.randrange(3)
    if style == 0:
        return f"{base}: {', '.join(v for _, v in quoted)}"
    if style == 1:
        return f"{base} ({', '.join(v for _, v in quoted)})"
    parts = [f"{label} {v}" if label and label not in ("command", "text", "message") else v for label, v in quoted]
    return f"{base}, {', '.join(parts)}"


def augment_row(row: Row, seed: int = 0) -> Row | None:
    """A copy of a tldr row with its placeholders filled and the values named in the instruction, or None."""
    if "{{" not in row["command"]:
        return None
    digest = hashlib.sha1(f"{seed}\0{row['instruction']}\0{row['command']}".encode()).hexdigest()
    rng = random.Random(int(digest[:16], 16))  # seeded by the row: same output on every run
    filled = fill_placeholders(row["command"], row["instruction"], rng)
    if filled is None:
        return None
    command, mentions = filled
    new, _ = clean_row({**row, "instruction": mention(row["instruction"], mentions, rng), "command": command,
                        "source": row["source"] + "_aug"})
    return new


# ------------------------------------------------------------------------------------------- build


def with_tool(instruction: str, tool: str) -> str:
    """A tldr description made standalone: it is written under its page title, so name the tool
    ("List upgradable packages" -> "List upgradable packages with apt") unless the text already does."""
    if not tool or not re.fullmatch(r"[\w.+-]+", tool):
        return instruction
    if re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", instruction, re.IGNORECASE):
        return instruction
    return f"{instruction} with {tool}"


def everyday_tools(rows: Sequence[Row]) -> set[str]:
    """The tools people ask for in plain words: every first utility of an NL2Bash command."""
    from .metrics import command_name

    return {command_name(r["command"]) for r in rows if r["source"] == "nl2bash"} - {""}


def name_tldr_tools(split_rows: dict[str, list[Row]], rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Name the tool in every tldr request. Train also keeps the tool-less wording for everyday tools
    (those NL2Bash uses), so "extract an archive" still maps to tar while "disable a module" does not
    have to guess among 7,000 pages."""
    from .metrics import command_name

    everyday = everyday_tools(rows)
    out: dict[str, list[Row]] = {}
    for split, split_list in split_rows.items():
        seen: set[tuple[str, str]] = set()
        result: list[Row] = []
        for r in split_list:
            variants = [r]
            if r["source"].startswith("tldr"):
                tool = command_name(r["command"])
                named = {**r, "instruction": with_tool(r["instruction"], tool)}
                keep_plain = split == "train" and tool in everyday and named["instruction"] != r["instruction"]
                variants = [named, r] if keep_plain else [named]
            for v in variants:
                key = (v["instruction"], v["command"])
                if key not in seen:
                    seen.add(key)
                    result.append(v)
        out[split] = result
    return out


def thin_find(rows: Sequence[Row], keep: float = NL2BASH_FIND_KEEP) -> list[Row]:
    """Train rows with only `keep` of NL2Bash's find commands (chosen by instruction hash, deterministic)."""
    from .metrics import command_name

    return [r for r in rows if r["source"] != "nl2bash" or command_name(r["command"]) != "find"
            or _sha_fraction("find-keep:" + r["instruction"]) < keep]


# A tldr example of an interactive program's key binding ("<c>", "{{<w>|<ArrowUp>}}", "<Ctrl a><k>"):
# not a shell command, never a useful suggestion at a prompt.
KEY_BINDING = re.compile(r"^(\{\{)?<[^<>\s][^<>]*>")
# A listing request about the current folder alone, and the words that ask for a recursive search.
LISTS_CURRENT_FOLDER = re.compile(
    r"^\W*(list|lists|display|displays|show|shows|print|prints|dsisplay)\b.*\b(in|of|from|inside|within|inthe)\b"
    r"\s*(the\s+)?(current|this|present|working)\s+(working\s+)?(directory|folder|dir)\b", re.IGNORECASE)
ASKS_FOR_FIND = re.compile(
    r"\b(find|search|tree|recursive(ly)?|subdir\w*|sub-dir\w*|sub-?folders?|below|beneath|under|nested|descend\w*|"
    r"depth|levels?|hierarchy|all the folders)\b", re.IGNORECASE)
BARE_FIND = re.compile(r"^find( \.)?( -type [fdl])?( -print0?| -ls)?$")
LISTING = re.compile(r"^\W*(list|lists|display|displays|dsisplay|show|shows)\b", re.IGNORECASE)


def _unasked_find(row: Row) -> bool:
    """An NL2Bash listing answered with a recursive `find` that the request did not ask for: "display all
    files in the current folder" (any find without -maxdepth) or "list all files" (a bare `find .`). People
    mean `ls` there (or `find -maxdepth 1`)."""
    cmd, instruction = row["command"], row["instruction"]
    if row["source"] != "nl2bash" or not cmd.startswith("find") or "maxdepth" in cmd:
        return False
    if ASKS_FOR_FIND.search(instruction):
        return False
    return LISTS_CURRENT_FOLDER.search(instruction) is not None or (
        BARE_FIND.match(cmd) is not None and LISTING.match(instruction) is not None)


def drop_unwanted_targets(rows: Sequence[Row]) -> list[Row]:
    """Train rows without targets a user never wants suggested: key bindings of interactive programs
    (tldr), and NL2Bash's recursive `find` for a plain listing of the current folder that neither says
    find nor asks for recursion (`_unasked_find`; the project's own pairs teach `ls` there).
    Train only: dev and test stay as split, so their metrics remain comparable."""
    return [r for r in rows if not KEY_BINDING.match(r["command"]) and not _unasked_find(r)]


# Concrete values that a request names and its command repeats ("unpack photos.zip" -> unzip photos.zip),
# and what `vary_values` puts in their place.
_FILE_RE = re.compile(r"(?<![\w./~@-])([A-Za-z][\w-]*)((?:\.(?:tar|min))?\.([A-Za-z][A-Za-z0-9]{0,4}))(?![\w/-])")
_NOT_FILE_EXT = {"com", "org", "net", "io", "dev", "local", "internal", "edu", "gov", "co", "uk", "de", "lan"}
_NUM_RE = re.compile(r"(?:(?<=^)|(?<=[\s+-])|(?<=\s:))(\d{1,5})(?=\s|$)")  # a whole argument: 30, +30, -7, :3000
_DIR_RE = re.compile(r"(?<![\w./~-])([a-z][\w-]*)/(?![\w.-])")
FILE_STEMS = ("notes", "report", "data", "server", "main", "backup", "photos", "access", "errors", "config",
              "todo", "draft", "output", "results", "invoice", "archive", "app", "index", "users", "setup")
DIR_NAMES = ("src", "lib", "docs", "backup", "build", "dist", "assets", "logs", "tmp", "data", "projects", "old")
PORTS = (80, 443, 3000, 4000, 5000, 5432, 6379, 8000, 8080, 8443, 9000, 9090)


def _names(text: str, value: str) -> bool:
    """True if `text` contains `value` as a whole word (not inside a longer name or number)."""
    return re.search(r"(?<![\w.-])" + re.escape(value) + r"(?![\w-])", text) is not None


def vary_values(row: Row, rng: random.Random) -> Row:
    """A copy of a hand-written pair with the concrete values that both its request and its command name
    (file names, directory names, a port or a count) replaced by other plausible ones, consistently in
    both: repeated pairs then teach copying the user's values rather than memorising ours. Modes
    (chmod), number ranges (`seq 1 10`) and values that only one side names stay as they are."""
    instr, cmd = row["instruction"], row["command"]
    swaps: dict[str, str] = {}
    for m in _FILE_RE.finditer(cmd):
        name = m.group(0)
        if m.group(3).lower() not in _NOT_FILE_EXT and name not in swaps and _names(instr, name):
            swaps[name] = rng.choice([s for s in FILE_STEMS if s != m.group(1)]) + m.group(2)
    for m in _DIR_RE.finditer(cmd):
        name = m.group(1)
        if name not in swaps and _names(instr, name):
            swaps[name] = rng.choice([d for d in DIR_NAMES if d != name])
    numbers = [n for n in dict.fromkeys(_NUM_RE.findall(cmd)) if _names(instr, n)]
    if len(numbers) == 1 and "chmod" not in cmd and "umask" not in cmd:  # one count or port, not a range
        n = int(numbers[0])
        if re.search(r"\bport " + numbers[0] + r"\b", instr) or ":" + numbers[0] in cmd:
            new = rng.choice([p for p in PORTS if p != n])
        else:  # a process id, or a count of days, lines, seconds
            new = rng.randrange(1000, 10000) if n >= 1000 else rng.choice([v for v in range(2, 61) if v != n])
        swaps[numbers[0]] = str(new)
    if not swaps:
        return dict(row)
    keys = "|".join(re.escape(k) for k in sorted(swaps, key=len, reverse=True))
    pattern = re.compile(r"(?<![\w.-])(" + keys + r")(?![\w-])|(?<=[+:-])(" + keys + r")(?=\s|$)")

    def swap(text: str) -> str:
        return pattern.sub(lambda m: swaps[m.group(1) or m.group(2)], text)

    return {**row, "instruction": swap(instr), "command": swap(cmd)}


def train_only(split_rows: dict[str, list[Row]], candidates: Iterable[Row], repeat: int,
               tools: set[str] | None = None, vary: bool = False, seed: int = 0) -> list[Row]:
    """Rows to add to train after the split: cleaned, deduplicated against train, limited to `tools`
    (first utility) if given, and never sharing a command or a description with dev/test, which keeps
    the grouped split leak-free. Each is repeated `repeat` times; with `vary`, every copy after the first
    has its concrete values changed (`vary_values`) and is checked against dev/test again."""
    from .metrics import command_keys, command_name

    held = [r for s in SPLITS if s != "train" for r in split_rows[s]]
    held_commands = {key for r in held for key in command_keys(r["command"])}
    held_descriptions = {description_key(r["instruction"]) for r in held}
    seen_train = {(r["instruction"], r["command"]) for r in split_rows["train"]}
    out: list[Row] = []
    for raw in candidates:
        r, _ = clean_row(raw)
        if (r is None or (tools is not None and command_name(r["command"]) not in tools)
                or not held_commands.isdisjoint(command_keys(r["command"]))
                or description_key(r["instruction"]) in held_descriptions
                or (r["instruction"], r["command"]) in seen_train):
            continue
        seen_train.add((r["instruction"], r["command"]))
        out.append(r)
        rng = random.Random(f"{seed}:{r['instruction']}")
        for _ in range(repeat - 1):
            v = vary_values(r, rng) if vary else r
            if v is not r and (not held_commands.isdisjoint(command_keys(v["command"]))
                               or description_key(v["instruction"]) in held_descriptions):
                v = r
            out.append(v)
    return out


def add_summaries(split_rows: dict[str, list[Row]], summaries: Iterable[Row], rows: Sequence[Row]) -> list[Row]:
    """Summary rows for train, everyday tools only (those NL2Bash uses: an obscure tool's one-line
    summary without its name is a guess), see `train_only`."""
    return train_only(split_rows, summaries, SUMMARY_REPEAT, everyday_tools(rows))


def _fingerprint(paths: Iterable[Path], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:  # a pair file given by name counts by its content, so its .gz copy counts as itself
            if p.is_dir():
                h.update(str(f.relative_to(p)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
            else:
                h.update(pair_file_name(f).encode() + b"\0" + pair_file_digest(f))
    return h.hexdigest()


def _write_jsonl(path: Path, rows: Iterable[Row]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_rows(data_dir: Path, extra: Sequence[Path] = (), strict: bool = False) -> list[Row]:
    """All raw rows from data_dir/tldr/pages, data_dir/nl2bash and extra pair files (JSONL or raw)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data directory not found: {data_dir}")
    tldr, nl2bash = data_dir / "tldr" / "pages", data_dir / "nl2bash"
    if not tldr.is_dir() and not nl2bash.is_dir():
        raise DataError(f"no training data in {data_dir}: expected tldr/pages/ and/or nl2bash/ subfolders")
    rows: list[Row] = []
    if tldr.is_dir():
        rows.extend(iter_tldr(tldr, strict=strict))
    if nl2bash.is_dir():
        rows.extend(iter_nl2bash(nl2bash))
    for p in extra:
        rows.extend(iter_pair_file(p, strict=strict))
    if not rows:
        raise DataError(f"no instruction/command pairs found under {data_dir}")
    return rows


def own_pair_files(path: Path | str) -> list[Path]:
    """The project's own pair files: every ``*.jsonl`` in a folder, or one file; [] if missing.

    An installed package holds them as ``*.jsonl.gz`` (setup.py compresses them); both are listed,
    sorted by their name without ``.gz``, so a checkout and an install read them in the same order.
    """
    path = Path(path)
    if path.is_dir():
        return sorted([*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")], key=pair_file_name)
    return [path] if path.is_file() else []


def build_pairs(
    data_dir: Path | str,
    out_dir: Path | str,
    extra_jsonl: Sequence[Path | str] = (),
    augment: bool = True,
    seed: int = 0,
    force: bool = False,
    strict: bool = False,
    core_pairs: Path | str | None = CORE_PAIRS,
    core_repeat: int | None = None,
) -> dict:
    """Build out_dir/{train,dev,test}.jsonl and pairs_manifest.json; returns the manifest.

    Reuses existing output when the input fingerprint (file contents + options + PAIRS_VERSION) is unchanged.
    Augmented copies (source "<source>_aug") are added to train only, for tldr rows with placeholders;
    train also gets tldr page summaries (``add_summaries``) and this project's own everyday pairs
    (`core_pairs`, ``train_only``), and keeps half of NL2Bash's find rows (``thin_find``) and none of the targets
    ``drop_unwanted_targets`` removes.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    extra = [Path(p) for p in extra_jsonl]
    for p in extra:
        if not p.is_file():
            raise DataError(f"pair file not found: {p}")
    core_repeat = CORE_REPEAT if core_repeat is None else core_repeat
    core_files = own_pair_files(core_pairs) if core_pairs is not None and core_repeat else []
    core = Path(core_pairs) if core_files else None
    inputs = [p for p in (data_dir / "tldr" / "pages", data_dir / "nl2bash") if p.exists()] + extra + core_files
    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (sys.modules[__name__], _sources, _text)))
    params = {"augment": augment, "seed": seed, "version": PAIRS_VERSION, "code": code.hexdigest(),
              "core_repeat": core_repeat}
    fingerprint = _fingerprint(inputs, params)
    manifest_path = out_dir / "pairs_manifest.json"
    if not force and manifest_path.is_file() and all((out_dir / f"{s}.jsonl").is_file() for s in SPLITS):
        old = json.loads(manifest_path.read_text())
        if old.get("fingerprint") == fingerprint:
            print(f"pairs: reusing {out_dir} ({_sizes_line(old)})")
            return old

    raw = load_rows(data_dir, extra, strict)
    rows, dropped = clean_rows(raw)
    names = assign_splits(rows)
    split_rows: dict[str, list[Row]] = {s: [r for r, n in zip(rows, names, strict=True) if n == s] for s in SPLITS}
    if augment:
        seen = {(r["instruction"], r["command"]) for r in rows}
        extra_rows = []
        for r in split_rows["train"]:
            a = augment_row(r, seed) if r["source"] == "tldr" else None
            if a is not None and (a["instruction"], a["command"]) not in seen:
                seen.add((a["instruction"], a["command"]))
                extra_rows.append(a)
        split_rows["train"].extend(extra_rows)
    split_rows = name_tldr_tools(split_rows, rows)
    split_rows["train"] = drop_unwanted_targets(thin_find(split_rows["train"]))
    if (data_dir / "tldr" / "pages").is_dir():
        split_rows["train"].extend(add_summaries(split_rows, iter_tldr_summaries(data_dir / "tldr" / "pages"), rows))
    if core_files:
        own = (row for f in core_files for row in iter_jsonl_pairs(f, strict=strict, source="core"))
        split_rows["train"].extend(train_only(split_rows, own, core_repeat, vary=True, seed=seed))

    out_dir.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        _write_jsonl(out_dir / f"{s}.jsonl", split_rows[s])
    manifest = {
        "version": PAIRS_VERSION,
        "fingerprint": fingerprint,
        "inputs": [str(p) for p in inputs],
        "options": {"augment": augment, "seed": seed, "core_pairs": str(core) if core else None,
                    "core_repeat": core_repeat if core else 0},
        "raw_rows": len(raw),
        "raw_by_source": count_by(raw, "source"),
        "dropped": dropped,
        "sizes": {s: len(split_rows[s]) for s in SPLITS},
        "by_source": {s: count_by(split_rows[s], "source") for s in SPLITS},
        "by_platform": {s: count_by(split_rows[s], "platform") for s in SPLITS},
        "files": {s: f"{s}.jsonl" for s in SPLITS},
    }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(manifest_path)
    print(f"pairs: wrote {out_dir} ({_sizes_line(manifest)})")
    return manifest


def _sizes_line(manifest: dict) -> str:
    return ", ".join(f"{s} {manifest['sizes'][s]}" for s in SPLITS)
