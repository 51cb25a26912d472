"""Load an inference checkpoint into the numpy engine and generate commands (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import generate
from .checkpoint import InferenceCheckpoint, load_inference
from .engine import NumpyTransformer
from .prompt import Example
from .text import normalize_command
from .tokenizer import Tokenizer, TokenizerError


@dataclass
class Generated:
    """One generated command with its score (mean log-prob per token for beams, total for greedy)."""

    command: str
    score: float
    finished: bool


class Runtime:
    """Model + tokenizer + decoding, built from one checkpoint file."""

    def __init__(self, ckpt: InferenceCheckpoint, path: str | Path = "") -> None:
        self.ckpt, self.path = ckpt, str(path)
        try:
            self.tokenizer = Tokenizer(ckpt.tokenizer_bytes)
        except TokenizerError as exc:
            from .checkpoint import CheckpointError

            raise CheckpointError(f"{path}: {exc}") from None
        self.model = NumpyTransformer(ckpt.config, ckpt.weights)
        self.retrieval_k = int(ckpt.meta.get("retrieval_k", 0))

    @classmethod
    def load(cls, path: str | Path) -> Runtime:
        """Read a checkpoint file (CheckpointError on any problem)."""
        return cls(load_inference(path), path)

    def prompt_ids(self, instruction: str, platform: str, examples: list[Example] | tuple = ()) -> list[int]:
        """Encode a normalised request (and retrieved examples) with the shared prompt format."""
        return self.tokenizer.encode_prompt(instruction, platform, examples)

    def _clean(self, ids: list[int]) -> str:
        return normalize_command(self.tokenizer.decode(ids))

    def generate(self, prompts: list[list[int]], max_new_tokens: int = 96) -> list[Generated]:
        """Greedy decoding of a batch of encoded prompts."""
        outs = generate.greedy(self.model, prompts, max_new_tokens)
        return [Generated(self._clean(c.ids), c.score, c.finished) for c in outs]

    def beam(self, prompt: list[int], beam: int = 4, n_best: int = 4, max_new_tokens: int = 96) -> list[Generated]:
        """n-best commands for one prompt, best first, duplicates (after cleaning) removed."""
        outs = generate.beam_search(self.model, prompt, beam=beam, n_best=n_best, max_new_tokens=max_new_tokens)
        seen: set[str] = set()
        result = []
        for c in outs:
            cmd = self._clean(c.ids)
            if cmd and cmd not in seen:
                seen.add(cmd)
                result.append(Generated(cmd, c.score, c.finished))
        return result
