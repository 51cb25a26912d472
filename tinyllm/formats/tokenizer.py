"""SentencePiece tokenizer wrapper with the fixed special-token ids of tinyllm.formats.prompt."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm

from .prompt import EOS_ID, SPECIAL_IDS, Example, prompt_parts


class TokenizerError(ValueError):
    """The tokenizer model is unreadable or does not carry the project's special tokens."""


class Tokenizer:
    """A SentencePiece model plus the prompt encoding shared by SFT, eval and serving."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = bytes(model_bytes)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.model_bytes)
        except Exception as exc:  # sentencepiece raises bare RuntimeError/OSError
            raise TokenizerError(f"not a SentencePiece model: {exc}") from None
        for piece, want in SPECIAL_IDS.items():
            got = self.sp.piece_to_id(piece)
            if got != want:
                raise TokenizerError(f"special token {piece} has id {got}, expected {want}")
        # Literal special-token strings typed by a user must not become control tokens.
        self._scrub = {tok: tok[1:-1] for tok in SPECIAL_IDS}

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """Load from a ``.model`` file."""
        return cls(Path(path).read_bytes())

    @property
    def vocab_size(self) -> int:
        """Number of pieces."""
        return self.sp.get_piece_size()

    @property
    def sha256(self) -> str:
        """Fingerprint of the model bytes (checkpoints and shards record it)."""
        return hashlib.sha256(self.model_bytes).hexdigest()

    def encode(self, text: str) -> list[int]:
        """Plain text to ids (no bos/eos); literal special-token strings are neutralised."""
        for tok, plain in self._scrub.items():
            if tok in text:
                text = text.replace(tok, plain)
        return list(self.sp.encode(text, out_type=int))

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text; stops at the first ``<eos>`` and drops other special ids."""
        out: list[int] = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= len(SPECIAL_IDS):  # special ids are exactly 0..len-1
                out.append(i)
        return self.sp.decode(out)

    def encode_prompt(self, instruction: str, platform: str = "linux", examples: Sequence[Example] = ()) -> list[int]:
        """The model input for a request: ``<bos> ... <command>`` (see tinyllm.formats.prompt)."""
        ids: list[int] = []
        for part in prompt_parts(instruction, platform, list(examples)):
            if part in SPECIAL_IDS:
                ids.append(SPECIAL_IDS[part])
            else:
                ids.extend(self.encode(part))
        return ids

    def encode_target(self, command: str) -> list[int]:
        """The SFT target: command ids followed by ``<eos>``."""
        return self.encode(command) + [EOS_ID]

    def word_starts(self) -> list[bool]:
        """Per id: does the piece begin a new word (SentencePiece's leading U+2581)? ``<eos>`` counts as one."""
        starts = [self.sp.id_to_piece(i).startswith("\u2581") for i in range(self.vocab_size)]
        starts[EOS_ID] = True
        return starts
