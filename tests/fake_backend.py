"""A deterministic stand-in for tinyllm.serve.suggest.Suggester, selected with
``NL2CMD_BACKEND=tests.fake_backend`` (the daemon imports the module NL2CMD_BACKEND names and uses its
`Suggester`; the folder above tests/ must be importable: see `environment`).

Used by the CLI/daemon tests and by the shell-widget tests, so its behaviour is a contract:

* a learnt user pair whose instruction matches exactly (normalised, case-folded) -> its command, source "user"
* instruction containing "fail"        -> raises FakeBackendError (the CLI prints one error line, exit 1)
* containing "slow"                    -> sleeps 1.5 s, then answers as below
* containing "placeholder"             -> ``cp {{path/to/source}} {{path/to/target}}``
* containing "danger"                  -> ``rm -rf /`` (flagged by the safety classifier)
* containing "unsure"                  -> the command above with confidence 0.05 and a "low confidence" note
* otherwise                            -> ``printf '%s\\n' <shlex.quote(instruction)>``

With n > 1 the alternatives are the command followed by ``echo 2`` ... ``echo n``.
`model_path`, when given, must name an existing file (its mtime drives daemon reloads).
Standard library only.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from tinyllm.knowledge import userpairs
from tinyllm.knowledge.safety import classify
from tinyllm.knowledge.text import normalize_instruction
from tinyllm.serve.suggestion import Suggestion

BACKEND = "tests.fake_backend"  # the value of NL2CMD_BACKEND that selects this module
FAKE_MODEL_PATH = "(fake)"
SLOW_SECONDS = 1.5


class FakeBackendError(RuntimeError):
    """Raised for instructions containing "fail" and for a missing model file."""



def danger_warnings(command: str) -> list[str]:
    """The messages of tinyllm.knowledge.safety.classify for `command`."""
    return [str(getattr(w, "message", w)) for w in classify(command)]


def environment(env: dict[str, str]) -> dict[str, str]:
    """`env` with this backend selected and the folder above tests/ first on PYTHONPATH (for daemons)."""
    root = str(Path(__file__).resolve().parent.parent)
    return {**env, "NL2CMD_BACKEND": BACKEND,
            "PYTHONPATH": os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)}


class FakeSuggester:
    """Deterministic suggester with the real Suggester's interface."""

    def __init__(self, model_path: str, user_pairs_path: str | None) -> None:
        self.model_path = model_path
        self.user_pairs_path = user_pairs_path
        self.pairs: list[userpairs.UserPair] = []
        self.user_pairs_problem: str | None = None
        self.reload_user_pairs()

    @classmethod
    def load(cls, model_path: str | None = None, user_pairs_path: str | None = None) -> FakeSuggester:
        """Load (nothing to load unless `model_path` is given, which must then exist)."""
        if model_path is not None:
            if not Path(model_path).is_file():
                raise FakeBackendError(f"cannot load model {model_path}: no such file")
            model_path = str(Path(model_path).resolve())
        return cls(model_path or FAKE_MODEL_PATH, user_pairs_path)

    def reload_user_pairs(self) -> None:
        """Re-read the user pairs file (malformed lines are skipped; an unreadable file leaves none,
        with the reason in `user_pairs_problem`, as the real Suggester does)."""
        if self.user_pairs_path:
            self.pairs, self.user_pairs_problem = userpairs.load_usable(Path(self.user_pairs_path))
        else:
            self.pairs, self.user_pairs_problem = [], None

    def suggest(self, instruction: str, platform: str = "linux", n: int = 1) -> Suggestion:
        """The deterministic answer for `instruction` (see the module docstring)."""
        t0 = time.perf_counter()
        text = normalize_instruction(instruction)
        lowered = text.lower()
        source = "model"
        pair = userpairs.lookup(self.pairs, text, platform)
        if pair is not None:
            command, source = pair.command, "user"
        else:
            if "fail" in lowered:
                raise FakeBackendError("fake backend failure requested")
            if "slow" in lowered:
                time.sleep(SLOW_SECONDS)
            if "placeholder" in lowered:
                command = "cp {{path/to/source}} {{path/to/target}}"
            elif "danger" in lowered:
                command = "rm -rf /"
            else:
                command = f"printf '%s\\n' {shlex.quote(text)}"
        alternatives = [(command, 0.0)] + [(f"echo {i}", -float(i - 1)) for i in range(2, max(1, n) + 1)]
        unsure = "unsure" in lowered and source == "model"  # a low-confidence answer, as the ranker notes it
        return Suggestion(
            command=command,
            alternatives=alternatives,
            warnings=danger_warnings(command),
            source=source,
            timing_ms=(time.perf_counter() - t0) * 1000.0,
            confidence=0.05 if unsure else 0.9,
            notes=["low confidence"] if unsure else [],
        )


Suggester = FakeSuggester  # the name the daemon looks up
