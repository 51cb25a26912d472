"""Learning curves: every SFT snapshot (`snap_<STEP>.npz` in the run's SFT folder) scored on evaluation
sets, recorded against the training hours it took to reach it in `curve.jsonl` beside the snapshots.

Training hours come from the SFT log when every logged step carries `train_s` (the training loop's
wall-clock seconds, kept across resumes; see `loop.Trainer`); runs logged without it fall back to the
snapshot files' modification times: a snapshot's hours are its time after the first snapshot, plus the
first snapshot's step count at the seconds per step of the first snapshot interval (one snapshot alone
has no estimate yet). Both include evaluation during training; the log clock leaves out start-up time
between resumed chunks, the file clock does not. Hours are estimated again on every update, so a
snapshot scored before a second one existed gets its hours later.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

CURVE_FILE = "curve.jsonl"
SNAPSHOT_RE = re.compile(r"^snap_(\d+)\.npz$")
METRICS = ("exact_match", "command_name_acc", "template_acc", "nlc2cmd", "nonsense")
"""The summary fields each curve record keeps (see `evaluate.evaluate`, `evaluate.nonsense_share`)."""

Scorer = Callable[[Path, list[dict]], dict]
"""Scores a model file on rows: the model summary of `cli.run_eval` (n, the METRICS, engine)."""


def snapshots(sft_dir: Path) -> dict[int, Path]:
    """The snapshot files of an SFT folder by step, in step order."""
    found = {}
    for path in Path(sft_dir).glob("snap_*.npz"):
        m = SNAPSHOT_RE.match(path.name)
        if m:
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def read_records(path: Path) -> list[dict]:
    """The records of a JSONL file a run writes (a training log, a curve.jsonl); none when it is missing."""
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _log_rows(path: Path) -> list[dict]:
    """The training rows (those with a loss) of a log.jsonl; none when it is missing."""
    return [r for r in read_records(path) if "loss" in r]


def log_seconds(rows: Sequence[dict], steps: Sequence[int]) -> dict[int, float] | None:
    """Training seconds at each step from the log's `train_s` (the last logged step at or before it; a
    step logged twice, after a crash, takes its later row); None when a row lacks `train_s`."""
    if not rows or any("train_s" not in r for r in rows):
        return None
    at = {int(r["step"]): float(r["train_s"]) for r in rows}
    logged = sorted(at)
    out = {}
    for step in steps:
        i = bisect.bisect_right(logged, step)
        if i:
            out[step] = at[logged[i - 1]]
    return out


def file_seconds(snaps: Mapping[int, Path]) -> dict[int, float]:
    """Training seconds at each snapshot from the files' modification times: the time since the first
    snapshot plus the first snapshot's steps at the pace of the first interval; empty with one snapshot
    or when the times do not grow with the step."""
    times = {step: path.stat().st_mtime for step, path in snaps.items()}
    ordered = list(times.values())
    if len(times) < 2 or any(b <= a for a, b in zip(ordered, ordered[1:])):
        return {}  # one snapshot, or file times out of step order (copied without them): no clock
    (s0, t0), (s1, t1) = list(times.items())[:2]
    pace = (t1 - t0) / (s1 - s0)
    return {step: t - t0 + s0 * pace for step, t in times.items()}


def training_hours(sft_dir: Path, snaps: Mapping[int, Path], offset_hours: float = 0.0) -> tuple[dict[int, float], str]:
    """(hours by snapshot step, the clock used: "log" or "files"), `offset_hours` added to each."""
    seconds = log_seconds(_log_rows(Path(sft_dir) / "log.jsonl"), list(snaps))
    clock = "log"
    if seconds is None:
        seconds, clock = file_seconds(snaps), "files"
    return {step: round(s / 3600 + offset_hours, 3) for step, s in seconds.items()}, clock


def write_curve(path: Path, records: Sequence[dict]) -> None:
    """Write the records in step then set order (replacing the file at once, so a reader never sees half)."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "w") as f:
        for r in sorted(records, key=lambda r: (r["step"], r["set"])):
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def _check_sizes(records: Sequence[dict], sets: Mapping[str, list[dict]]) -> None:
    """A set name must keep its row count: a curve mixing --limit values would not compare."""
    for r in records:
        rows = sets.get(r["set"])
        if rows is not None and len(rows) != r["n"]:
            raise ValueError(f"the curve scored set {r['set']!r} on {r['n']} rows, now it has {len(rows)}; "
                             "give this selection another NAME")


def record(step: int, name: str, summary: Mapping) -> dict:
    """One curve record from a model summary (hours are stamped by `update_curve`)."""
    return {"step": step, "set": name, "hours": None, "clock": None, "n": summary["n"],
            **{k: round(float(summary[k]), 4) for k in METRICS}, "engine": summary.get("engine")}


def update_curve(sft_dir: Path, sets: Mapping[str, list[dict]], score: Scorer, offset_hours: float = 0.0,
                 on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Score every snapshot of `sft_dir` on every set (name -> rows) not yet in its curve.jsonl and stamp
    all records with the current hours estimate; returns the new records. The file is rewritten after
    each one (an interrupted update keeps its finished work); `on_record` sees each new record."""
    sft_dir = Path(sft_dir)
    snaps = snapshots(sft_dir)
    if not snaps:
        raise FileNotFoundError(f"{sft_dir} holds no snapshots (snap_STEP.npz)")
    path = sft_dir / CURVE_FILE
    records = read_records(path)
    _check_sizes(records, sets)
    hours, clock = training_hours(sft_dir, snaps, offset_hours)

    def stamp(r: dict) -> dict:
        if r["step"] in hours:
            r["hours"], r["clock"] = hours[r["step"]], clock
        return r

    records = [stamp(r) for r in records]
    done = {(r["step"], r["set"]) for r in records}
    new = []
    for step, snap in snaps.items():
        for name, rows in sets.items():
            if (step, name) not in done:
                new.append(stamp(record(step, name, score(snap, rows))))
                records.append(new[-1])
                write_curve(path, records)
                if on_record is not None:
                    on_record(new[-1])
    write_curve(path, records)
    return new
