"""End-to-end latency of `nl2cmd "<query>"` as a fresh process, side by side.

* warm         -- a daemon is running with the model loaded, and has not seen this request (the
                  normal case: the model generates);
* warm repeat  -- the same request again: answered from the daemon's answer cache;
* no-daemon    -- `nl2cmd --no-daemon --json`: load the model and generate in the process;
* cold         -- no daemon running: the call spawns one, waits for it, then asks.

Warm and cold runs invoke `nl2cmd QUERY` exactly as a user or a shell widget does (the click-free
entry point). The modes are interleaved run by run so background load affects them alike. A bare
`python -c pass` is timed too: the interpreter start-up floor. Every run uses a private
NL2CMD_HOME. Prints a table and writes JSON (default bench/results/latency.json).

    python bench/latency.py --runs 20 --backend fake
    python bench/latency.py --runs 10 --backend real [--model path/to/model.npz]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import use_fake_backend

from tinyllm.infer import ENGINES


def nl2cmd_command() -> list[str]:
    """The installed entry point beside this interpreter (not a pyenv shim), else `python -m tinyllm.cli.app`."""
    beside = Path(sys.executable).with_name("nl2cmd")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "tinyllm.cli.app"]


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    xs = sorted(samples)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict]:
    """Wall time (ms) of one process and its parsed --json output."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    ms = (time.perf_counter() - t0) * 1000
    if proc.returncode == 1 and "produced no command" in proc.stderr:
        return ms, {"empty": True}  # a full generation that yielded nothing (an untrained model): still timed
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    except json.JSONDecodeError:
        data = {}
    return ms, data


def summarise(samples: list[float], gen: list[float]) -> dict:
    """p50/p90/min/max of the wall times plus the median in-model generation time."""
    return {
        "runs": len(samples),
        "p50_ms": round(percentile(samples, 50), 1),
        "p90_ms": round(percentile(samples, 90), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "generation_p50_ms": round(statistics.median(gen), 2) if gen else None,
        "samples_ms": [round(s, 2) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per mode (default 10)")
    parser.add_argument("--query", default="list the 5 largest files in this directory")
    parser.add_argument("--backend", choices=["real", "fake"], default="real")
    parser.add_argument("--model", default=None, help="model file (real backend; default: the packaged model)")
    parser.add_argument("--threads", default="1", help="threads of the daemon / in-process model (NL2CMD_THREADS for "
                        "the C engine, the BLAS pool for numpy), comma list compared side by side, e.g. 1,2 "
                        "(default 1: what a user gets)")
    parser.add_argument("--engines", default="auto", help="inference engines (NL2CMD_ENGINE) compared side by side, "
                        "comma list of auto, c-int8, numpy (default auto: what a user gets)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latency.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error("--threads must be a comma list of integers")
    if not threads or min(threads) < 1:
        parser.error("--threads must be a comma list of positive integers")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - set(ENGINES):
        parser.error(f"--engines must be a comma list of {', '.join(ENGINES)}")
    configs = [(e, t) for e in engines for t in threads]

    home = tempfile.mkdtemp(prefix="n2cb", dir="/tmp")  # short: the socket lives under it
    env = {k: v for k, v in os.environ.items() if not k.startswith("NL2CMD_")}
    env["NL2CMD_HOME"] = home
    if args.backend == "fake":
        use_fake_backend(env)
    exe = nl2cmd_command()
    model = ["--model", os.path.abspath(args.model)] if args.model else []
    # Plain `nl2cmd QUERY` unless options are needed (then the click path).
    ask = [*exe, *model, "--", args.query] if model or args.query.startswith("-") else [*exe, args.query]
    ask_local = [*exe, "--json", "--no-daemon", *model, "--", args.query]
    start = [*exe, "daemon", "start", *model]
    prime = [*exe, *model, "--", "print the date"]  # first request after start: touch the weights, allocate
    stop = [*exe, "daemon", "stop"]

    def label(mode: str, engine: str, t: int) -> str:
        parts = ([engine] if len(engines) > 1 else []) + ([f"{t} thr"] if len(threads) > 1 else [])
        return ", ".join([mode, *parts])

    model_modes = ("warm", "warm repeat", "no-daemon", "cold")
    wall: dict[str, list[float]] = {label(m, e, t): [] for e, t in configs for m in model_modes}
    wall["python -c pass"] = []
    gen: dict[str, list[float]] = {k: [] for k in wall}
    empty = dict.fromkeys(wall, 0)
    try:
        timed(ask_local, env)  # prime the OS caches (and fail early if the model is missing)
        for _ in range(args.runs):
            for e, t in configs:
                # the daemon keeps the engine and thread counts it is started with (tinyllm.serve.daemon.load_suggester)
                env_t = {**env, "NL2CMD_ENGINE": e, "NL2CMD_THREADS": str(t), "OPENBLAS_NUM_THREADS": str(t),
                         "OMP_NUM_THREADS": str(t), "MKL_NUM_THREADS": str(t)}
                subprocess.run(stop, env=env_t, capture_output=True, timeout=60)
                subprocess.run(start, env=env_t, capture_output=True, timeout=120, check=True)
                timed(prime, env_t)
                runs = (("warm", ask), ("warm repeat", ask), ("no-daemon", ask_local))
                for mode, cmd in runs:
                    key = label(mode, e, t)
                    ms, data = timed(cmd, env_t)
                    wall[key].append(ms)
                    if "timing_ms" in data:
                        gen[key].append(float(data["timing_ms"]))
                    empty[key] += bool(data.get("empty"))
                subprocess.run(stop, env=env_t, capture_output=True, timeout=60)
                key = label("cold", e, t)
                ms, data = timed(ask, env_t)
                wall[key].append(ms)
                empty[key] += bool(data.get("empty"))
            ms, _ = timed([sys.executable, "-c", "pass"], env)
            wall["python -c pass"].append(ms)
    except (RuntimeError, subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
        print(f"latency: error: {exc}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(stop, env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)

    results = {mode: {**summarise(samples, gen[mode]), "empty_answers": empty[mode]} for mode, samples in wall.items()}
    report = {
        "backend": args.backend,
        "model": args.model,
        "query": args.query,
        "runs": args.runs,
        "threads": threads,
        "engines": engines,
        "command": ask,
        "python": sys.version.split()[0],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "results": results,
    }
    print(f"nl2cmd end-to-end latency, {args.runs} runs per mode, backend {args.backend}")
    print(f"{'mode':<30}{'p50 ms':>9}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}{'gen p50 ms':>12}")
    for mode, r in results.items():
        g = f"{r['generation_p50_ms']:.2f}" if r["generation_p50_ms"] is not None else "-"
        print(f"{mode:<30}{r['p50_ms']:>9.1f}{r['p90_ms']:>9.1f}{r['min_ms']:>9.1f}{r['max_ms']:>9.1f}{g:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
