"""The prompt format and special tokens: defined once, used by tokenizer training, SFT, eval and serving.

A training/inference sequence is::

    <bos> [<example> EX_INSTR <excommand> EX_CMD]*k <instruction> <PLATFORM> INSTR <command> CMD <eos>

`k` retrieved neighbour pairs (possibly 0) come first, each marked with its own tokens, then the
request with a platform tag. Only ``CMD <eos>`` carries loss in SFT. Pure standard library.
"""

from __future__ import annotations

import sys
import zlib
from collections import namedtuple

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

INSTRUCTION = "<instruction>"
COMMAND = "<command>"
EXAMPLE = "<example>"
EXAMPLE_COMMAND = "<excommand>"

PLATFORMS = ("linux", "macos", "common")
PLATFORM_TOKENS = {p: f"<{p}>" for p in PLATFORMS}
# What serving sends: the user's own system. "common" describes a *command* (it runs on both), never a
# user, so prompts are built with one of these two (training_platform, serving_platform).
USER_PLATFORMS = ("linux", "macos")

# Fixed order => fixed ids 4.. after the four SentencePiece control ids.
USER_SYMBOLS: tuple[str, ...] = (INSTRUCTION, COMMAND, EXAMPLE, EXAMPLE_COMMAND, *PLATFORM_TOKENS.values())
SPECIAL_IDS: dict[str, int] = {PAD: PAD_ID, UNK: UNK_ID, BOS: BOS_ID, EOS: EOS_ID}
SPECIAL_IDS.update({tok: 4 + i for i, tok in enumerate(USER_SYMBOLS)})

# tldr platform folders and where each belongs.
TLDR_PLATFORM = {"linux": "linux", "osx": "macos", "common": "common"}


def current_platform() -> str:
    """The platform tag of the running OS ("macos" or "linux")."""
    return "macos" if sys.platform == "darwin" else "linux"


def platform_of(source_platform: str) -> str:
    """Map a data source's platform field (tldr folder name, 'linux', 'osx', ...) to a prompt platform."""
    if source_platform in TLDR_PLATFORM:
        return TLDR_PLATFORM[source_platform]
    return source_platform if source_platform in PLATFORM_TOKENS else "common"


def training_platform(platform: str, key: str) -> str:
    """The tag a training pair is shown with: its own for a linux or macos command; a command for both
    ("common") is a right answer for a user on either, so it gets linux or macos, half each, by a hash
    of `key` (its request: the same tag in every run). Training on the "common" tag, which serving never
    sends, taught Linux prompts mostly from NL2Bash (v4 answered "list files" with `find .`; fixed in v12b)."""
    if platform in USER_PLATFORMS:
        return platform
    return USER_PLATFORMS[zlib.crc32(key.encode("utf-8")) & 1]


def serving_platform(platform: str) -> str:
    """The tag a request from a user on `platform` gets; a platform-neutral evaluation row ("common") is
    asked as a Linux user would ask it."""
    return platform if platform in USER_PLATFORMS else "linux"


class Example(namedtuple("Example", "instruction command")):
    """A retrieved neighbour pair (instruction, command), shown to the model before the request."""

    __slots__ = ()


def prompt_parts(instruction: str, platform: str = "linux", examples: tuple[Example, ...] | list[Example] = ()) -> list[str]:
    """The prompt as a list of parts: special-token strings (keys of SPECIAL_IDS) and plain text segments.

    Ends with ``<command>``; ``<bos>`` comes first. The tokenizer maps special parts to their fixed ids and
    encodes each text part on its own, so training and serving tokenise identically. `instruction` and
    the examples must already be normalised (tinyllm.knowledge.text).
    """
    if platform not in PLATFORM_TOKENS:
        raise ValueError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")
    parts: list[str] = [BOS]
    for ex in examples:
        parts += [EXAMPLE, ex.instruction, EXAMPLE_COMMAND, ex.command]
    parts += [INSTRUCTION, PLATFORM_TOKENS[platform], instruction, COMMAND]
    return parts


def prompt_text(instruction: str, platform: str = "linux", examples: tuple[Example, ...] | list[Example] = ()) -> str:
    """Human-readable rendering of the prompt (logs, debugging)."""
    return " ".join(prompt_parts(instruction, platform, examples))
