"""What the named-program step (tinyllm.knowledge.tools, `Runtime.prefer_named_tool`) costs per request, side by side.

For each request the shipped model answers in-process (no daemon, answer cache cleared) with the step
on and off, interleaved, so background load affects both alike. Requests: the everyday sets (most
name no program, so the step only looks the words up) and requests that name a program (the step
decodes a candidate per named program and scores it against the answer). Prints a table and writes
JSON (default bench/results/named_tools.json).

    python bench/named_tools.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import add_common_args, die, finish, machine_info, markdown_table, positive_int, print_header, run_main

from tinyllm.serve.suggest import Suggester

HERE = Path(__file__).resolve().parent
NAMING = [
    "scan all devices with lvmdiskscan", "show DNS traffic using bandwhich", "open a new session with zellij",
    "convert video.mp4 to a gif with ffmpeg", "check deploy.sh with shellcheck", "download a file with aria2c",
    "show bandwidth usage per process with bandwhich", "list block devices with lsblk", "compress notes.txt with zstd",
    "sync the photos folder to backup with rsync", "show my open pull requests with gh",
]


def everyday() -> list[str]:
    """The requests of bench/data/everyday*.jsonl."""
    out = []
    for name in ("everyday.jsonl", "everyday2.jsonl"):
        out += [json.loads(line)["instruction"] for line in (HERE / "data" / name).read_text().splitlines() if line]
    return out


def time_one(sugg: Suggester, request: str, named: bool) -> tuple[float, str]:
    """Milliseconds for one uncached answer, and the answer."""
    sugg.runtime.named_tools = named
    sugg._cache.clear()
    t0 = time.perf_counter()
    command = sugg.suggest(request, "linux").command
    return (time.perf_counter() - t0) * 1000, command


def measure(sugg: Suggester, requests: list[str], runs: int) -> dict:
    """Interleaved off/on timings of every request, `runs` times."""
    off: list[float] = []
    on: list[float] = []
    changed = 0
    for _ in range(runs):
        for req in requests:
            t_off, a_off = time_one(sugg, req, False)
            t_on, a_on = time_one(sugg, req, True)
            off.append(t_off)
            on.append(t_on)
            changed += a_off != a_on
    sugg.runtime.named_tools = True
    p_off, p_on = statistics.median(off), statistics.median(on)
    return {"n": len(requests), "naming": sum(bool(sugg.tools.named_in(r)) for r in requests),
            "p50_off_ms": round(p_off, 2), "p50_on_ms": round(p_on, 2), "mean_off_ms": round(statistics.fmean(off), 2),
            "mean_on_ms": round(statistics.fmean(on), 2), "ratio_p50": round(p_on / p_off, 3),
            "ratio_mean": round(statistics.fmean(on) / statistics.fmean(off), 3), "changed": changed // runs}


def print_report(payload: dict) -> None:
    print_header("Named-program step: cost per request (in-process, shipped model, no answer cache)", payload)
    rows = [(name, r["n"], r["naming"], f"{r['p50_off_ms']:.1f}", f"{r['p50_on_ms']:.1f}", f"{r['ratio_p50']:.2f}",
             f"{r['ratio_mean']:.2f}", r["changed"]) for name, r in payload["sets"].items()]
    print()
    print(markdown_table(["requests", "n", "naming a program", "p50 off ms", "p50 on ms", "p50 on/off", "mean on/off",
                          "answers changed"], rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, "named_tools")
    ap.add_argument("--runs", type=positive_int, default=5, help="passes over the requests")
    args = ap.parse_args()
    sugg = Suggester.load()
    if sugg.tools is None:
        die("the shipped index has no tool lexicon (re-ship the model with nl2cmd-train ship)")
    runs, sets = (1, {"everyday": everyday()[:4], "naming a program": NAMING[:2]}) if args.quick else \
        (args.runs, {"everyday": everyday(), "naming a program": NAMING})
    payload = {"bench": "named_tools", "quick": args.quick, "machine": machine_info(torch_threads=False),
               "engine": sugg.runtime.engine, "runs": runs,
               "sets": {name: measure(sugg, reqs, runs) for name, reqs in sets.items()}}
    return finish(payload, print_report, args.out)


if __name__ == "__main__":
    run_main(main)
