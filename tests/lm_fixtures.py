"""Shared builders for tests that need a real (tiny) tokenizer and model file."""

from __future__ import annotations

import json
from pathlib import Path

from tinyllm.formats.tokenizer import Tokenizer

PAIRS = [
    ("list all files in the current directory", "ls -la"),
    ("show disk usage of the home folder", "du -sh ~"),
    ("find all log files", "find . -name '*.log'"),
    ("count lines in a file", "wc -l {{path/to/file}}"),
    ("kill the process on port 3000", "kill $(lsof -t -i :3000)"),
    ("search for a pattern in python files", "grep -rn 'pattern' --include '*.py' ."),
    ("show the five biggest folders", "du -sh * | sort -rh | head -5"),
    ("rename .jpeg files to .jpg", "for f in *.jpeg; do mv \"$f\" \"${f%.jpeg}.jpg\"; done"),
    ("compress a directory", "tar -czvf {{archive.tar.gz}} {{path/to/directory}}"),
    ("print the working directory", "pwd"),
]


def write_pairs(path: Path, pairs=PAIRS, repeat: int = 3) -> Path:
    """A pairs JSONL file (instruction, command, source, platform)."""
    with open(path, "w") as f:
        for _ in range(repeat):
            for ins, cmd in pairs:
                f.write(json.dumps({"instruction": ins, "command": cmd, "source": "test", "platform": "linux"}) + "\n")
    return path


def make_tokenizer(tmp: Path, vocab_size: int = 320) -> Tokenizer:
    """Train a tiny SentencePiece model with the project's settings (train/tokenizer_train.py)."""
    from tinyllm.train.tokenizer_train import train_tokenizer

    pairs = write_pairs(tmp / "pairs.jsonl")
    model_path = train_tokenizer(None, [pairs], tmp / "tok", vocab_size=vocab_size, sample_chars=100_000)
    return Tokenizer.from_file(model_path)


def make_model(tok: Tokenizer, seed: int = 0):
    """A randomly initialised micro model sized to the tokenizer (needs torch)."""
    import torch

    from tinyllm.formats.config import ModelConfig
    from tinyllm.train.model import Transformer

    torch.manual_seed(seed)
    return Transformer(ModelConfig.from_name("micro", vocab_size=tok.vocab_size)).eval()
