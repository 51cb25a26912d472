"""Warm latency of `nl2cmd QUERY` over many different requests, for model files that differ only in their
decode settings (e.g. with and without the candidate ranking, or ranking beam widths).

Each model gets its own daemon (private NL2CMD_HOME); every request is new to it, so the model decodes.
Models are interleaved request by request so background load hits them alike. Writes JSON.

    python bench/rank_latency.py --requests 48 greedy=/tmp/greedy.npz ranked4=/tmp/rank4.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import run_main
from latency import nl2cmd_command, percentile, timed

REPO = Path(__file__).resolve().parent.parent


def requests(limit: int) -> list[str]:
    """Varied everyday requests, one per line of bench/data/everyday*.jsonl, in a fixed interleaved order."""
    sets = [[json.loads(line)["instruction"] for line in p.read_text().splitlines() if line.strip()]
            for p in sorted((REPO / "bench" / "data").glob("everyday*.jsonl"))]
    out: list[str] = []
    i = 0
    while len(out) < limit and any(i < len(s) for s in sets):
        out += [s[i] for s in sets if i < len(s)]
        i += 1
    return out[:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=MODEL.npz (the .idx beside it is used)")
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--plain", action="store_true",
                    help="also time plain `nl2cmd QUERY` (the user's path: no --json, no --model) against the "
                         "installed default model, as series 'default (plain)'")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rank_latency.json")
    args = ap.parse_args()
    exe = nl2cmd_command()
    models = [m.split("=", 1) for m in args.models]
    if args.plain:
        models.append(["default (plain)", ""])
    homes = {name: tempfile.mkdtemp(prefix="n2cr", dir="/tmp") for name, _ in models}
    base = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_")}
    envs = {name: {**base, "NL2CMD_HOME": homes[name], "NL2CMD_THREADS": "1"} for name, _ in models}
    wall: dict[str, list[float]] = {name: [] for name, _ in models}
    gen: dict[str, list[float]] = {name: [] for name, _ in models}
    notes: dict[str, int] = dict.fromkeys(wall, 0)
    reqs = requests(args.requests)
    try:
        for name, path in models:
            model = ["--model", path] if path else []
            subprocess.run([*exe, "daemon", "start", *model], env=envs[name], capture_output=True,
                           timeout=120, check=True)
            timed([*exe, *model, "--", "print the date"], envs[name])
        for q in reqs:
            for name, path in models:
                cmd = [*exe, "--json", "--model", path, "--", q] if path else [*exe, *(["--"] if q.startswith("-") else []), q]
                ms, data = timed(cmd, envs[name])
                wall[name].append(ms)
                if "timing_ms" in data:
                    gen[name].append(float(data["timing_ms"]))
                notes[name] += bool(data.get("notes"))
    finally:
        for name, _ in models:
            subprocess.run([*exe, "daemon", "stop"], env=envs[name], capture_output=True, timeout=60)
            shutil.rmtree(homes[name], ignore_errors=True)
    results = {name: {"requests": len(wall[name]), "p50_ms": round(percentile(wall[name], 50), 1),
                      "p90_ms": round(percentile(wall[name], 90), 1),
                      "generation_p50_ms": round(percentile(gen[name], 50), 1) if gen[name] else None,
                      "generation_p90_ms": round(percentile(gen[name], 90), 1) if gen[name] else None,
                      "answers_with_a_note": notes[name], "samples_ms": [round(s, 1) for s in wall[name]]}
               for name, _ in models}
    report = {"models": dict(models), "python": sys.version.split()[0],
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
              "results": results}
    print(f"{'model':<16}{'p50 ms':>9}{'p90 ms':>9}{'gen p50':>9}{'gen p90':>9}")
    for name, r in results.items():
        print(f"{name:<16}{r['p50_ms']:>9.1f}{r['p90_ms']:>9.1f}{r['generation_p50_ms'] or 0:>9.1f}"
              f"{r['generation_p90_ms'] or 0:>9.1f}")
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
