"""The click-free half of the ``nl2cmd`` command line: output helpers, settings, the suggestion engine.

``nl2cmd "list large files"`` is the hot path: `tinyllm.cli.entry` answers a plain request with this
module alone (no click, numpy or torch import), which keeps the client's start-up small; every other
invocation goes through the click CLI in `tinyllm.cli.app`, which uses the same functions.
"""

from __future__ import annotations

import errno
import json
import os
import sys

from tinyllm.formats.paths import locate, resolve
from tinyllm.formats.settings import Settings
from tinyllm.knowledge.text import safe_line, strip_control
from tinyllm.serve.protocol import ProtocolError, clean_text, validate_instruction

# typing is not imported at run time: it costs ~3 ms of the thin client's start-up (every
# `nl2cmd` call); annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from tinyllm.formats.paths import Locations, StatePaths

PROG = "nl2cmd"


class FrontendError(Exception):
    """A one-line user-facing error (exit status 1)."""

    exit_code = 1


class ReaderGone(Exception):
    """Whoever read stdout went away (EPIPE). Not an OSError, so that click's own EPIPE handling
    (exit 1) leaves it to run_guarded (a quiet exit 141, the same on both halves of the CLI)."""


def write_line(stream: Any, text: str) -> None:
    """Write a line, replacing anything the stream's encoding can't represent. A stream that is
    None (its descriptor was closed when nl2cmd started: ``>&-``) fails with EBADF."""
    if stream is None:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "replace").decode(enc) + "\n")
    stream.flush()


def one_line(text: str) -> str:
    """A command as one terminal-safe line: control characters and line breaks removed, but (unlike
    safe_line) runs of spaces kept, since they can be significant inside quotes."""
    return " ".join(strip_control(text).replace("\t", " ").splitlines()).strip()


def print_line(text: str) -> None:
    """`text` as it is on stdout. A reader that went away (EPIPE) raises ReaderGone (a quiet exit,
    see run_guarded); any other failure (stdout closed, full disk) is a one-line error."""
    try:
        write_line(sys.stdout, text)
    except BrokenPipeError:
        raise ReaderGone() from None
    except (OSError, ValueError) as exc:  # ValueError: a closed file object
        raise FrontendError(f"cannot write to stdout: {getattr(exc, 'strerror', None) or exc}") from None


def out(text: str) -> None:
    """One terminal-safe line on stdout."""
    print_line(one_line(text))


def err(text: str) -> None:
    """One terminal-safe diagnostic line on stderr, prefixed with the program name. With stderr
    closed or gone (``2>&-``) there is no one to tell: the line is dropped, never an exception."""
    try:
        write_line(sys.stderr, f"{PROG}: {safe_line(text)}")
    except (OSError, ValueError):
        pass


def warn(text: str) -> None:
    """``nl2cmd: warning: ...`` on stderr."""
    err(f"warning: {text}")


def clean_arg(arg: str) -> str:
    """Undo surrogateescape (invalid UTF-8 bytes in argv) into U+FFFD replacement characters."""
    try:
        return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that isn't an escaped byte
        return clean_text(arg)


def state_paths() -> StatePaths:
    """Every location, as Path objects."""
    return resolve()


def load_settings(**overrides: Any) -> Settings:
    """Config file settings (warnings to stderr) with command-line overrides applied."""
    from tinyllm.formats.settings import load

    try:
        settings, problems = load(locate().config_file)
    except Exception as exc:  # never let a config problem break suggestions
        settings, problems = Settings(), [str(exc)]
    for problem in problems:
        warn(problem)
    if overrides.get("model"):
        overrides["model"] = os.path.abspath(os.path.expanduser(overrides["model"]))
    return settings.with_overrides(**overrides)


def instruction_from(words: tuple[str, ...] | list[str] | str) -> str:
    """Validated, normalised instruction from argv words (FrontendError if empty or too long)."""
    raw = words if isinstance(words, str) else " ".join(clean_arg(w) for w in words)
    try:
        return validate_instruction(raw)
    except ProtocolError as exc:
        raise FrontendError(str(exc)) from None


def danger(command: str) -> list[str]:
    """This client's own safety check of a command it prints (tinyllm.safety): warnings never
    depend on what the daemon says, or whether it checked at all."""
    from tinyllm.knowledge.safety import classify

    try:
        return [w.message for w in classify(command)]
    except Exception as exc:  # a bug in the classifier must not hide the command, nor the fact
        return [f"could not check this command for danger ({type(exc).__name__})"]


class Engine:
    """Gets suggestions from the daemon (started on demand) or, failing that, in-process."""

    def __init__(self, settings: Settings, paths: StatePaths | Locations) -> None:
        self.settings = settings
        self.paths = paths
        self.in_process = settings.no_daemon
        self._local: Any = None

    def suggest(self, instruction: str, platform: str, n: int) -> dict[str, Any]:
        """Suggestion fields plus ``via_daemon``; raises FrontendError."""
        if not self.in_process:
            from tinyllm.serve import client

            s = self.settings
            try:
                reply = client.suggest(self.paths, instruction, platform, n, model=s.model,
                                       idle_timeout=s.idle_timeout, start_timeout=s.start_timeout, timeout=s.timeout)
                return {**reply, "via_daemon": True}
            except client.DaemonUnavailable as exc:
                err(f"daemon unavailable ({exc}); generating in-process")
                self.in_process = True
            except client.DaemonStartFatal as exc:
                raise FrontendError(f"cannot load the model: {exc}") from None
            except client.ClientError as exc:  # RemoteError, RequestTimeout
                raise FrontendError(str(exc)) from None
        return {**self._generate(instruction, platform, n), "via_daemon": False}

    def _generate(self, instruction: str, platform: str, n: int) -> dict[str, Any]:
        from tinyllm.serve.daemon import ModelLoadError, load_suggester, suggestion_fields  # the heavy path

        if self._local is None:
            try:
                self._local = load_suggester(self.settings.model, str(self.paths.user_pairs))
            except ModelLoadError as exc:
                raise FrontendError(f"cannot load the model: {exc}") from None
            problem = getattr(self._local, "user_pairs_problem", None)
            if problem:  # once per process: the pairs are optional, the model serves without them
                warn(f"learnt pairs not used: {problem}")
        try:
            return suggestion_fields(self._local.suggest(instruction, platform=platform, n=n))
        except Exception as exc:
            raise FrontendError(safe_line(str(exc)) or type(exc).__name__) from None


def _merge(*lists: list[str]) -> list[str]:
    """The lines of all lists, each once, in order."""
    seen: dict[str, None] = {}
    for lines in lists:
        seen.update((line, None) for line in lines if line)
    return list(seen)


def emit(result: dict[str, Any], n: int, as_json: bool) -> None:
    """Print a suggestion: the command (or n alternatives) on stdout, warnings and the daemon's
    notes on stderr, and a "low confidence" note as ``nl2cmd: low confidence``. Every printed command
    is checked here too (`danger`)."""
    command = one_line(result.get("command", ""))
    alternatives = [(one_line(c), float(s)) for c, s in result.get("alternatives", []) if one_line(c)]
    if not command:
        raise FrontendError("the model produced no command")
    warnings = _merge(danger(command), [safe_line(w) for w in result.get("warnings", [])])
    notes = result.get("notes")
    low = []  # the ranker's notes about the answer (tinyllm.serve.suggest.LOW_CONFIDENCE)
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, str) and safe_line(note):
            if note.startswith("low confidence"):
                low.append(safe_line(note))
            else:
                warn(note)
    conf = result.get("confidence")
    if as_json:
        payload = {
            "command": command,
            "alternatives": [{"command": c, "score": s} for c, s in (alternatives or [(command, 0.0)])[:n]],
            "warnings": warnings,
            "source": result.get("source", "model"),
            "timing_ms": round(float(result.get("timing_ms", 0.0)), 3),
            "via_daemon": bool(result.get("via_daemon")),
            "confidence": None if conf is None else round(float(conf), 3),
            "notes": low,
        }
        print_line(json.dumps(payload, ensure_ascii=False))
        return
    lines = [c for c, _ in alternatives[:n]] if n > 1 and alternatives else [command]
    for line in lines:
        out(line)
    for i, line in enumerate(lines[1:], 2):
        if line != command:
            warnings = _merge(warnings, [f"{w} (alternative {i})" for w in danger(line)])
    for w in warnings:
        warn(w)
    for note in low:
        err(note)


EXIT_BROKEN_PIPE = 128 + 13
"""Status after the reader of stdout went away: what the shell reports for a program killed by
SIGPIPE, as `yes | head -1` leaves it."""


def run_guarded(call: Callable[[], Any]) -> NoReturn:
    """Run a CLI body and exit with its status: errors are one stderr line (status 1), an interrupt
    exits 130, a reader that went away exits quietly (141); never a traceback (NL2CMD_DEBUG=1 shows one)."""
    try:
        rv = call()
    except FrontendError as exc:
        err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except (ReaderGone, BrokenPipeError):
        # The reader went away (e.g. `nl2cmd ... | head -0`): exit quietly, and point stdout at
        # /dev/null so that flushing it at exit does not fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as exc:  # e.g. writing to a full disk
        err(f"error: {exc.strerror or exc}")
        sys.exit(1)
    except Exception as exc:  # a bug: still one line
        if os.environ.get("NL2CMD_DEBUG"):
            raise
        err(f"error: internal error: {type(exc).__name__}: {exc}")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def suggest_main(words: list[str], *, num: int | None = None, platform: str | None = None,
                 model: str | None = None, no_daemon: bool | None = None, as_json: bool = False) -> None:
    """The default command: print a suggestion for the instruction made of `words` (FrontendError on failure)."""
    instruction = instruction_from(words)
    settings = load_settings(num=num, platform=platform, model=model, no_daemon=no_daemon)
    engine = Engine(settings, locate())  # plain strings: the request path does not import pathlib
    result = engine.suggest(instruction, settings.platform, settings.num)
    emit(result, settings.num, as_json)
