"""Training throughput with glibc's malloc against jemalloc (what `nl2cmd-train` preloads), side by side.

    python bench/train_allocator.py                            # default preset, SFT-shaped batch 160 x 64
    python bench/train_allocator.py --batch 16 --seq 256 --rounds 3
    python bench/train_allocator.py --quick                    # smoke test

Each measurement is one child process running `bench/train_throughput.py` (the real training step,
bf16 autocast where the CPU has it) under one allocator: `system` (glibc, `NL2CMD_MALLOC=system`, no
preload) or `jemalloc` (preloaded with `tinyllm.train.allocator`'s settings). The allocators alternate,
the order rotated each round; the table gives the median tokens/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    add_common_args,
    finish,
    fmt,
    machine_info,
    markdown_table,
    median,
    positive_int,
    print_header,
    run_main,
)

HERE = Path(__file__).resolve().parent


def allocator_env(name: str) -> dict[str, str]:
    """The child's environment for allocator `name` (system | jemalloc): jemalloc's is the one
    `nl2cmd-train sft` re-executes with."""
    from tinyllm.train.allocator import SWITCH, reexec_plan

    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF", SWITCH)}
    if name == "system":
        return {**env, SWITCH: "system"}
    jemalloc = reexec_plan(["nl2cmd-train", "sft"], env)
    if jemalloc is None:
        raise BenchError("jemalloc cannot be preloaded here (needs Linux and libjemalloc2)")
    return jemalloc


def measure(name: str, args: argparse.Namespace) -> float:
    """Tokens/s of one child `train_throughput.py` run under allocator `name`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, str(HERE / "train_throughput.py"), "--presets", args.preset, "--modes", args.mode,
               "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps), "--repeats", "1",
               "--matmul-repeats", "1", "--matmul-size", "256", "--out", str(out)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, env=allocator_env(name), capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            raise BenchError(f"{name}: train_throughput.py failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        runs = [r for r in json.loads(out.read_text())["runs"] if r.get("status") == "ok"]
        if not runs:
            raise BenchError(f"{name}: no successful run")
        return float(runs[0]["tokens_per_s"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "train_allocator")
    p.add_argument("--preset", default="default")
    p.add_argument("--mode", default="bf16", choices=["bf16", "fp32"], help="autocast mode of the step")
    p.add_argument("--batch", type=positive_int, default=160, help="sequences per step (SFT default: 160)")
    p.add_argument("--seq", type=positive_int, default=64, help="tokens per sequence")
    p.add_argument("--steps", type=positive_int, default=6, help="timed steps per measurement")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    p.add_argument("--threads", type=positive_int, default=None)
    args = p.parse_args()
    if args.quick:
        args.preset, args.batch, args.seq, args.steps, args.rounds = "micro", 4, 32, 2, 1
    names = ["system", "jemalloc"]
    results: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % 2:] + names[: r % 2]:
            results[name].append(measure(name, args))
            print(f"round {r + 1}: {name} {results[name][-1]:,.0f} tokens/s", file=sys.stderr)
    med = {n: median(v) for n, v in results.items()}
    payload: dict[str, Any] = {
        "bench": "train_allocator", "quick": args.quick, "machine": machine_info(torch_threads=False),
        "settings": {k: getattr(args, k) for k in ("preset", "mode", "batch", "seq", "steps", "rounds", "threads")},
        "tokens_per_s": results, "median": med, "ratio_jemalloc": med["jemalloc"] / med["system"],
    }

    def report(pl: dict) -> None:
        print_header("Training throughput: glibc malloc against jemalloc", pl)
        s = pl["settings"]
        print(f"\n{s['preset']} preset, {s['mode']}, batch {s['batch']} x {s['seq']}, {s['steps']} steps, "
              f"{s['rounds']} interleaved rounds\n")
        rows = [[n, ", ".join(fmt(x, 0) for x in pl["tokens_per_s"][n]), fmt(pl["median"][n], 0),
                 f"{pl['median'][n] / pl['median']['system']:.2f}x"] for n in names]
        print(markdown_table(["allocator", "tokens/s per round", "median", "vs system"], rows))

    return finish(payload, report, args.out)


if __name__ == "__main__":
    run_main(main)
