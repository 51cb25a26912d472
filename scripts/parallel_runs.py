"""Train several variants of the default plan side by side on one machine (one GPU fits four 13.8M
runs), stop them at a wall-clock deadline, and write each variant's averaged last snapshots as an int8
model file. Each variant runs plain `nl2cmd-train pretrain` and `sft` commands in its own process.

    python scripts/parallel_runs.py --base RUN --work /tmp/runs --out OUT --seconds 430 \\
        --variant A=default,900,12000,1500 --variant D=default,0,12000,1500

RUN holds the `data`, `tokenizer` and `shards` stages' outputs (pairs/, tokenizer/, shards/). A variant
is NAME=PRESET,PRETRAIN_STEPS,SFT_STEPS,SNAPSHOT_EVERY; 0 pretraining steps trains SFT from scratch.
Run it again with --resume to continue the same work folders from their checkpoints. OUT gets NAME.npz
(the mean of the last three snapshots, int8), status.json and logs.tgz."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, "-c", "from tinyllm.train.cli import main; main()"]


def parse_variant(text: str) -> tuple[str, list]:
    """NAME=PRESET,PRETRAIN,SFT,SNAPSHOT_EVERY -> (name, [preset, pretrain, sft, every])."""
    name, _, spec = text.partition("=")
    parts = spec.split(",")
    if not name or len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PRESET,PRETRAIN,SFT,SNAPSHOT_EVERY")
    return name, [parts[0], *map(int, parts[1:])]


def commands(run: Path, preset: str, pre: int, steps: int, every: int, device: str, resume: bool) -> list[list[str]]:
    """The stage commands of one variant."""
    common = ["--out", str(run), "--preset", preset, "--device", device]
    cmds = []
    if pre and not (resume and (run / "sft" / "last.pt").exists()):
        cmds.append(TRAIN + ["pretrain", *common, "--steps", str(pre), "--ckpt-every", str(min(pre, 500))]
                    + (["--resume"] if resume and (run / "pretrain" / "last.pt").exists() else []))
    sft = TRAIN + ["sft", *common, "--steps", str(steps), "--snapshot-every", str(every), "--eval-every", "0",
                   "--ckpt-every", str(min(every, 500))]
    if resume and (run / "sft" / "last.pt").exists():
        sft.append("--resume")
    elif not pre:
        sft.append("--from-scratch")
    return cmds + [sft]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=430.0, help="Stop every run after this long.")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--variant", dest="variants", type=parse_variant, action="append", required=True)
    args = ap.parse_args()
    t0 = time.time()
    variants = dict(args.variants)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 4) // len(variants)))}
    procs = {}
    for name, (preset, pre, steps, every) in variants.items():
        run = args.work / name
        run.mkdir(parents=True, exist_ok=True)
        for d in ("pairs", "tokenizer", "shards"):
            if not (run / d).exists():
                (run / d).symlink_to((args.base / d).resolve())
        script = " && ".join(" ".join(f"'{a}'" for a in c)
                             for c in commands(run, preset, pre, steps, every, args.device, args.resume))
        with open(run / "stderr.txt", "a") as log:  # the child keeps its own copy of the descriptor
            procs[name] = subprocess.Popen(["bash", "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    status: dict[str, dict] = {}
    while procs:
        for name, p in list(procs.items()):
            if p.poll() is not None:
                status[name] = {"rc": p.returncode, "seconds": round(time.time() - t0)}
                print(f"[{time.time() - t0:.0f}s] {name} exited {p.returncode}", flush=True)
                del procs[name]
        if time.time() - t0 > args.seconds:
            for name, p in procs.items():
                os.killpg(p.pid, signal.SIGTERM)
                status[name] = {"rc": "stopped at the deadline", "seconds": round(time.time() - t0)}
                print(f"[{time.time() - t0:.0f}s] {name} stopped at the deadline", flush=True)
            for p in procs.values():
                p.wait()
            break
        time.sleep(2)

    sys.path.insert(0, str(ROOT))
    from tinyllm.formats.checkpoint import load_inference, save_inference
    from tinyllm.train.average import average_checkpoints
    from tinyllm.train.curve import snapshots

    for name in variants:
        run = args.work / name
        snaps = list(snapshots(run / "sft").values())
        status.setdefault(name, {})["snapshots"] = [p.name for p in snaps]
        pick, target = snaps[-3:], args.out / f"{name}.npz"
        if len(pick) >= 2:
            status[name]["averaged"] = average_checkpoints(pick, target, dtype="int8").get("averaged_steps")
        elif pick:
            ck = load_inference(pick[0])
            save_inference(target, ck.weights, ck.config, ck.tokenizer_bytes, ck.meta, dtype="int8")
            status[name]["averaged"] = [ck.meta.get("step")]
        print(f"[{time.time() - t0:.0f}s] {name}: {status[name]}", flush=True)
    (args.out / "status.json").write_text(json.dumps(status, indent=1))
    with tarfile.open(args.out / "logs.tgz", "w:gz") as tar:
        for name in variants:
            for rel in ("stderr.txt", "pretrain/log.jsonl", "sft/log.jsonl", "times.json"):
                if (args.work / name / rel).exists():
                    tar.add(args.work / name / rel, arcname=f"{name}/{rel}")


if __name__ == "__main__":
    main()
