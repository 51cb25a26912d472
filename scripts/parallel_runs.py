"""Train several variants of the default plan side by side on one machine (one GPU fits four 13.8M
runs), stop them at a wall-clock deadline, and write each variant's averaged last snapshots as an int8
model file. Each variant runs plain `nl2cmd-train pretrain` and `sft` commands in its own process.

    python scripts/parallel_runs.py --base RUN --work /tmp/runs --out OUT --seconds 430 \\
        --variant A=default,900,12000,1500 --variant D=default,0,12000,1500 \\
        --variant T=default,900,12000,1500,first=TN/pairs:3000 --variant X2=default,900,12000,1500,data=X2/pairs \\
        --curve dev=RUN/pairs/dev.jsonl --curve bench/data/everyday5.jsonl --curve-limit 300

RUN holds the `data`, `tokenizer` and `shards` stages' outputs (pairs/, tokenizer/, shards/). A variant
is NAME=PRESET,PRETRAIN_STEPS,SFT_STEPS,SNAPSHOT_EVERY[,KEY=VALUE...]; 0 pretraining steps trains SFT
from scratch. Keys: `data=DIR` trains on that pairs folder instead of RUN/pairs (another `data` stage's,
e.g. `--core-repeat 2`, with the same tokenizer); `first=DIR:STEPS` runs a first SFT stage of STEPS steps
on the pairs folder DIR (SFT-DIR `first`) and starts the main stage from its weights; `lr=X` and
`batch=N` set the main stage's learning rate and batch size; `fp32=1` trains every stage in full fp32
(`--no-bf16`: what a CPU without native bf16 runs).
Run it again with --resume to continue the same work folders from their checkpoints. OUT gets NAME.npz
(the mean of the last three snapshots, int8), status.json and logs.tgz; with --curve, each variant's
snapshots are also scored as served on those sets after training (`nl2cmd-train curve`, the variants
side by side; hours of SFT, a first stage's included; the C engine is built in place first where a
compiler is found, else the numpy engine scores, about four times slower) and OUT gets curves.tgz with
NAME_curve.jsonl and NAME_curve.png (`nl2cmd-train report`): one file, so that four models and
everything else fit a device call's eight returned files."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, "-c", "from tinyllm.train.cli import main; main()"]


VARIANT_KEYS = ("data", "first", "lr", "batch", "fp32")


def parse_variant(text: str) -> tuple[str, dict]:
    """NAME=PRESET,PRETRAIN,SFT,SNAPSHOT_EVERY[,KEY=VALUE...] -> (name, spec)."""
    name, _, spec = text.partition("=")
    parts = spec.split(",")
    if not name or len(parts) < 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PRESET,PRETRAIN,SFT,SNAPSHOT_EVERY[,KEY=VALUE...]")
    try:
        out: dict = {"preset": parts[0], "pre": int(parts[1]), "steps": int(parts[2]), "every": int(parts[3])}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the step counts must be integers") from None
    for extra in parts[4:]:
        key, sep, value = extra.partition("=")
        if not sep or key not in VARIANT_KEYS:
            raise argparse.ArgumentTypeError(f"{text!r}: {extra!r} is not one of {', '.join(k + '=' for k in VARIANT_KEYS)}")
        if key == "first":
            folder, _, steps = value.rpartition(":")
            if not folder or not steps.isdigit():
                raise argparse.ArgumentTypeError(f"{text!r}: first= needs PAIRS_DIR:STEPS")
            value = (folder, int(steps))
        out[key] = value
    return name, out


def commands(run: Path, spec: dict, device: str, resume: bool) -> list[list[str]]:
    """The stage commands of one variant (`parse_variant`'s spec): pretraining, the optional first SFT stage
    and the main SFT stage; with `resume`, each continues its own checkpoint and finished stages are skipped."""
    pre, steps, every = spec["pre"], spec["steps"], spec["every"]
    common = ["--out", str(run), "--preset", spec["preset"], "--device", device]
    common += ["--no-bf16"] if spec.get("fp32") in ("1", "yes", "true") else []
    done = {d: resume and (run / d / "last.pt").exists() for d in ("pretrain", "first", "sft")}
    cmds = []
    if pre and not (done["first"] or done["sft"]):
        cmds.append(TRAIN + ["pretrain", *common, "--steps", str(pre), "--ckpt-every", str(min(pre, 500))]
                    + (["--resume"] if done["pretrain"] else []))
    start = [] if pre else ["--from-scratch"]
    if "first" in spec and not done["sft"]:
        folder, first_steps = spec["first"]
        cmds.append(TRAIN + ["sft", *common, "--sft-dir", "first", "--pairs", str(Path(folder).resolve()),
                             "--steps", str(first_steps), "--eval-every", "0", "--ckpt-every", str(min(first_steps, 500))]
                    + (["--resume"] if done["first"] else start))
        start = ["--init", str(run / "first" / "last.pt")]
    sft = TRAIN + ["sft", *common, "--steps", str(steps), "--snapshot-every", str(every), "--eval-every", "0",
                   "--ckpt-every", str(min(every, 500))]
    sft += ["--lr", spec["lr"]] if "lr" in spec else []
    sft += ["--batch-size", spec["batch"]] if "batch" in spec else []
    return cmds + [sft + (["--resume"] if done["sft"] else start)]


def run_side_by_side(scripts: dict[str, str], work: Path, env: dict, seconds: float, t0: float, log_name: str,
                     status: dict) -> None:
    """Run each variant's bash script in its own process group until all exit or `seconds` after `t0` pass
    (then stop the rest); record each one's exit in `status[name][log_name]`."""
    procs = {}
    for name, script in scripts.items():
        with open(work / name / log_name, "a") as log:  # the child keeps its own copy of the descriptor
            procs[name] = subprocess.Popen(["bash", "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    while procs:
        for name, p in list(procs.items()):
            if p.poll() is not None:
                status.setdefault(name, {})[log_name] = {"rc": p.returncode, "seconds": round(time.time() - t0)}
                print(f"[{time.time() - t0:.0f}s] {name} exited {p.returncode} ({log_name})", flush=True)
                del procs[name]
        if time.time() - t0 > seconds:
            for name, p in procs.items():
                os.killpg(p.pid, signal.SIGTERM)
                status.setdefault(name, {})[log_name] = {"rc": "stopped at the deadline",
                                                         "seconds": round(time.time() - t0)}
                print(f"[{time.time() - t0:.0f}s] {name} stopped at the deadline ({log_name})", flush=True)
            for p in procs.values():
                p.wait()
            break
        time.sleep(2)


def first_stage_hours(run: Path) -> float:
    """The first SFT stage's training hours (its log's last `train_s`): the main stage's curve starts there."""
    log = run / "first" / "log.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return json.loads(lines[-1]).get("train_s", 0.0) / 3600 if lines else 0.0


def build_engine() -> bool:
    """Build the C kernels in place (`setup.py build_ext --inplace`) so that the curve scoring decodes with
    the int8 C engine; False (the numpy engine then scores) where that fails, e.g. without a compiler."""
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode == 0


def pack_curves(out: Path, work: Path, names: list[str]) -> Path | None:
    """Write each variant's curve (work/NAME/sft/curve.jsonl, and work/NAME/learning_curve.png from
    `nl2cmd-train report`) into out/curves.tgz as NAME_curve.jsonl and NAME_curve.png; None when there are none."""
    from tinyllm.train.curve import CURVE_FILE
    from tinyllm.train.report import CURVE_PNG

    files = {f"{n}_curve.{ext}": work / n / rel for n in names
             for ext, rel in (("jsonl", Path("sft") / CURVE_FILE), ("png", Path(CURVE_PNG)))}
    files = {arc: f for arc, f in files.items() if f.exists()}
    if not files:
        return None
    with tarfile.open(out / "curves.tgz", "w:gz") as tar:
        for arc, f in files.items():
            tar.add(f, arcname=arc)
    return out / "curves.tgz"


def shell(cmds: list[list[str]]) -> str:
    """One bash line that runs `cmds` in order, stopping at the first failure."""
    return " && ".join(" ".join(shlex.quote(a) for a in c) for c in cmds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=430.0, help="Stop every run after this long.")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--variant", dest="variants", type=parse_variant, action="append", required=True)
    ap.add_argument("--curve", dest="curve_sets", action="append", default=[], metavar="NAME=FILE",
                    help="After training, score every snapshot on this set (repeatable; `nl2cmd-train curve`).")
    ap.add_argument("--curve-limit", type=int, default=None, help="Score the first N rows of each curve set.")
    ap.add_argument("--curve-seconds", type=float, default=300.0, help="Stop the curve scoring after this long.")
    args = ap.parse_args()
    t0 = time.time()
    variants = dict(args.variants)
    for name, spec in variants.items():
        for folder in [spec.get("data"), spec.get("first", (None,))[0]]:
            if folder and not (Path(folder) / "train.jsonl").is_file():
                ap.error(f"variant {name}: {folder} holds no train.jsonl")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 4) // len(variants)))}
    scripts = {}
    for name, spec in variants.items():
        run = args.work / name
        run.mkdir(parents=True, exist_ok=True)
        sources = {"pairs": Path(spec.get("data") or args.base / "pairs"), "tokenizer": args.base / "tokenizer",
                   "shards": args.base / "shards"}
        for d, src in sources.items():
            if not (run / d).exists():
                (run / d).symlink_to(src.resolve())
        scripts[name] = shell(commands(run, spec, args.device, args.resume))
    status: dict[str, dict] = {}
    run_side_by_side(scripts, args.work, env, args.seconds, t0, "stderr.txt", status)

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
    if args.curve_sets:
        status["_curves"] = {"engine_built": build_engine()}
        print(f"[{time.time() - t0:.0f}s] curves: {status['_curves']}", flush=True)
        scripts = {}
        for name in variants:
            run = args.work / name
            if not status[name]["snapshots"]:
                continue
            curve = TRAIN + ["curve", "--run", str(run)] + [a for s in args.curve_sets for a in ("--jsonl", s)]
            curve += ["--limit", str(args.curve_limit)] if args.curve_limit else []
            curve += ["--offset-hours", f"{first_stage_hours(run):.4f}"] if "first" in variants[name] else []
            scripts[name] = shell([curve, TRAIN + ["report", "--out", str(run)]])
        run_side_by_side(scripts, args.work, env, time.time() - t0 + args.curve_seconds, t0, "curve.txt", status)
        pack_curves(args.out, args.work, list(scripts))
    (args.out / "status.json").write_text(json.dumps(status, indent=1))
    with tarfile.open(args.out / "logs.tgz", "w:gz") as tar:
        for name in variants:
            for rel in ("stderr.txt", "curve.txt", "pretrain/log.jsonl", "first/log.jsonl", "sft/log.jsonl",
                        "times.json"):
                if (args.work / name / rel).exists():
                    tar.add(args.work / name / rel, arcname=f"{name}/{rel}")


if __name__ == "__main__":
    main()
