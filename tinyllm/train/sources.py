"""Parsers for instruction/command data sources: tldr pages, NL2Bash, raw pair files and user JSONL.

Every parser yields plain dicts ``{"instruction", "command", "source", "platform"}`` with the text as
found (light, source-specific cleanup only); the shared normalisation and filtering live in pairs.py.

Raw pair format (``iter_raw_pairs``, the seed's ``raw_cli_pairs.txt``)::

    # a comment line (ignored anywhere)
    List all files including hidden ones
    ls -la

    Show disk usage of the current folder
    du -sh .
    Count lines in a file<TAB>wc -l notes.txt

Blocks are separated by blank lines; in a block, line 1 is the instruction and line 2 the command.
A line containing a TAB is a complete ``instruction<TAB>command`` pair on its own. Platform is "common".

tldr ``{{[-s|--long]}}`` options are resolved to ONE form, deterministically: the first alternative
that starts with ``--`` (the long option is more readable and self-describing; except that a short
option glued to a following placeholder, ``{{[-p|--password]}}{{password}}``, stays short), else, for a pair, the
longer one (``{{[ls|list]}}`` -> ``list``); a 3+-way choice without a long option stays a placeholder
``{{a|b|c}}``. Other ``{{placeholders}}`` are kept verbatim.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tinyllm.formats.prompt import TLDR_PLATFORM, platform_of

TLDR_URL = "https://github.com/tldr-pages/tldr/releases/latest/download/tldr.zip"
TLDR_PLATFORMS = tuple(TLDR_PLATFORM)  # tldr folders we keep: linux, osx, common

_ALT_OPTION_RE = re.compile(r"\{\{\[([^\]{}]*\|[^\]{}]*)\]\}\}")
# tldr mnemonic brackets in descriptions: "[c]reate", "E[x]tract", "[t]han/[l]ess" -> plain words.
_MNEMONIC_RE = re.compile(r"(?<=[A-Za-z])\[([A-Za-z0-9]{1,5})\]|\[([A-Za-z0-9]{1,5})\](?=[A-Za-z])")
_NL2BASH_PREFIX_RE = re.compile(r"^\s*\(([^)]*?)[ -]specific\)\s*", re.IGNORECASE)


class DataError(Exception):
    """A user-facing data problem (missing input, malformed file): reported as one line, no traceback."""


Row = dict[str, str]


@dataclass
class Problems:
    """Collects malformed-input reports as ``file:line: message``; `strict` makes the first one fatal."""

    strict: bool = False
    messages: list[str] = field(default_factory=list)

    def report(self, where: str, line: int, message: str) -> None:
        """Record (or, when strict, raise) one problem at `where`:`line`."""
        text = f"{where}:{line}: {message}"
        if self.strict:
            raise DataError(text)
        self.messages.append(text)

    def warn_summary(self, what: str) -> None:
        """Print a one-line count of skipped problems to stderr (nothing when there are none)."""
        if self.messages:
            print(f"warning: skipped {len(self.messages)} malformed {what} (first: {self.messages[0]})", file=sys.stderr)


def _row(instruction: str, command: str, source: str, platform: str) -> Row:
    return {"instruction": instruction, "command": command, "source": source, "platform": platform}


# --------------------------------------------------------------------------------------------- tldr


def resolve_alternatives(command: str) -> str:
    """Resolve tldr ``{{[-s|--long]}}`` alternatives to one form (see module docstring for the rule)."""

    def pick(m: re.Match[str]) -> str:
        alts = [a.strip() for a in m.group(1).split("|")]
        longs = [a for a in alts if a.startswith("--")]
        if command.startswith("{{", m.end()) and alts[0].startswith("-") and not alts[0].startswith("--"):
            return alts[0]  # "{{[-p|--password]}}{{password}}": only the short form takes a glued value
        if longs:
            return longs[0]
        if len(alts) == 2:
            return alts[1] if len(alts[1]) >= len(alts[0]) else alts[0]
        return "{{" + "|".join(alts) + "}}"

    return _ALT_OPTION_RE.sub(pick, command)


def clean_tldr_description(text: str) -> str:
    """A tldr example description as a request: no leading dash, mnemonic brackets, backticks or trailing colon."""
    text = text.strip()
    if text.startswith("- "):
        text = text[2:]
    text = _MNEMONIC_RE.sub(lambda m: m.group(1) or m.group(2), text)
    text = text.replace("`", "")
    return text.strip().rstrip(":").strip()


def parse_tldr_page(
    text: str, platform: str, name: str = "", *, problems: Problems | None = None, strict: bool = False
) -> list[Row]:
    """Parse one tldr page into pairs; malformed blocks are reported as ``name:line`` and skipped.

    `platform` is the tldr folder (common/linux/osx) and is stored as the prompt platform.
    """
    problems = problems if problems is not None else Problems(strict=strict)
    where = name or "<tldr page>"
    plat = platform_of(platform)
    rows: list[Row] = []
    pending: tuple[int, str] | None = None  # (line number, description) waiting for its command
    saw_title = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("# "):
            saw_title = True
        elif line.startswith(">"):
            continue
        elif line.startswith("- "):
            if pending is not None:
                problems.report(where, pending[0], "description without a command")
            pending = (lineno, clean_tldr_description(line))
        elif line.startswith("`") and line.endswith("`") and len(line) >= 2:
            if pending is None:
                problems.report(where, lineno, "command without a description")
                continue
            command = resolve_alternatives(line[1:-1].strip())
            if pending[1].startswith("[Interactive]"):
                pass  # a command typed inside an interactive program (debugfs, ftp...), not a shell command
            elif not pending[1] or not command:
                problems.report(where, lineno, "empty description or command")
            else:
                rows.append(_row(pending[1], command, "tldr", plat))
            pending = None
        else:
            problems.report(where, lineno, f"unexpected line {line[:40]!r}")
    if pending is not None:
        problems.report(where, pending[0], "description without a command")
    if not saw_title and text.strip():
        problems.report(where, 1, "missing '# name' title")
    return rows


def iter_tldr_pages(path: Path | str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(platform, display_name, markdown)`` for kept tldr pages in a pages dir, tldr root or tldr.zip.

    Only English pages (``pages/``) of the common, linux and osx platforms are read, in sorted order.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"tldr pages not found: {path}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(f"not a tldr zip archive: {path}")
        with zipfile.ZipFile(path) as zf:
            for member in sorted(zf.namelist()):
                parts = member.split("/")
                if len(parts) == 3 and parts[0] == "pages" and parts[1] in TLDR_PLATFORMS and parts[2].endswith(".md"):
                    yield parts[1], f"{path}!{member}", zf.read(member).decode("utf-8", errors="replace")
        return
    pages = path / "pages" if (path / "pages").is_dir() else path
    for plat in TLDR_PLATFORMS:
        folder = pages / plat
        if folder.is_dir():
            for md in sorted(folder.glob("*.md")):
                yield plat, str(md), md.read_text(encoding="utf-8", errors="replace")


def tldr_summary(text: str) -> str:
    """A tldr page's one-line summary (the first ``>`` line, first sentence), or "" if it has none.

    ``> List directory contents.`` -> ``List directory contents``.
    """
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(">"):
            body = line[1:].strip().replace("`", "")
            if body.lower().startswith("more information") or "alias of" in body.lower():
                return ""
            return re.split(r"(?<=[a-z0-9)])\.\s", body, maxsplit=1)[0].rstrip(".").strip()
    return ""


def iter_tldr_summaries(path: Path | str) -> Iterator[Row]:
    """Yield ``(summary -> page name)`` rows, e.g. "List directory contents" -> ``ls``, source ``tldr_summary``.

    They teach what each tool is for; build_pairs adds them to train only (see pairs.add_summaries).
    """
    for plat, _name, text in iter_tldr_pages(path):
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), "")
        summary = tldr_summary(text)
        if summary and re.fullmatch(r"[\w.+-]+", title):
            yield _row(summary, title, "tldr_summary", platform_of(plat))


def iter_tldr(path: Path | str, *, strict: bool = False, problems: Problems | None = None) -> Iterator[Row]:
    """Yield pairs from a tldr pages dir, tldr root or the official tldr.zip (common, linux, osx only)."""
    own = problems is None
    problems = problems if problems is not None else Problems(strict=strict)
    found = False
    for plat, name, text in iter_tldr_pages(path):
        found = True
        yield from parse_tldr_page(text, plat, name, problems=problems)
    if not found:
        raise DataError(f"no tldr pages (pages/{{common,linux,osx}}/*.md) under {path}")
    if own:
        problems.warn_summary("tldr blocks")


def download_tldr(dest: Path | str, url: str = TLDR_URL, timeout: float = 60.0) -> Path:
    """Download the official tldr.zip to `dest` (a file path, or a directory to hold ``tldr.zip``)."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / "tldr.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URL or a test file://
            data = resp.read()
    except OSError as exc:  # URLError is an OSError
        raise DataError(f"could not download tldr pages from {url}: {exc}") from exc
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DataError(f"downloaded file from {url} is not a zip archive")
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as tmp:
        tmp.write(data)
    shutil.move(tmp.name, dest)  # atomic on one filesystem: a half-written zip is never left at `dest`
    return dest


# ------------------------------------------------------------------------------------------ NL2Bash


def clean_nl2bash_description(text: str) -> tuple[str, str]:
    """Strip an ``(GNU specific)``-style prefix; returns ``(description, platform)`` (macOS prefix -> macos)."""
    m = _NL2BASH_PREFIX_RE.match(text)
    platform = "linux"
    if m:
        if re.search(r"mac|osx", m.group(1), re.IGNORECASE):
            platform = "macos"
        text = text[m.end() :]
    return text.strip(), platform


def iter_nl2bash(directory: Path | str) -> Iterator[Row]:
    """Yield pairs from NL2Bash's parallel ``all.nl`` / ``all.cm`` files (line i describes line i)."""
    directory = Path(directory)
    nl_path, cm_path = directory / "all.nl", directory / "all.cm"
    for p in (nl_path, cm_path):
        if not p.is_file():
            raise DataError(f"NL2Bash file not found: {p}")
    nl = nl_path.read_text(encoding="utf-8", errors="replace").splitlines()
    cm = cm_path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(nl) != len(cm):
        raise DataError(f"NL2Bash line counts differ: {nl_path} has {len(nl)}, {cm_path} has {len(cm)}")
    for desc, cmd in zip(nl, cm, strict=True):
        text, platform = clean_nl2bash_description(desc)
        yield _row(text, cmd.strip(), "nl2bash", platform)


# ---------------------------------------------------------------------------------- raw and JSONL


def pair_file_name(path: Path | str) -> str:
    """A pair file's name without the ``.gz`` that an installed package's copy carries (x.jsonl.gz -> x.jsonl)."""
    return Path(path).name.removesuffix(".gz")


def read_pair_bytes(path: Path | str) -> bytes:
    """A pair file's content, decompressed when its name ends in ``.gz``.

    A non-editable install stores the own pairs gzip-compressed (setup.py): readers and fingerprints go
    through this function so that both copies give the same rows and the same fingerprint.
    """
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    return data


def pair_file_digest(path: Path | str) -> bytes:
    """sha256 of a pair file's decompressed content (the same for a file and its ``.gz`` copy)."""
    return hashlib.sha256(read_pair_bytes(path)).digest()


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    return read_pair_bytes(path).decode("utf-8", errors="replace")


def _read_pairs(path: Path | str, strict: bool, problems: Problems | None, unit: str,
                rows: Callable[[Path, Problems], Iterator[Row]]) -> Iterator[Row]:
    """The rows `rows(path, problems)` yields. Problems go to `problems`, or, when it is None, to a
    collector of this call's own (`strict`: the first is fatal) whose one-line summary, counting
    malformed `unit`, is printed on stderr at the end."""
    path = Path(path)
    collector = problems if problems is not None else Problems(strict=strict)
    yield from rows(path, collector)
    if problems is None:
        collector.warn_summary(f"{unit} in {path}")


def iter_raw_pairs(
    path: Path | str, *, strict: bool = False, problems: Problems | None = None, source: str = "raw"
) -> Iterator[Row]:
    """Yield pairs from a raw pair file (format in the module docstring)."""
    return _read_pairs(path, strict, problems, "blocks", lambda p, report: _raw_rows(p, report, source))


def _raw_rows(path: Path, problems: Problems, source: str) -> Iterator[Row]:
    """The pairs of a raw pair file; malformed blocks and lines are reported to `problems`."""
    block: list[tuple[int, str]] = []

    def flush() -> Iterator[Row]:
        if not block:
            return
        if len(block) != 2:
            problems.report(str(path), block[0][0], f"expected instruction and command lines, got {len(block)} lines")
        else:
            yield _row(block[0][1], block[1][1], source, "common")
        block.clear()

    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            yield from flush()
        elif "\t" in line:
            yield from flush()
            instr, _, cmd = line.partition("\t")
            if instr.strip() and cmd.strip():
                yield _row(instr.strip(), cmd.strip(), source, "common")
            else:
                problems.report(str(path), lineno, "empty instruction or command in TAB line")
        else:
            block.append((lineno, line))
    yield from flush()


def iter_jsonl_pairs(
    path: Path | str, *, strict: bool = False, problems: Problems | None = None, source: str = "user"
) -> Iterator[Row]:
    """Yield pairs from JSONL with ``instruction`` and ``command`` string fields (optional ``platform``)."""
    return _read_pairs(path, strict, problems, "lines", lambda p, report: _jsonl_rows(p, report, source))


def _jsonl_rows(path: Path, problems: Problems, source: str) -> Iterator[Row]:
    """The pairs of a JSONL pair file; malformed lines are reported to `problems`."""
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.report(str(path), lineno, f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.report(str(path), lineno, "expected a JSON object")
            continue
        instr, cmd = obj.get("instruction"), obj.get("command")
        if not isinstance(instr, str) or not isinstance(cmd, str) or not instr.strip() or not cmd.strip():
            problems.report(str(path), lineno, "missing or non-string 'instruction'/'command'")
            continue
        plat = obj.get("platform", "common")
        yield _row(instr, cmd, str(obj.get("source", source)), platform_of(plat if isinstance(plat, str) else "common"))


def iter_pair_file(path: Path | str, *, strict: bool = False) -> Iterator[Row]:
    """Dispatch on suffix: ``.jsonl``/``.json`` (or either with ``.gz``) -> JSONL pairs, anything else -> raw
    pair format."""
    path = Path(path)
    if Path(pair_file_name(path)).suffix in (".jsonl", ".json"):
        return iter_jsonl_pairs(path, strict=strict)
    return iter_raw_pairs(path, strict=strict)


def count_by(rows: Iterable[Row], key: str) -> dict[str, int]:
    """Count rows by the value of `key` (sorted by key)."""
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))
