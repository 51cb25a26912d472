"""The user's own instruction -> command pairs (`nl2cmd learn`), kept as plain JSONL.

One object per line::

    {"instruction": "deploy the site", "command": "rsync -av public/ web:/srv/www/", "platform": null,
     "added": "2025-01-31T12:00:00Z"}

The file is meant to be hand-editable: a malformed line is reported (with its line number) and
skipped, never fatal, and it is preserved verbatim when the file is rewritten. Pairs are numbered
1.. in file order, as `nl2cmd learn --list` shows them. A pair matches a request when the
normalised instructions are equal ignoring case (see `pair_key`). Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinyllm.formats.prompt import PLATFORMS

from .text import MAX_REQUEST_CHARS, normalize_command, normalize_instruction

MAX_USER_COMMAND_CHARS = 2000


class UserPairsError(Exception):
    """A user-pair operation failed (bad input, index out of range, unreadable file)."""


@dataclass(frozen=True)
class UserPair:
    """One learnt pair (already normalised)."""

    instruction: str
    command: str
    platform: str | None = None
    added: str | None = None

    def to_json(self) -> str:
        """The JSONL line for this pair (without newline)."""
        return json.dumps(
            {"instruction": self.instruction, "command": self.command, "platform": self.platform, "added": self.added},
            ensure_ascii=False,
        )


@dataclass
class ImportResult:
    """What `import_file` did."""

    added: int = 0
    updated: int = 0
    problems: list[str] | None = None


def pair_key(instruction: str) -> str:
    """Match key for a learnt pair: the normalised instruction, case-folded."""
    return normalize_instruction(instruction).casefold()


def default_path() -> Path:
    """The pairs file for the current environment (NL2CMD_HOME or the platform data dir)."""
    from tinyllm.formats.paths import resolve

    return resolve().user_pairs


def make_pair(instruction: str, command: str, platform: str | None = None, added: str | None = None) -> UserPair:
    """Validate and normalise a pair; raises UserPairsError with a one-line reason."""
    if not isinstance(instruction, str) or not isinstance(command, str):
        raise UserPairsError("instruction and command must be strings")
    instr = normalize_instruction(instruction.encode("utf-8", "replace").decode("utf-8"))
    cmd = normalize_command(command.encode("utf-8", "replace").decode("utf-8"))
    if not instr:
        raise UserPairsError("empty instruction")
    if len(instr) > MAX_REQUEST_CHARS:
        raise UserPairsError(f"instruction too long ({len(instr)} characters; max {MAX_REQUEST_CHARS})")
    if not cmd:
        raise UserPairsError("empty command")
    if len(cmd) > MAX_USER_COMMAND_CHARS:
        raise UserPairsError(f"command too long ({len(cmd)} characters; max {MAX_USER_COMMAND_CHARS})")
    if platform is not None and platform not in PLATFORMS:
        raise UserPairsError(f"platform must be one of {', '.join(PLATFORMS)}")
    if added is not None and not isinstance(added, str):
        added = None
    return UserPair(instr, cmd, platform, added)


def parse_line(line: str) -> UserPair:
    """Parse one JSONL line into a pair; raises UserPairsError."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise UserPairsError(f"invalid JSON ({str(exc)[:60]})") from None
    if not isinstance(obj, dict):
        raise UserPairsError("expected a JSON object")
    if "instruction" not in obj or "command" not in obj:
        raise UserPairsError("needs 'instruction' and 'command'")
    return make_pair(obj["instruction"], obj["command"], obj.get("platform"), obj.get("added"))


def _read_entries(path: Path, label: str | None = None) -> tuple[list[tuple[str, UserPair | None]], list[str]]:
    """All lines as (raw line, pair or None for a malformed line) plus problem messages."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise UserPairsError(f"cannot read {path}: {exc.strerror or exc}") from None
    label = label or str(path)
    entries: list[tuple[str, UserPair | None]] = []
    problems: list[str] = []
    for lineno, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            entries.append((raw, parse_line(raw)))
        except UserPairsError as exc:
            entries.append((raw, None))
            problems.append(f"{label}:{lineno}: {exc}")
    return entries, problems


def load(path: Path | None = None) -> tuple[list[UserPair], list[str]]:
    """All valid pairs in file order, plus one message per malformed line (never raises for bad lines)."""
    entries, problems = _read_entries(path or default_path())
    return [p for _, p in entries if p is not None], problems


def list_pairs(path: Path | None = None) -> list[UserPair]:
    """The valid pairs, numbered 1.. by their position in this list."""
    return load(path)[0]


def lookup(pairs: list[UserPair], instruction: str, platform: str | None = None) -> UserPair | None:
    """The last pair whose key equals the instruction's (platform-specific pairs only on that platform)."""
    key = pair_key(instruction)
    for pair in reversed(pairs):
        if pair_key(pair.instruction) == key and (pair.platform in (None, "common") or pair.platform == platform):
            return pair
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers (two `nl2cmd learn` at once must not lose a pair)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, entries: list[tuple[str, UserPair | None]]) -> None:
    """Atomically replace the file (a crash mid-write must not lose the user's pairs)."""
    text = "".join(raw + "\n" for raw, _ in entries)
    fd, tmp = tempfile.mkstemp(prefix=".user_pairs.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _upsert(entries: list[tuple[str, UserPair | None]], pair: UserPair) -> bool:
    """Replace a pair with the same key and platform in place, else append. True if it replaced one."""
    key = pair_key(pair.instruction)
    for i, (_, old) in enumerate(entries):
        if old is not None and pair_key(old.instruction) == key and old.platform == pair.platform:
            entries[i] = (pair.to_json(), pair)
            return True
    entries.append((pair.to_json(), pair))
    return False


def add(instruction: str, command: str, platform: str | None = None, path: Path | None = None) -> tuple[int, UserPair]:
    """Learn a pair (replacing one with the same instruction); returns its 1-based number and the pair."""
    path = path or default_path()
    pair = make_pair(instruction, command, platform, _now())
    with _locked(path):
        entries, _ = _read_entries(path)
        _upsert(entries, pair)
        _write(path, entries)
    valid = [p for _, p in entries if p is not None]
    return valid.index(pair) + 1, pair


def remove(number: int, path: Path | None = None) -> UserPair:
    """Forget pair `number` (1-based, as listed); raises UserPairsError if there is no such pair."""
    path = path or default_path()
    with _locked(path):
        entries, _ = _read_entries(path)
        valid = [i for i, (_, p) in enumerate(entries) if p is not None]
        if not valid:
            raise UserPairsError("no learnt pairs")
        if not 1 <= number <= len(valid):
            raise UserPairsError(f"no pair number {number} (have 1 to {len(valid)}; see 'nl2cmd learn --list')")
        _, pair = entries.pop(valid[number - 1])
        _write(path, entries)
    assert pair is not None
    return pair


def import_file(source: Path, path: Path | None = None) -> ImportResult:
    """Add every valid pair of a JSONL file; malformed lines are reported in `problems` and skipped."""
    path = path or default_path()
    if not source.is_file():
        raise UserPairsError(f"{source}: no such file")
    new_entries, problems = _read_entries(source, str(source))
    result = ImportResult(problems=problems)
    with _locked(path):
        entries, _ = _read_entries(path)
        for _, pair in new_entries:
            if pair is None:
                continue
            if pair.added is None:
                pair = UserPair(pair.instruction, pair.command, pair.platform, _now())
            if _upsert(entries, pair):
                result.updated += 1
            else:
                result.added += 1
        if result.added or result.updated:
            _write(path, entries)
    return result
