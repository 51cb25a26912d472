"""The manual pages on this machine: find a page, render it to plain text, and read its parts.

One module for every reader of man pages: the pretraining corpus renders pages with `render_man_file`
(`tinyllm.train.corpus`), `nl2cmd explain` looks up a program's summary and the text of each option it
uses, and anything that needs to know whether a program has an option asks `ManualPage.option`.

* `find_page(program, subcommand=None)` locates a page (sections 1 and 8, by file name under the man
  roots, then ``man -w``), renders it once with ``man`` and caches the parsed page in the user cache
  directory, keyed by the page file's path, mtime and size (a new package version renders again).
* `ManualPage.summary` is the NAME line's description ("tar - an archiving utility" -> "an archiving
  utility"); `ManualPage.option("-f")` the manual's paragraph for that option, or None.

Option paragraphs are read from the rendered text, not the roff source, so man(7) and mdoc(7) pages
alike work: an *entry* is a tag line (``-x, --extract``, ``-f, --file=ARCHIVE``, ``-name pattern``,
``--verbose, -v``, ``-i[SUFFIX], --in-place[=SUFFIX]``, several tag lines in a row) followed by a more
indented body, or a tag and its text on one line separated by two or more spaces (``-l     use a long
listing format``). Tags that are a plain word (``ps``'s BSD options ``a``, ``systemctl``'s ``start
UNIT...``) are kept apart, as `ManualPage.word`.

Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .text import ascii_typography, strip_control

__all__ = [
    "Entry",
    "ManualPage",
    "clean_man_text",
    "find_page",
    "find_pages",
    "locate_page",
    "parse_page",
    "render_man_file",
]

SECTIONS = ("1", "8")
CACHE_VERSION = 3
"""Bump when the parsed form changes: cached pages of another version are parsed again."""
DEFAULT_ROOTS = ("/usr/local/share/man", "/usr/share/man", "/usr/local/man")

_OVERSTRIKE_RE = re.compile(r".\x08")
_BLANK_RUN_RE = re.compile(r"\n{3,}")
_HEADER_RE = re.compile(r"^\S.*\(\w+\)\s*$")  # "LS(1)   User Commands   LS(1)" and the footer "... LS(1)"
_NAME_OK = re.compile(r"[A-Za-z0-9_][\w.+@-]*")
# One option of a tag: "-f", "--file", "--[no-]verify", "-?", "+F" and what follows it.
_FLAG_RE = re.compile(r"(--?|\+)((?:\[no-?\])?[A-Za-z0-9?#@.][\w.+#@?-]*)(.*)")  # "--[no-]color", "-[no]header"
_WORD_TAG_RE = re.compile(r"[a-z][a-z0-9-]*(?=$|\s)")
_BULLET_RE = re.compile(r"^(?:[o\u25cb\u2022*\u00b7]|\d+\.)\s+(?=[-+])")
_GAP_RE = re.compile(r"\S(\s{2,})\S")
_REF_RE = re.compile(r"([A-Za-z0-9_][\w.+-]*)\(\d\w*\)")
_STREAM_RE = re.compile(r"-[\w-]+:(?:[avsdt](?::\d+)?|\d+)")
_ITEM_SPLIT_RE = re.compile(r"\s*(?:,|\s/|\bor\b)\s+(?=[-+])")


# ------------------------------------------------------------------------------------------ rendering


def clean_man_text(text: str) -> str:
    """Rendered man page -> plain text: overstrike and escapes removed, ASCII typography, no header/footer."""
    text = _OVERSTRIKE_RE.sub("", text)
    # man renders '-' in options as U+2010 in UTF-8 locales: commands must come out as ASCII.
    text = ascii_typography(strip_control(text)).replace("\u00ad", "")
    lines = [ln.rstrip() for ln in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if lines and _HEADER_RE.match(lines[0]):
        lines.pop(0)
    if lines and _HEADER_RE.match(lines[-1]):
        lines.pop()
    return _BLANK_RUN_RE.sub("\n\n", "\n".join(lines)).strip()


def render_man_file(path: Path | str, timeout: float = 60.0) -> str:
    """Render one man page file to cleaned plain text, 80 columns (empty string if man fails)."""
    import subprocess

    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="", MANPAGER="cat", PAGER="cat")
    try:
        # --nh/--nj: no hyphenation or justification, so words and spacing come out as written.
        out = subprocess.run(
            ["man", "--nh", "--nj", "-P", "cat", "-l", str(path)],
            env=env, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if out.returncode != 0:
        return ""
    return clean_man_text(out.stdout.decode("utf-8", errors="replace"))


# ------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Entry:
    """One option (or word) paragraph of a page: its tag as printed, the names it defines and its text.

    `argument` is the tag's value placeholder ("ARCHIVE" for ``--file=ARCHIVE``, "" for none);
    `optional` says the value is optional (``--in-place[=SUFFIX]``), so the next word is not taken.
    """

    tag: str
    names: tuple[str, ...]
    text: str
    argument: str = ""
    optional: bool = False

    @property
    def first_paragraph(self) -> str:
        """The entry's first paragraph (its text up to the first blank line)."""
        return self.text.split("\n\n", 1)[0]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _parse_tag(tag: str) -> tuple[list[str], str, bool] | None:
    """Option names, argument placeholder and optional flag of a tag, or None if it is no option tag."""
    tag = tag.strip().rstrip(":").strip()
    names: list[str] = []
    argument, optional = "", False
    for item in _ITEM_SPLIT_RE.split(tag):
        m = _FLAG_RE.fullmatch(item.strip())
        if m is None:
            return None
        dash, name, rest = m.groups()
        if name.startswith(("[no-]", "[no]")):
            no, bare = name[1:].split("]", 1)
            names += [dash + bare, dash + no + bare]
        else:
            if "[" in name:
                name = name.split("[", 1)[0]
            names.append(dash + name)
        rest = rest.strip()
        if rest.startswith("[:"):  # ffmpeg's "-c[:stream_specifier] codec"
            rest = rest.split("]", 1)[1].strip() if "]" in rest else ""
        if rest.startswith("[") and re.match(r"\[[^\]]*\](?:$|[\s,])", rest):
            optional = True  # "-i[SUFFIX]", "--in-place[=SUFFIX]", "--help [arg]"
            argument = argument or rest[1:].split("]", 1)[0].lstrip("=")
        elif rest.startswith("["):  # "-L [bind_address:]port:host:hostport": a value with an optional part
            argument = argument or rest.split()[0]
        elif rest.startswith("="):
            value = rest[1:].split()
            argument = argument or (value[0] if value else "")
        elif rest and (rest[0].isalnum() or rest[0] in "<{_"):
            argument = argument or rest.split()[0]
    return (names, argument, optional) if names else None


def _paragraphs(lines: list[str]) -> str:
    """Body lines -> paragraphs (lines joined with spaces), separated by one blank line."""
    paras: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paras[-1].append(line.strip())
        elif paras[-1]:
            paras.append([])
    return "\n\n".join(" ".join(p) for p in paras if p)


def _next_nonblank(lines: list[str], i: int, limit: int = 2) -> int | None:
    """Index of the next non-blank line after i, skipping at most `limit - 1` blank lines."""
    for j in range(i + 1, min(len(lines), i + 1 + limit)):
        if lines[j].strip():
            return j
    return None


def _summary(lines: list[str]) -> str:
    """The NAME section's description: "tar - an archiving utility" -> "an archiving utility"."""
    for i, line in enumerate(lines):
        if line.strip() in ("NAME", "NAME:"):
            body: list[str] = []
            for nxt in lines[i + 1:]:
                if not nxt.strip():
                    if body:
                        break
                    continue
                if _indent(nxt) == 0:
                    break
                body.append(nxt.strip())
            text = " ".join(body)
            for sep in (" - ", " -- ", " \u2014 "):
                if sep in text:
                    return text.split(sep, 1)[1].strip().rstrip(".")
            return text.rstrip(".")
    return ""


def parse_entries(text: str) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """Option entries (keyed by each name: ``-f``, ``--file``) and word entries (``a``, ``start``) of a
    rendered page. When a name has several entries the one with the longest text wins (rsync lists
    every option once in a summary table and again with its full description)."""
    lines = text.splitlines()
    options: dict[str, Entry] = {}
    words: dict[str, Entry] = {}

    def keep(table: dict[str, Entry], entry: Entry) -> None:
        for name in entry.names:
            old = table.get(name)
            if old is None or len(entry.text) > len(old.text):
                table[name] = entry

    pending: list[str] = []  # tag lines waiting for their body (grouped tags)
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            pending = []
            i += 1
            continue
        ind = _indent(line)
        stripped = _BULLET_RE.sub("", stripped)
        is_option = stripped[0] in "-+"
        is_word = not is_option and _WORD_TAG_RE.match(stripped) is not None
        if not (is_option or is_word) or ind == 0:
            pending = []
            i += 1
            continue
        j = _next_nonblank(lines, i, limit=3 if is_option else 2)
        body_ind = _indent(lines[j]) if j is not None else -1
        tag, first = stripped, ""
        gap = _GAP_RE.search(stripped)
        if gap is not None:
            tag, first = stripped[: gap.start(1)], stripped[gap.end(1):]
        else:
            # A short tag and its text on one line, one space apart (grep's "--help Output a usage message"):
            # the text starts at the body column. A short line followed by a deeper body is a whole tag
            # that happens to reach that column ("-mtime n").
            col = body_ind if body_ind > ind and len(line) >= 60 else ind + 7 if body_ind <= ind else -1
            if 0 < col < len(line) and line[col - 1] == " " and line[col] != " ":
                head = line[ind:col].strip()
                if " " not in head and head[-1] not in ",/" and _parse_tag(head) is not None:
                    tag, first = head, line[col:]
        parsed = _parse_tag(tag) if is_option else None
        word = None
        if is_word and not pending:
            m = _WORD_TAG_RE.match(tag)
            word = m.group(0) if m else None
        if parsed is None and word is None:
            pending = []
            i += 1
            continue
        if not first and j is not None and body_ind == ind and is_option and j == i + 1:
            nxt = _BULLET_RE.sub("", lines[j].strip())
            if nxt[:1] in "-+" and _GAP_RE.search(nxt) is None:
                pending.append(tag)  # "-H" on one line, "--with-filename" on the next, then the body
                i += 1
                continue
        if not first and body_ind <= ind:
            pending = []
            i += 1
            continue
        body: list[str] = [first] if first else []
        k = i + 1
        while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) > ind):
            body.append(lines[k])
            k += 1
        text_ = _paragraphs(body)
        if parsed is not None:
            tags = [*pending, tag]
            names: list[str] = []
            argument, optional = parsed[1], parsed[2]
            for t in tags:
                p = _parse_tag(t)
                if p is not None:
                    names += [n for n in p[0] if n not in names]
                    argument, optional = argument or p[1], optional or p[2]
            keep(options, Entry(", ".join(tags), tuple(names), text_, argument, optional))
        elif word is not None:
            rest = tag[len(word):].strip()
            keep(words, Entry(tag, (word,), text_, rest.split()[0] if rest else "", False))
        pending = []
        # A word tag's body may hold the option entries of that sub-command: look inside it too.
        i = k if parsed is not None else i + 1
    return options, words


@dataclass
class ManualPage:
    """A parsed man page: where it is, its NAME summary and its option and word entries."""

    name: str
    section: str
    path: str
    summary: str
    body: str = ""
    """The rendered text; "" while it waits in `text_file` (see `text`)."""
    options: dict[str, Entry] = field(default_factory=dict)
    words: dict[str, Entry] = field(default_factory=dict)
    refs: frozenset[str] = frozenset()
    """The pages this one cites (``git-commit`` for "git-commit(1)"): sub-command pages are looked for here."""
    text_file: str = ""

    @property
    def text(self) -> str:
        """The whole page as plain text (read from the cache on first use)."""
        if not self.body and self.text_file:
            try:
                self.body = Path(self.text_file).read_text(encoding="utf-8")
            except OSError:
                pass
        return self.body

    def mentions(self, name: str) -> bool:
        """Does the page cite the page `name` ("see git-commit(1)")?"""
        return name in self.refs

    @property
    def ref(self) -> str:
        """The page as people write it: ``tar(1)``."""
        return f"{self.name}({self.section})"

    def entry(self, flag: str) -> Entry | None:
        """The entry that documents `flag` (``-f``, ``--file``, ``--file=x``, ffmpeg's ``-c:v``), or None."""
        if flag in self.options:
            return self.options[flag]
        if "=" in flag:
            return self.entry(flag.split("=", 1)[0])
        if _STREAM_RE.fullmatch(flag):  # ffmpeg's per-stream "-c:v", "-b:a:0"
            return self.options.get(flag.split(":", 1)[0])
        return None

    def option(self, flag: str) -> str | None:
        """The manual's text for `flag` (all its paragraphs), or None when the page does not document it."""
        found = self.entry(flag)
        return found.text if found is not None else None

    def word(self, word: str) -> Entry | None:
        """The entry of a plain-word tag (``ps``'s BSD option ``a``, ``systemctl``'s ``start``), or None."""
        return self.words.get(word)

    def to_json(self) -> dict[str, object]:
        """A JSON-able form (read back by `from_json`)."""
        def table(entries: dict[str, Entry]) -> list[list[object]]:
            unique = list({id(e): e for e in entries.values()}.values())
            return [[e.tag, list(e.names), e.text, e.argument, e.optional] for e in unique]

        return {"version": CACHE_VERSION, "name": self.name, "section": self.section, "path": self.path,
                "summary": self.summary, "text": self.text, "options": table(self.options), "words": table(self.words),
                "refs": sorted(self.refs)}

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> ManualPage:
        """Inverse of `to_json`; ValueError on another version or shape."""
        if not isinstance(obj, dict) or obj.get("version") != CACHE_VERSION:
            raise ValueError("not a cached manual page of this version")

        def table(rows: object) -> dict[str, Entry]:
            out: dict[str, Entry] = {}
            for tag, names, text, argument, optional in rows:  # type: ignore[union-attr]
                entry = Entry(str(tag), tuple(names), str(text), str(argument), bool(optional))
                for name in entry.names:
                    out[name] = entry
            return out

        try:
            return cls(str(obj["name"]), str(obj["section"]), str(obj["path"]), str(obj["summary"]),
                       str(obj["text"]), table(obj["options"]), table(obj["words"]),
                       frozenset(str(r) for r in obj["refs"]))  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed cached manual page ({exc})") from None


def _page_name(path: Path) -> tuple[str, str]:
    """("tar", "1") from ``.../man1/tar.1.gz``."""
    base = path.name
    for suffix in (".gz", ".bz2", ".xz", ".lzma", ".zst", ".Z"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    name, _, section = base.rpartition(".")
    return (name, section) if name else (base, path.parent.name.removeprefix("man") or "1")


def parse_page(text: str, path: Path | str = "", name: str = "", section: str = "") -> ManualPage:
    """Parse a rendered page (`render_man_file`'s text) into a ManualPage."""
    if path and not (name and section):
        guessed = _page_name(Path(path))
        name, section = name or guessed[0], section or guessed[1]
    options, words = parse_entries(text)
    refs = frozenset(m.group(1) for m in _REF_RE.finditer(text))
    return ManualPage(name, section, str(path), _summary(text.splitlines()), text, options, words, refs)


# ------------------------------------------------------------------------------------------- locating


def man_roots() -> list[Path]:
    """Directories holding man1/, man8/...: $MANPATH's entries, else the usual system roots."""
    env = os.environ.get("MANPATH", "")
    parts = [p for p in env.split(":") if p] if env else []
    if not env or env.startswith(":") or env.endswith(":") or "::" in env:
        parts += list(DEFAULT_ROOTS)
    return [Path(p) for p in dict.fromkeys(parts) if os.path.isdir(p)]


def locate_page(name: str, sections: Iterable[str] = SECTIONS, *, ask_man: bool = True) -> Path | None:
    """The page file for program `name` in `sections` (symlinks resolved), or None.

    Tries ``manN/NAME.N[.gz]`` under each root first (a few stat calls), then ``man -w`` (unless
    `ask_man` is False: a subprocess costs tens of milliseconds).
    """
    if not name or not _NAME_OK.fullmatch(name) or len(name) > 100:
        return None
    sections = tuple(sections)
    roots = man_roots()
    for sec in sections:
        for root in roots:
            for suffix in (".gz", "", ".xz", ".bz2", ".zst"):
                candidate = root / f"man{sec}" / f"{name}.{sec}{suffix}"
                try:
                    if candidate.is_file():
                        return candidate.resolve()
                except OSError:
                    continue
    import shutil
    import subprocess

    if not ask_man or shutil.which("man") is None:
        return None
    try:
        out = subprocess.run(["man", "-w", "-s", ",".join(sections), "--", name], capture_output=True, text=True,
                             timeout=10, check=False, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, LC_ALL="C.UTF-8"))
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = out.stdout.strip().splitlines()
    if out.returncode != 0 or not found or not os.path.isfile(found[0]):
        return None
    return Path(found[0]).resolve()


def default_cache_dir() -> Path | None:
    """``<user cache dir>/manpages`` (None when the state locations cannot be worked out)."""
    try:
        from tinyllm.formats.paths import locate

        return Path(locate().cache_dir) / "manpages"
    except Exception:
        return None


def _cache_file(cache_dir: Path, page: Path) -> Path:
    # The key names the page file, its version (mtime, size) and the parser's; zlib rather than hashlib,
    # whose import costs milliseconds of every `nl2cmd explain`.
    st = page.stat()
    key = f"{zlib.crc32(str(page).encode()):08x}{st.st_mtime_ns:x}{st.st_size:x}v{CACHE_VERSION}"
    return cache_dir / f"{page.name.split('.', 1)[0][:60]}-{key}.json"


_MEMO: dict[tuple[str, int, int], ManualPage] = {}


def load_page(path: Path, cache_dir: Path | None = None, *, use_cache: bool = True) -> ManualPage | None:
    """The parsed page of the file `path`: from memory, the on-disk cache, or rendered now (and cached).
    None when man cannot render it."""
    try:
        st = path.stat()
    except OSError:
        return None
    memo_key = (str(path), st.st_mtime_ns, st.st_size)
    if use_cache and memo_key in _MEMO:
        return _MEMO[memo_key]
    cache_dir = default_cache_dir() if cache_dir is None and use_cache else cache_dir
    cached = _cache_file(cache_dir, path) if cache_dir is not None and use_cache else None
    if cached is not None:
        try:
            page = ManualPage.from_json(json.loads(cached.read_text(encoding="utf-8")))
            page.text_file = str(cached.with_suffix(".txt"))
            _MEMO[memo_key] = page
            return page
        except (OSError, ValueError):
            pass
    text = render_man_file(path, timeout=20.0)
    if not text:
        return None
    page = parse_page(text, path)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # The rendered text goes beside the parsed page (read only when asked for: it is most of the bytes).
            for target, content in ((cached.with_suffix(".txt"), page.text),
                                    (cached, json.dumps({**page.to_json(), "text": ""}, ensure_ascii=False))):
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                tmp.write_text(content, encoding="utf-8")
                tmp.replace(target)
        except OSError:
            pass  # a read-only cache only costs speed
    if use_cache:
        _MEMO[memo_key] = page
    return page


def find_page(program: str, subcommand: str | None = None, *, cache_dir: Path | None = None,
              ask_man: bool = True) -> ManualPage | None:
    """The manual page of `program` (``tar``), or of its sub-command (``git commit`` -> ``git-commit(1)``,
    ``docker run`` -> ``docker-run(1)``); None when this machine has no such page. `ask_man`: see `locate_page`."""
    name = f"{program}-{subcommand}" if subcommand else program
    path = locate_page(name, ask_man=ask_man)
    return load_page(path, cache_dir) if path is not None else None


def find_pages(names: Iterable[str], *, cache_dir: Path | None = None, workers: int = 4) -> dict[str, ManualPage | None]:
    """`find_page` for several page names at once (``git-commit`` for a sub-command), rendering the ones
    not cached yet in parallel."""
    unique = list(dict.fromkeys(n for n in names if n))
    if len(unique) <= 1:
        return {n: find_page(n, cache_dir=cache_dir) for n in unique}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        return dict(zip(unique, pool.map(lambda n: find_page(n, cache_dir=cache_dir), unique)))
