"""Ask the served model a probe round's requests: each row of PROBE.jsonl gets the model's "answer".

    python scripts/probe_answer.py PROBE.jsonl                  # the shipped model, as `nl2cmd` serves it
    python scripts/probe_answer.py PROBE.jsonl --model M.npz    # another model file (its index beside it)
    python scripts/probe_answer.py --summary A.jsonl B.jsonl    # count judged probes (no model asked)

A probe is the first step of a probe round (tinyllm/train/data/README.md): a writer lists everyday
requests of one domain with every reasonable answer (`{"request", "platform", "accept"}`; platform
`linux`, `macos` or `common`, which is asked as `linux`), asks the model with this script, then judges
each answer (`"right"`, `"why"`) and writes training pairs for what it got wrong. The model answers as
`nl2cmd` does (checks, ranking, second model), without the user's own pairs. The file is rewritten in
place with `"answer"` added to each row and every other field kept; a copy of the file as it was is kept
beside it (PROBE.jsonl.bak). A malformed file is reported on one line and left untouched. A request the
model cannot answer gets `"ERROR: ..."` as its answer, and the rest are still asked.

`--summary` counts judged probes the same way for every writer and round: right answers of all requests,
of compound and single-step ones, of Linux/common and macOS ones, a Markdown row per file and a total.
A request is compound when its first accepted answer (else the model's answer) runs more than one
command (a pipeline, a `&&`/`||`/`;` list, a loop, process substitution, `xargs` and its command), takes
a `$(...)` or backquoted value, redirects output to a file, or is `find` with an action that runs a
command (`-exec`, `-execdir`, `-ok`). A row not yet judged (no boolean `"right"`) is counted apart and
makes the exit status 1.
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


FIND_RUNS_A_COMMAND = frozenset({"-exec", "-execdir", "-ok", "-okdir"})


def is_compound(command: str) -> bool:
    """Whether a command does more than one step (see the module's `--summary`)."""
    from tinyllm.knowledge.shellparse import lex, simple_commands

    if len(simple_commands(command)) > 1 or "$(" in command or "`" in command:
        return True
    tokens = lex(command)
    for op, target in zip(tokens, tokens[1:]):
        redirect = op.kind == "op" and op.value.lstrip("0123456789&").startswith(">") and not op.value[-1].isdigit()
        if redirect and target.kind == "word" and target.value != "/dev/null":  # not 2>&1, not discarded
            return True
    words = [t.value for t in tokens if t.kind == "word"]
    return bool(words) and words[0] == "find" and not FIND_RUNS_A_COMMAND.isdisjoint(words)


def _count(rows: list[dict]) -> dict[str, list[int]]:
    """[right, asked] per group of judged rows, and the rows not judged yet."""
    groups: dict[str, list[int]] = {g: [0, 0] for g in ("all", "compound", "single", "linux", "macos")}
    unjudged = 0
    for row in rows:
        if not isinstance(row.get("right"), bool):
            unjudged += 1
            continue
        accept = [a for a in row.get("accept") or [] if isinstance(a, str) and a.strip()]
        reference = accept[0] if accept else str(row.get("answer", ""))
        platform = "macos" if row.get("platform") == "macos" else "linux"
        for group in ("all", "compound" if is_compound(reference) else "single", platform):
            groups[group][0] += row["right"]
            groups[group][1] += 1
    groups["unjudged"] = [unjudged, unjudged]
    return groups


SUMMARY_HEADER = ("| probe | right | compound | single-step | Linux and common | macOS | not judged |\n"
                  "|---|---|---|---|---|---|---|")


def summary_line(name: str, groups: dict[str, list[int]]) -> str:
    """One Markdown row: right of asked (percent) per group."""
    def cell(right: int, asked: int) -> str:
        return f"{right:,} of {asked:,} ({100 * right / asked:.0f}%)" if asked else "-"

    cells = [cell(*groups[g]) for g in ("all", "compound", "single", "linux", "macos")]
    return f"| {name} | " + " | ".join(cells) + f" | {groups['unjudged'][0]} |"


def summarise(paths: list[Path], echo=print) -> int:
    """Print the counts of each judged probe and their total; 1 when a file is unusable or not fully judged."""
    total: dict[str, list[int]] = {}
    names = [p.name for p in paths]
    if len(set(names)) < len(names):  # writers' folders each holding a probe.jsonl
        names = [f"{p.parent.name}/{p.name}" for p in paths]
    echo(SUMMARY_HEADER)
    for path, name in zip(paths, names, strict=True):
        groups = _count(read_probe(path))
        echo(summary_line(name, groups))
        for key, (right, asked) in groups.items():
            total.setdefault(key, [0, 0])
            total[key][0] += right
            total[key][1] += asked
    if len(paths) > 1:
        echo(summary_line("**total**", total))
    return 1 if total["unjudged"][0] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probe", type=Path, nargs="+", help="JSONL rows with request, platform (and accept)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--summary", action="store_true", help="count judged probes instead of asking the model")
    args = parser.parse_args(argv)
    if args.summary:
        try:
            return summarise(args.probe)
        except ProbeError as exc:
            print(f"probe_answer: {exc}", file=sys.stderr)
            return 1
    if len(args.probe) > 1:
        print("probe_answer: give one probe file to ask (several only with --summary)", file=sys.stderr)
        return 2
    args.probe = args.probe[0]
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
