"""What a shell command does, part by part, in the words of the manual pages on this machine.

`explain(command)` parses the command (pipelines, ``&&``/``||``/``;``, redirections, ``$(...)``,
``sudo``/``env``/``xargs``/``find -exec`` wrappers, quoting) with `tinyllm.knowledge.shellparse` and
returns an `Explanation`: a list of `Part` objects, each with its span in the command, its kind, the
text that explains it and where that text comes from:

* the danger warnings of `tinyllm.knowledge.safety` first (kind ``warning``);
* for each program, its one-line summary: the NAME line of its local man page (`manpages`), else the
  tldr summary shipped in the model's retrieval index, else the shell's own ``help -d`` for a bash
  builtin, else "no manual page found for X";
* for each option, the manual's own paragraph (``-xzvf`` split into letters, ``--opt=value`` and an
  option's value word kept with it, sub-commands such as ``git commit`` read from ``git-commit(1)``);
  an option the page does not document says so;
* operators and redirections, explained by the shell's rules (``|``, ``&&``, ``2>&1``, ``>``...).

Text the parser cannot read (an unclosed quote or ``$(``, an operator with no command on one side)
is explained up to that point, and an ``error`` part says where parsing stopped. Never raises for
any input string.

Standard library only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import manpages, shellparse
from .manpages import Entry, ManualPage
from .shellparse import Token, lex

__all__ = ["Explanation", "Part", "explain", "tldr_summaries"]

MAX_TEXT = 240
"""Longest explanation text of one part, in characters (cut at a sentence end when possible)."""
MAX_DEPTH = 4

# Programs whose arguments end with a command that they run, and their options that take a value (for when
# their page is not installed): shellparse's wrappers and command runners, and runuser (``runuser -u USER --
# CMD``; the validator reads it as a program, since ``runuser -l USER -c CMD`` names no command word).
WRAPPERS = frozenset({*shellparse.WRAPPERS, *shellparse.COMMAND_RUNNERS, "runuser"})
_WRAPPER_ARGS: dict[str, frozenset[str]] = {**shellparse.WRAPPER_OPTIONS, **shellparse.COMMAND_RUNNERS}
_WRAPPER_OPERANDS = shellparse.RUNNER_OPERANDS
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish"})
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_ASSIGN_RE = shellparse.ASSIGN_RE
_NUMBER_RE = re.compile(r"^-\d+(?:\.\d+)?[A-Za-z]?$")
_BSD_LETTERS = {"ps"}  # `ps aux`: letters without a dash are options of their own, documented as words
_OLD_STYLE = {"tar", "ar"}  # `tar xzvf f.tgz`: the first word is options without their dash
_BASH_BUILTINS = frozenset({
    "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete", "compopt",
    "continue", "declare", "dirs", "disown", "enable", "eval", "exec", "exit", "export", "fc", "fg", "getopts",
    "hash", "help", "history", "jobs", "let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd",
    "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", ".", "suspend", "times", "trap",
    "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
})

_OPERATORS = {
    "|": "pipe: the output of {left} becomes the input of {right}",
    "|&": "pipe: the output and the error output of {left} become the input of {right}",
    "&&": "run {right} only if {left} succeeds",
    "||": "run {right} only if {left} fails",
    ";": "run {left}, then {right}, whatever the result",
    ";;": "end of a case branch",
    "&": "run {left} in the background (the shell does not wait for it)",
    "(": "start a subshell: the commands inside run in a copy of the shell",
    ")": "end of the subshell",
}


@dataclass
class Part:
    """One explained piece of a command.

    `start`/`end`: the span in the command (character offsets; a letter of ``-xzf`` has its own span);
    `kind`: warning, program, subcommand, option, argument, operator, redirection, assignment,
    substitution, comment or error; `label`: the text explained, as shown (``-f logs.tar.gz``); `text`:
    the explanation; `source`: where the text comes from (``man:tar(1)``, ``tldr``, ``bash help``,
    ``shell``, ``safety``, or "" when nothing documents it); `depth`: nesting level (a command run by
    ``sudo``, ``xargs``, ``find -exec`` or inside ``$(...)`` is one deeper); `program`: the program an
    option belongs to; `found`: False when the part was looked up and not found.
    """

    start: int
    end: int
    kind: str
    label: str
    text: str
    source: str = ""
    depth: int = 0
    program: str = ""
    found: bool = True


@dataclass
class Explanation:
    """The parts of one command, warnings first; `stopped_at` is where parsing stopped (None: it did not)."""

    command: str
    parts: list[Part] = field(default_factory=list)
    stopped_at: int | None = None

    @property
    def warnings(self) -> list[str]:
        """The danger warnings' texts."""
        return [p.text for p in self.parts if p.kind == "warning"]

    def to_json(self) -> dict[str, object]:
        """A JSON-able form: command, warnings, parts (with spans and sources), stopped_at."""
        return {"command": self.command, "warnings": self.warnings, "stopped_at": self.stopped_at,
                "parts": [asdict(p) for p in self.parts]}


# ------------------------------------------------------------------------------------------- helpers


def brief(text: str, limit: int = MAX_TEXT) -> str:
    """The first paragraph of `text`, cut at a sentence end (or a word, with "...") to at most `limit` chars."""
    para = " ".join(text.split("\n\n", 1)[0].split())
    if len(para) <= limit:
        return para
    cut = -1
    for m in re.finditer(r"[.;:](?=\s)", para[: limit]):
        if m.end() >= 60:
            cut = m.end()
    if cut > 0:
        return para[:cut]
    return para[: limit - 3].rsplit(" ", 1)[0] + "..."


def _positions(command: str, toks: list[Token]) -> list[tuple[Token, int, int]]:
    """Each token with its span: lex skips only whitespace, so each raw text is found in order."""
    out: list[tuple[Token, int, int]] = []
    pos = 0
    for tok in toks:
        start = command.find(tok.raw, pos)
        if start < 0:
            start = pos
        end = start + len(tok.raw)
        out.append((tok, start, end))
        pos = end
    return out


def _unclosed(command: str) -> tuple[int, str] | None:
    """(position, what) of the first quote, ``$(`` or backtick that is never closed, or None."""
    stack: list[tuple[str, int]] = []
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        top = stack[-1][0] if stack else ""
        if top == "'":
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 2
            continue
        elif top == '"' and c == '"':
            stack.pop()
        elif top == "`" and c == "`":
            stack.pop()
        elif command.startswith("$(", i):
            stack.append(("$(", i))
            i += 2
            continue
        elif c == "(" and top in ("$(", "("):
            stack.append(("(", i))
        elif c == ")" and top in ("$(", "("):
            stack.pop()
        elif c in "'\"`" and top != '"' or (c == "`" and top == '"'):
            stack.append((c, i))
        elif c == "#" and not stack and (i == 0 or command[i - 1].isspace()):
            break
        i += 1
    if not stack:
        return None
    what, pos = stack[0]
    if what == "(":
        what = "$("
    names = {"'": "the ' quote", '"': 'the " quote', "`": "the ` command substitution", "$(": "the $( command substitution"}
    return pos, names[what]


# Each redirection operator's meaning without a descriptor copy: (text, the descriptor it acts on when
# no number is written). {src} is that descriptor, {t} the target word.
_REDIRECTIONS: dict[str, tuple[str, str]] = {
    "&>": ("write standard output and error output to {t} (replacing it)", ""),
    "&>>": ("append standard output and error output to {t}", ""),
    ">": ("write {src} to {t} (replacing its contents)", "standard output"),
    ">|": ("write {src} to {t}, replacing it even with noclobber set", "standard output"),
    ">>": ("append {src} to {t}", "standard output"),
    "<": ("read {src} from {t}", "standard input"),
    "<>": ("open {t} for reading and writing as {src}", "standard input"),
    "<<<": ("give {t} as standard input (here-string)", ""),
}
_HERE_DOCUMENT = ("here-document: standard input is the lines that follow, up to a line {t}", "")  # << and <<-
_FD_NAMES = {"0": "standard input", "1": "standard output", "2": "error output"}


def _redirection_text(op: str, target: str) -> str:
    """The shell's meaning of a redirection operator (with its target word)."""
    m = re.fullmatch(r"(\d*)(>>|>&|>\||<<<|<<-?|<>|<&|&>>|&>|>|<)(&?\d+|&-|-)?", op)
    if m is None:
        return "redirection"
    fd, kind, dup = m.groups()
    src = _FD_NAMES.get(fd, f"file descriptor {fd}") if fd else ""
    if dup or kind in (">&", "<&"):
        src = src or ("standard output" if ">" in kind else "standard input")
        dest = (dup or target).lstrip("&")
        if dest == "-":
            return f"close {src}"
        if kind == ">&" and not dest.isdigit():
            return _REDIRECTIONS["&>"][0].format(t=dest)
        where = _FD_NAMES.get(dest, f"file descriptor {dest}") if dest.isdigit() else dest
        return f"send {src} to where {where} goes" if ">" in kind else f"read {src} from {where}"
    text, default_src = _REDIRECTIONS.get(kind, _HERE_DOCUMENT)
    return text.format(src=src or default_src, t=target or "the file")


_SUMMARY_CACHE: dict[str, dict[str, str]] = {}


def _read_npy_json(zf: object, member: str) -> object:
    """A JSON document stored as a uint8 .npy array inside an .npz (the retrieval index's format)."""
    raw = zf.read(member)  # type: ignore[attr-defined]
    if not raw.startswith(b"\x93NUMPY"):
        raise ValueError(f"{member} is not an .npy array")
    major = raw[6]
    header_len = int.from_bytes(raw[8:10], "little") if major == 1 else int.from_bytes(raw[8:12], "little")
    offset = (10 if major == 1 else 12) + header_len
    return json.loads(raw[offset:].decode("utf-8"))


def tldr_summaries(index_path: str | Path | None, cache_dir: Path | None = None) -> dict[str, str]:
    """{program: tldr one-line summary} from the ``tldr_summary`` rows of a retrieval index (``.idx``);
    {} when there is none. Cached in memory and in `cache_dir`, keyed by the index file's size and mtime."""
    if not index_path:
        return {}
    path = Path(index_path)
    try:
        st = path.stat()
    except OSError:
        return {}
    key = f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}"
    if key in _SUMMARY_CACHE:
        return _SUMMARY_CACHE[key]
    import zlib

    cache = cache_dir / f"tldr-{zlib.crc32(key.encode()):08x}{st.st_size:x}.json" if cache_dir else None
    if cache is not None:
        try:
            found = json.loads(cache.read_text(encoding="utf-8"))
            if isinstance(found, dict):
                _SUMMARY_CACHE[key] = found
                return found
        except (OSError, ValueError):
            pass
    import zipfile

    summaries: dict[str, str] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            rows = _read_npy_json(zf, "rows.npy")
        if isinstance(rows, dict):
            for src, cmd, ins in zip(rows.get("source", []), rows.get("command", []), rows.get("instruction", [])):
                if src == "tldr_summary" and isinstance(cmd, str) and isinstance(ins, str):
                    summaries.setdefault(cmd, ins)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        summaries = {}
    _SUMMARY_CACHE[key] = summaries
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(summaries, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cache)
        except OSError:
            pass
    return summaries


def _builtin_help(name: str) -> str:
    """bash's one-line description of a builtin (``help -d cd``), or ""."""
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None or name not in _BASH_BUILTINS:
        return ""
    try:
        out = subprocess.run([bash, "--norc", "--noprofile", "-c", 'help -d -- "$1"', "bash", name],
                             capture_output=True, text=True, timeout=5, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    line = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    return line.split(" - ", 1)[1].strip().rstrip(".") if " - " in line else ""


# --------------------------------------------------------------------------------------------- parser


Word = tuple[Token, int, int]


class _Explainer:
    """Walks the tokens of one command line and collects parts (one instance per `explain` call)."""

    def __init__(self, command: str, index_path: str | Path | None, cache_dir: Path | None,
                 pages: Callable[[str], ManualPage | None] | None) -> None:
        self.command = command
        self.index_path = index_path
        self.cache_dir = cache_dir
        self.parts: list[Part] = []
        self._pages: dict[str, ManualPage | None] = {}
        self._custom = pages is not None
        self._find = pages or (lambda name: manpages.find_page(name, cache_dir=cache_dir))
        self.stopped_at: int | None = None

    # -- pages ------------------------------------------------------------------------------------

    def page(self, name: str, ask_man: bool = True) -> ManualPage | None:
        if name not in self._pages:
            try:
                self._pages[name] = self._find(name) if ask_man or self._custom else \
                    manpages.find_page(name, cache_dir=self.cache_dir, ask_man=False)
            except Exception:  # a broken man installation must not break explanations
                self._pages[name] = None
        return self._pages[name]

    def prefetch(self, names: list[str]) -> None:
        """Render the pages of several programs in parallel (first lookups of a pipeline)."""
        todo = [n for n in dict.fromkeys(names) if n and n not in self._pages]
        if len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(4, len(todo))) as pool:
                for name, page in zip(todo, pool.map(self._safe_find, todo)):
                    self._pages[name] = page

    def _safe_find(self, name: str) -> ManualPage | None:
        try:
            return self._find(name)
        except Exception:
            return None

    def add(self, start: int, end: int, kind: str, label: str, text: str, source: str = "", depth: int = 0,
            program: str = "", found: bool = True) -> None:
        self.parts.append(Part(start, end, kind, label, text, source, depth, program, found))

    # -- the line ---------------------------------------------------------------------------------

    def run(self, text: str, offset: int = 0, depth: int = 0) -> None:
        """Explain `text` (a whole line, or the inside of ``$(...)`` at `offset`)."""
        words = _positions(text, lex(text))
        words = [(t, s + offset, e + offset) for t, s, e in words]
        segments: list[tuple[list[Word], Word | None]] = []  # (simple command words, operator after it)
        current: list[Word] = []
        i = 0
        while i < len(words):
            tok, s, e = words[i]
            if tok.kind == "word" and tok.value.startswith("#") and not tok.quoted:
                self.add(s, offset + len(text), "comment", text[s - offset:].strip(), "comment: ignored by the shell",
                         "shell", depth)
                words = words[:i]
                break
            if tok.kind == "op" and ("<" in tok.value or ">" in tok.value):
                current.append(words[i])
                nxt = words[i + 1] if i + 1 < len(words) else None
                needs_target = not re.search(r"(?:&\d+|&-)$", tok.value)
                if needs_target:
                    if nxt is None or nxt[0].kind != "word":
                        self.stop(e, f"parsing stopped at column {e + 1}: no file after {tok.value!r}", depth)
                        segments.append((current, None))
                        self._segments(segments, depth)
                        return
                    current.append(nxt)
                    i += 2
                    continue
                i += 1
                continue
            if tok.kind == "op":
                if tok.value in ("(", ")"):
                    if current:
                        segments.append((current, None))
                        current = []
                    segments.append(([], words[i]))
                    i += 1
                    continue
                if not current and not (segments and segments[-1][1] is not None and segments[-1][1][0].value == ")"):
                    self._segments(segments, depth)
                    self.stop(s, f"parsing stopped at column {s + 1}: {tok.value!r} has no command before it", depth)
                    return
                segments.append((current, words[i]))
                current = []
                i += 1
                continue
            current.append(words[i])
            i += 1
        if current:
            segments.append((current, None))
        elif segments and segments[-1][1] is not None and segments[-1][1][0].value not in ("&", ";", ")", "("):
            op = segments[-1][1]
            self._segments(segments, depth)
            self.stop(op[2], f"parsing stopped at column {op[2] + 1}: {op[0].value!r} has no command after it", depth)
            return
        self._segments(segments, depth)

    def stop(self, pos: int, message: str, depth: int) -> None:
        if self.stopped_at is None:
            self.stopped_at = pos
        self.add(pos, pos, "error", "", message, "", depth)

    def _segments(self, segments: list[tuple[list[Word], Word | None]], depth: int) -> None:
        names = [self._program_of(words) for words, _ in segments]
        self.prefetch([n for n in names if n])
        for k, (words, op) in enumerate(segments):
            if words:
                self.simple(words, depth)
            if op is not None:
                left = names[k] or "the command before it"
                right = next((n for n in names[k + 1:] if n), "the next command")
                template = _OPERATORS.get(op[0].value, "shell operator")
                self.add(op[1], op[2], "operator", op[0].value,
                         template.format(left=f"`{left}`" if names[k] else left,
                                         right=f"`{right}`" if right != "the next command" else right),
                         "shell", depth)

    @staticmethod
    def _program_of(words: list[Word]) -> str:
        for tok, _, _ in words:
            if tok.kind == "op":
                continue
            if _ASSIGN_RE.match(tok.value) and not tok.quoted:
                continue
            return tok.value.rsplit("/", 1)[-1] if tok.value else ""
        return ""

    # -- a simple command -------------------------------------------------------------------------

    def simple(self, words: list[Word], depth: int) -> None:
        """Explain one simple command: assignments, redirections, the program and its arguments."""
        plain: list[Word] = []
        i = 0
        while i < len(words):
            tok, s, e = words[i]
            if tok.kind == "op":
                target = words[i + 1] if i + 1 < len(words) and words[i + 1][0].kind == "word" and \
                    not re.search(r"(?:&\d+|&-)$", tok.value) else None
                end = target[2] if target else e
                label = self.command[s:end]
                self.add(s, end, "redirection", label, _redirection_text(tok.value, target[0].value if target else ""),
                         "shell", depth)
                if target is not None:
                    self.substitutions(target, depth)
                i += 2 if target else 1
                continue
            plain.append(words[i])
            i += 1
        self.command_words(plain, depth)

    def command_words(self, words: list[Word], depth: int) -> None:
        i = 0
        while i < len(words) and _ASSIGN_RE.match(words[i][0].value) and not words[i][0].raw.startswith(("'", '"')):
            tok, s, e = words[i]
            name = tok.value.split("=", 1)[0]
            text = (f"set the environment variable {name} for this command" if len(words) > i + 1
                    else f"set the shell variable {name}")
            self.add(s, e, "assignment", tok.raw, text, "shell", depth)
            self.substitutions(words[i], depth)
            i += 1
        if i >= len(words):
            return
        if depth > MAX_DEPTH:
            return
        tok, s, e = words[i]
        if "$(" in tok.raw or "`" in tok.raw or "$" in tok.value:
            self.add(s, e, "program", tok.raw, "a program named by an expansion: known only when the command runs",
                     "shell", depth, found=False)
            self.substitutions(words[i], depth)
            self.arguments(None, "", words[i + 1:], depth)
            return
        name = tok.value.rsplit("/", 1)[-1]
        page = self.page(name)
        self.program(name, page, s, e, tok.raw, depth)
        rest = words[i + 1:]
        if name in WRAPPERS:
            self.wrapper(name, page, rest, depth)
        elif name in _SHELLS:
            self.shell_c(name, page, rest, depth)
        else:
            self.arguments(page, name, rest, depth)

    def program(self, name: str, page: ManualPage | None, s: int, e: int, raw: str, depth: int) -> None:
        if page is not None:
            self.add(s, e, "program", raw, page.summary or f"see {page.ref}", f"man:{page.ref}", depth, name)
            return
        summary = tldr_summaries(self.index_path, self.cache_dir).get(name, "")
        if summary:
            self.add(s, e, "program", raw, summary, "tldr", depth, name)
            return
        builtin = _builtin_help(name)
        if builtin:
            self.add(s, e, "program", raw, f"shell builtin: {builtin}", "bash help", depth, name)
            return
        import shutil

        where = "" if shutil.which(name) else f"; no program named {name} on PATH either"
        if shutil.which("man") is None:
            where += " (man is not installed)"
        self.add(s, e, "program", raw, f"no manual page found for {name}{where}", "", depth, name, found=False)

    # -- arguments --------------------------------------------------------------------------------

    def lookup(self, pages: list[ManualPage], flag: str) -> tuple[Entry | None, ManualPage | None]:
        for page in pages:
            entry = page.entry(flag)
            if entry is not None:
                return entry, page
        return None, pages[0] if pages else None

    def option_part(self, pages: list[ManualPage], flag: str, s: int, e: int, label: str, depth: int,
                    program: str) -> Entry | None:
        entry, page = self.lookup(pages, flag)
        if not pages:
            return None
        if entry is None:
            self.add(s, e, "option", label, f"{flag}: not documented in {pages[0].ref}", f"man:{pages[0].ref}", depth,
                     program, found=False)
        else:
            assert page is not None
            self.add(s, e, "option", label, brief(entry.text), f"man:{page.ref}", depth, program)
        return entry

    def arguments(self, page: ManualPage | None, name: str, words: list[Word], depth: int,
                  stop_at_operand: bool = False) -> int:
        """Explain options and operands; returns how many words were used (all unless stop_at_operand,
        which stops at the first operand: a wrapper's command)."""
        pages = [page] if page is not None else []
        i = 0
        operands = 0
        ended = False
        while i < len(words):
            tok, s, e = words[i]
            v = tok.value
            raw_quoted = tok.quoted or tok.raw[:1] in "'\"$`"
            if not ended and v == "--" and not raw_quoted:
                self.add(s, e, "option", "--", "end of the options: the words after it are operands", "shell", depth, name)
                ended = True
                i += 1
                continue
            is_opt = (not ended and not raw_quoted and len(v) > 1 and v[0] == "-"
                      and not (_NUMBER_RE.match(v) and not (pages and pages[0].entry(v))))
            if is_opt and pages:
                i = self.option(pages, name, words, i, depth)
                continue
            if is_opt:
                self.add(s, e, "option", tok.raw, "", "", depth, name, found=False)
                i += 1
                continue
            if stop_at_operand:
                return i
            # the first operand may be a sub-command (git commit) or old-style options (tar xzf, ps aux)
            if operands == 0 and not raw_quoted and page is not None:
                if name in _OLD_STYLE and v.isalpha() and i == 0:
                    i = self.letters(pages, name, words, i, depth, "-")
                    operands += 1
                    continue
                if name in _BSD_LETTERS and v.isalpha():
                    i = self.letters(pages, name, words, i, depth, "")
                    continue
                sub = self.subcommand(name, page, words[i], depth)
                if sub is not None:
                    pages = [sub, page] if sub is not page else pages
                    operands += 1
                    i += 1
                    continue
            if name == "find" and v in _FIND_EXEC:
                i += 1
                continue
            self.add(s, e, "argument", tok.raw, "", "", depth, name)
            self.substitutions(words[i], depth)
            operands += 1
            i += 1
        return i

    def subcommand(self, name: str, page: ManualPage, word: Word, depth: int) -> ManualPage | None:
        tok, s, e = word
        v = tok.value
        if not re.fullmatch(r"[a-z][a-z0-9-]*", v):
            return None
        # A sub-command page is tried only when the program's page names it (git(1) cites git-commit(1)).
        sub = self.page(f"{name}-{v}", ask_man=False) if page.mentions(f"{name}-{v}") else None
        if sub is not None:
            self.add(s, e, "subcommand", tok.raw, sub.summary or f"see {sub.ref}", f"man:{sub.ref}", depth, name)
            return sub
        entry = page.word(v)
        if entry is not None and entry.text:
            self.add(s, e, "subcommand", tok.raw, brief(entry.text), f"man:{page.ref}", depth, name)
            return page
        return None

    def letters(self, pages: list[ManualPage], name: str, words: list[Word], i: int, depth: int, dash: str) -> int:
        """Old-style or BSD option letters (``tar xzvf``, ``ps aux``): each letter looked up on its own."""
        tok, s, e = words[i]
        consumed = i + 1
        for k, ch in enumerate(tok.value):
            flag = dash + ch
            pos = s + k
            entry = None
            for page in pages:
                entry = page.entry(flag) if dash else page.word(flag)
                if entry is not None:
                    break
            if entry is None:
                self.add(pos, pos + 1, "option", ch, f"{ch}: not documented in {pages[0].ref}", f"man:{pages[0].ref}",
                         depth, name, found=False)
                continue
            label, end = ch, pos + 1
            if dash and entry.argument and not entry.optional and consumed < len(words):
                vt, vs, ve = words[consumed]
                if vt.kind == "word":
                    label, consumed = f"{ch} {vt.raw}", consumed + 1
            self.add(pos, end, "option", label, brief(entry.text), f"man:{page.ref}", depth, name)
        return consumed

    def option(self, pages: list[ManualPage], name: str, words: list[Word], i: int, depth: int) -> int:
        """Explain the option word at i (and its value); returns the index of the next word."""
        tok, s, e = words[i]
        v = tok.value
        nxt = words[i + 1] if i + 1 < len(words) else None

        def value_of(entry: Entry | None) -> bool:
            return bool(entry and entry.argument and not entry.optional and nxt is not None)

        if v.startswith("--") or len(v) == 2 or self.lookup(pages, v)[0] is not None or name in shellparse.SINGLE_DASH_LONG:
            flag = v.split("=", 1)[0] if v.startswith("--") else v
            entry, _ = self.lookup(pages, flag)
            takes = "=" not in v and value_of(entry) and not (name == "find" and flag in _FIND_EXEC)
            end = nxt[2] if takes and nxt else e
            label = self.command[s:end]
            self.option_part(pages, flag, s, end, label, depth, name)
            if name == "find" and flag in _FIND_EXEC:
                return self.find_exec(words, i + 1, depth)
            return i + 2 if takes else i + 1
        # combined short options: -czf, -n5, -i.bak
        k = 1
        consumed = i + 1
        while k < len(v):
            flag = "-" + v[k]
            pos = s + k
            entry, _ = self.lookup(pages, flag)
            rest = v[k + 1:]
            if entry is not None and entry.argument and (rest or not entry.optional):
                if rest:
                    self.option_part(pages, flag, pos, s + len(tok.raw), "-" + tok.raw[k:], depth, name)
                    return consumed
                if consumed < len(words) and words[consumed][0].kind == "word":
                    vt, _, ve = words[consumed]
                    self.option_part(pages, flag, pos, ve, f"{flag} {vt.raw}", depth, name)
                    return consumed + 1
            self.option_part(pages, flag, pos, pos + 1, flag, depth, name)
            k += 1
        return consumed

    def find_exec(self, words: list[Word], i: int, depth: int) -> int:
        """The command of ``find -exec ... ;`` / ``+``: explained one level deeper; returns the index after it."""
        j = i
        while j < len(words) and words[j][0].value not in (";", "+"):
            j += 1
        inner = [w for w in words[i:j] if w[0].value != "{}"]
        self.command_words(inner, depth + 1)
        for w in words[i:j]:
            if w[0].value == "{}":
                self.add(w[1], w[2], "argument", "{}", "replaced by the path of each file found", "man:find(1)", depth + 1,
                         "find")
        if j < len(words):
            tok, s, e = words[j]
            text = ("end of the -exec command: run it once per file" if tok.value == ";"
                    else "end of the -exec command: run it with as many files at once as fit")
            self.add(s, e, "argument", tok.raw, text, "man:find(1)", depth, "find")
            return j + 1
        return j

    def wrapper(self, name: str, page: ManualPage | None, words: list[Word], depth: int) -> None:
        """sudo/env/xargs/timeout...: their own options, then the command they run, one level deeper."""
        if page is None:
            i = 0
            while i < len(words) and words[i][0].value.startswith("-") and words[i][0].value != "--":
                i += 2 if words[i][0].value in _WRAPPER_ARGS.get(name, ()) else 1
            i += i < len(words) and words[i][0].value == "--"
        else:
            i = self.arguments(page, name, words, depth, stop_at_operand=True)
        if name in ("env", "sudo"):
            while i < len(words) and _ASSIGN_RE.match(words[i][0].value):
                tok, s, e = words[i]
                self.add(s, e, "assignment", tok.raw, f"set the environment variable {tok.value.split('=', 1)[0]} "
                         "for the command", "shell", depth + 1)
                i += 1
        for _ in range(_WRAPPER_OPERANDS.get(name, 0)):
            if i < len(words):
                tok, s, e = words[i]
                self.add(s, e, "argument", tok.raw, "", "", depth, name)
                i += 1
        if i < len(words):
            self.command_words(words[i:], depth + 1)

    def shell_c(self, name: str, page: ManualPage | None, words: list[Word], depth: int) -> None:
        """``sh -c 'SCRIPT'``: the script is explained too, one level deeper."""
        for k, (tok, _s, _e) in enumerate(words):
            if tok.value == "-c" and k + 1 < len(words):
                self.arguments(page, name, words[:k + 1], depth)
                script_tok, ss, se = words[k + 1]
                inner_offset = ss + 1 if script_tok.raw[:1] in "'\"" else ss
                if script_tok.raw[:1] != '"' or "\\" not in script_tok.raw:
                    self.run(script_tok.value, inner_offset, depth + 1)
                self.arguments(page, name, words[k + 2:], depth)
                return
        self.arguments(page, name, words, depth)

    def substitutions(self, word: Word, depth: int) -> None:
        """``$(...)`` and backticks inside a word (not in single quotes): explained one level deeper."""
        tok, s, _ = word
        if tok.raw.startswith("'") or depth >= MAX_DEPTH:
            return
        for start, end in shellparse.substitutions(tok.raw):
            inner = (start + 2, end - 1) if tok.raw[start] == "$" else (start + 1, end - 1)
            if tok.raw.startswith("$((", start):
                continue  # arithmetic, not a command
            self.add(s + start, s + end, "substitution", tok.raw[start:end],
                     "command substitution: replaced by the output of the command inside", "shell", depth)
            self.run(tok.raw[inner[0]:inner[1]], s + inner[0], depth + 1)


def explain(command: str, *, index_path: str | Path | None = None, cache_dir: Path | None = None,
            pages: Callable[[str], ManualPage | None] | None = None) -> Explanation:
    """Explain `command` part by part (see the module docstring). `index_path`: the model's retrieval
    index, for tldr summaries; `cache_dir`: where parsed man pages and summaries are cached (default:
    the user cache dir); `pages`: a page finder (name -> ManualPage | None) replacing `manpages.find_page`."""
    command = command.rstrip("\n")
    result = Explanation(command)
    try:
        from .safety import classify

        warnings = [w.message for w in classify(command)]
    except Exception:
        warnings = []
    ex = _Explainer(command, index_path, cache_dir if cache_dir is not None else manpages.default_cache_dir(), pages)
    for w in warnings:
        ex.add(0, len(command), "warning", command, w, "safety")
    problem = _unclosed(command)
    text = command if problem is None else command[: problem[0]]
    try:
        ex.run(text)
    except RecursionError:
        ex.stop(0, "parsing stopped: the command is nested too deeply", 0)
    if problem is not None:
        ex.stop(problem[0], f"parsing stopped at column {problem[0] + 1}: {problem[1]} opened there is never closed", 0)
    warnings_first = [p for p in ex.parts if p.kind == "warning"]
    errors = [p for p in ex.parts if p.kind == "error"]
    rest = [p for p in ex.parts if p.kind not in ("warning", "error")]
    rest.sort(key=lambda p: (p.start, p.depth))
    result.parts = warnings_first + rest + errors
    result.stopped_at = ex.stopped_at
    return result
