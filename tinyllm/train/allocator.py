"""jemalloc for CPU training, preloaded by re-executing the training process once.

glibc's malloc serves the step's large activation and logit buffers (hundreds of MB) with mmap and gives
them back to the kernel when they are freed, so every step faults them in again, page by page: on a
2-core machine 10-47% of the CPU went to the kernel. jemalloc told never to return freed memory
(`JEMALLOC_CONF`) reuses the buffers: the `default` SFT step ran 1.94x faster, side by side
(`bench/train_allocator.py`, docs/performance.md). The peak memory is the same; it is simply kept.

`NL2CMD_MALLOC=system` keeps glibc's malloc. Without jemalloc installed (Debian: `libjemalloc2`)
the training commands say so in one line on stderr and run on glibc's malloc.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

JEMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
"""Never hand freed pages back to the kernel: the next step reuses them."""
SWITCH = "NL2CMD_MALLOC"
"""`system` keeps glibc's malloc."""
TRAINING_COMMANDS = frozenset({"pretrain", "sft", "all"})
"""The `nl2cmd-train` subcommands that train (the others are short or do not allocate per step)."""


def find_jemalloc(candidates: Sequence[str] = JEMALLOC_CANDIDATES) -> str | None:
    """The first jemalloc shared library that exists, or None."""
    return next((c for c in candidates if Path(c).is_file()), None)


def _wants_jemalloc(argv: Sequence[str], environ: Mapping[str, str], platform: str) -> bool:
    """A training subcommand on Linux, not told to keep glibc (`NL2CMD_MALLOC=system`), with no jemalloc
    preloaded yet."""
    command = next((a for a in argv[1:] if not a.startswith("-")), None)
    if platform != "linux" or command not in TRAINING_COMMANDS:
        return False
    return environ.get(SWITCH, "").lower() != "system" and "jemalloc" not in environ.get("LD_PRELOAD", "")


def reexec_plan(argv: Sequence[str], environ: Mapping[str, str], platform: str = sys.platform,
                library: str | None = None) -> dict[str, str] | None:
    """The environment to re-execute `argv` with (jemalloc preloaded), or None to run as it is.

    Only a training subcommand on Linux is re-executed, only once, and not when `NL2CMD_MALLOC=system`
    or when jemalloc is already preloaded or not installed. `library` overrides the search (tests)."""
    if not _wants_jemalloc(argv, environ, platform):
        return None
    lib = library or find_jemalloc()
    if lib is None:
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = " ".join(p for p in (lib, environ.get("LD_PRELOAD", "")) if p)
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    env[SWITCH] = "jemalloc"  # the re-executed process does not re-execute again
    return env


REEXEC_CODE = "from tinyllm.train.cli import main; main()"
"""What the re-executed interpreter runs (the same entry point, however the first process was started)."""


def reexec_args(argv: Sequence[str]) -> list[str]:
    """The interpreter's arguments that run `argv` again with the same command line where possible, so that
    `ps` and `pkill -f "nl2cmd-train sft"` still find the process: the console script itself, the module
    for `python -m tinyllm.train.cli`, else `REEXEC_CODE`."""
    first = Path(argv[0]) if argv and argv[0] else None
    if first is not None and first.name == "cli.py" and first.parent.name == "train":
        return ["-m", "tinyllm.train.cli", *argv[1:]]
    if first is not None and first.is_file() and first.suffix != ".py":
        return [str(first), *argv[1:]]
    return ["-c", REEXEC_CODE, *argv[1:]]


MISSING_NOTE = ("nl2cmd-train: jemalloc is not installed: CPU training runs about half as fast on glibc's "
                "malloc (Debian: apt install libjemalloc2; NL2CMD_MALLOC=system hides this note)")


def missing_note(argv: Sequence[str], environ: Mapping[str, str], platform: str = sys.platform,
                 candidates: Sequence[str] = JEMALLOC_CANDIDATES) -> str | None:
    """The one-line note for a training command on Linux that would use jemalloc but finds none installed;
    None otherwise (another command or platform, --help, `NL2CMD_MALLOC=system`, jemalloc found or
    preloaded)."""
    if not _wants_jemalloc(argv, environ, platform) or {"-h", "--help"} & set(argv[1:]):
        return None
    if environ.get(SWITCH, "").lower() == "jemalloc":  # the re-executed process
        return None
    return None if find_jemalloc(candidates) else MISSING_NOTE


def use_jemalloc(argv: Sequence[str] | None = None) -> None:
    """Re-execute this process with jemalloc preloaded when `reexec_plan` says so; otherwise return (with a
    note on stderr when a training command finds no jemalloc to preload)."""
    argv = list(sys.argv if argv is None else argv)
    env = reexec_plan(argv, os.environ)
    if env is None:
        # only where training can run: a base install's training command says which extra to install
        if (note := missing_note(argv, os.environ)) and importlib.util.find_spec("torch") is not None:
            print(note, file=sys.stderr)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *reexec_args(argv)], env)
    except OSError:  # cannot re-execute (odd interpreter setups): train with the system allocator
        return
