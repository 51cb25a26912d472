"""Ask the served model a probe round's requests: each row of PROBE.jsonl gets the model's "answer".

    python scripts/probe_answer.py PROBE.jsonl                  # the shipped model, as `nl2cmd` serves it
    python scripts/probe_answer.py PROBE.jsonl --model M.npz    # another model file (its index beside it)

A probe is the first step of a probe round (tinyllm/train/data/README.md): a writer lists everyday
requests of one domain with every reasonable answer (`{"request", "platform", "accept"}`; platform
`linux`, `macos` or `common`, which is asked as `linux`), asks the model with this script, then judges
each answer (`"right"`, `"why"`) and writes training pairs for what it got wrong. The model answers as
`nl2cmd` does (checks, ranking, second model), without the user's own pairs. The file is rewritten in
place with `"answer"` added to each row and every other field kept; a copy of the file as it was is kept
beside it (PROBE.jsonl.bak). A malformed file is reported on one line and left untouched. A request the
model cannot answer gets `"ERROR: ..."` as its answer, and the rest are still asked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from tinyllm.formats.prompt import PLATFORMS, USER_PLATFORMS


class ProbeError(Exception):
    """A probe file that cannot be asked (one-line message)."""


def read_probe(path: Path) -> list[dict]:
    """The probe's rows; raises ProbeError naming the first line that is not a usable request."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: cannot read ({exc})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProbeError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("request"), str) or not row["request"].strip():
            raise ProbeError(f"{path}:{number}: expected an object with a non-empty \"request\"")
        if row.get("platform", "linux") not in PLATFORMS:
            raise ProbeError(f"{path}:{number}: platform {row.get('platform')!r} is not one of {list(PLATFORMS)}")
        rows.append(row)
    if not rows:
        raise ProbeError(f"{path}: no requests")
    return rows


def user_platform(row: dict) -> str:
    """The system a probe row is asked for: its own, or linux for a `common` request."""
    platform = row.get("platform", "linux")
    return platform if platform in USER_PLATFORMS else "linux"


def answer_rows(rows: list[dict], suggester, echo=print) -> None:
    """Add the model's "answer" to each row in place (echoing request -> answer, terminal-safe)."""
    from tinyllm.knowledge.text import safe_line

    for row in rows:
        try:
            row["answer"] = suggester.suggest(row["request"], user_platform(row)).command
        except Exception as exc:  # one request that fails must not lose the others' answers
            row["answer"] = f"ERROR: {exc}"
        echo(f"{safe_line(row['request'])}\t->\t{safe_line(row['answer'])}")


def write_rows(path: Path, rows: list[dict]) -> None:
    """Rewrite the probe atomically after keeping the file as it was in PROBE.jsonl.bak."""
    shutil.copyfile(path, path.with_name(path.name + ".bak"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probe", type=Path, help="JSONL rows with request, platform (and accept)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args(argv)
    from tinyllm.formats.checkpoint import CheckpointError
    from tinyllm.serve.suggest import Suggester

    try:
        rows = read_probe(args.probe)
        suggester = Suggester.load(args.model, user_pairs_path=None)
    except (ProbeError, CheckpointError) as exc:
        print(f"probe_answer: {exc}", file=sys.stderr)
        return 1
    answer_rows(rows, suggester)
    write_rows(args.probe, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
