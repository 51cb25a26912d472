"""Memory: peak RSS of a training step loop, and the daemon's RSS after loading and after N requests.

    python bench/memory.py                               # default preset; daemon with the shipped model
    python bench/memory.py --ckpt m.npz --requests 1000
    python bench/memory.py --backend fake --skip-train   # daemon plumbing only
    python bench/memory.py --quick                       # smoke test (micro preset, fake backend)

Training: one fresh process per autocast mode (bf16 / fp32, side by side) builds the preset's model and
AdamW, runs --train-steps steps of --batch x --seq (the step of train/loop.py) and reports VmRSS after
`import torch`, after building the model, and the peak (getrusage ru_maxrss).

Daemon: a private NL2CMD_HOME, ``nl2cmd daemon start`` (python -m tinyllm.cli.app), the pid from the daemon's
ping reply, /proc/<pid>/status VmRSS and VmHWM after start-up (model loaded), after the first request
and after 10, 100, ... and --requests requests (sent in-process over the socket with tinyllm.serve.client),
then ``nl2cmd daemon stop``. Request latency (client side) is reported too. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    REPO,
    BenchError,
    add_common_args,
    finish,
    fmt,
    machine_info,
    markdown_table,
    median,
    positive_int,
    print_header,
    progress_printer,
    read_jsonl_rows,
    resolve_ckpt,
    run_main,
    use_fake_backend,
)

INSTRUCTIONS = [
    "list all files in the current directory including hidden ones",
    "find all python files modified in the last 7 days",
    "show disk usage of the home folder",
    "count the lines in every markdown file",
    "kill the process listening on port 8080",
    "compress the logs directory into a tar.gz archive",
    "show the 10 largest files under /var",
    "search for TODO in all javascript files recursively",
    "print the current date in ISO format",
    "rename all .jpeg files to .jpg",
]


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM / VmSize of a process in KiB (from /proc/<pid>/status)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read /proc/{pid}/status: {exc}") from None
    return out


def mib(kib: float | None) -> float | None:
    """KiB -> MiB."""
    return kib / 1024 if kib is not None else None


# ============================================================================================ training


def train_child(args: argparse.Namespace) -> int:
    """In a fresh process: build the preset's model + optimizer, run steps, print RSS figures as JSON."""
    rss_start = proc_status()["VmRSS"]
    import torch
    from train_throughput import Run

    if args.threads:
        torch.set_num_threads(args.threads)
    rss_torch = proc_status()["VmRSS"]
    run = Run(args.preset, args.batch, args.seq, torch.device("cpu"))
    rss_model = proc_status()["VmRSS"]
    t = run.steps(args.train_steps, args.train_child == "bf16")
    st = proc_status()
    print(
        json.dumps(
            {
                "rss_start_kib": rss_start,
                "rss_after_import_torch_kib": rss_torch,
                "rss_after_build_kib": rss_model,
                "rss_end_kib": st["VmRSS"],
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "vmhwm_kib": st.get("VmHWM"),
                "params": run.model.num_params(),
                "seconds": t,
            }
        )
    )
    return 0


def measure_training(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One child process per mode; rows of RSS figures (or a failure status)."""
    rows = []
    for mode in args.modes:
        progress(f"training {args.preset} {mode}: {args.train_steps} steps of {args.batch}x{args.seq}")
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--train-child",
            mode,
            "--preset",
            args.preset,
            "--batch",
            str(args.batch),
            "--seq",
            str(args.seq),
            "--train-steps",
            str(args.train_steps),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        row: dict[str, Any] = {
            "preset": args.preset,
            "mode": mode,
            "batch": args.batch,
            "seq": args.seq,
            "steps": args.train_steps,
        }
        if out.returncode != 0 or not out.stdout.strip():
            tail = out.stderr.strip().splitlines()
            row["status"] = f"failed: {tail[-1] if tail else f'exit status {out.returncode}'}"
        else:
            row.update(json.loads(out.stdout.strip().splitlines()[-1]), status="ok")
        rows.append(row)
    return rows


# ============================================================================================== daemon


def cli(home: str, *argv: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tinyllm.cli.app ARGV`` with NL2CMD_HOME=home."""
    env = {**os.environ, "NL2CMD_HOME": home}
    return subprocess.run(
        [sys.executable, "-m", "tinyllm.cli.app", *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )


def distinct_request(instructions: list[str], i: int) -> str:
    """Request number i, never a repeat: the daemon answers repeats from its cache without generating,
    so later rounds through the list name a different folder."""
    text = instructions[i % len(instructions)]
    rnd = i // len(instructions)
    return text if rnd == 0 else f"{text} in dir{rnd}"


def measure_daemon(args: argparse.Namespace, ckpt: str | None, instructions: list[str]) -> dict[str, Any]:
    """Start a private daemon, sample its memory while sending requests, stop it."""
    from tinyllm.formats.paths import resolve
    from tinyllm.serve import client, process
    from tinyllm.serve.protocol import encode_request

    home = tempfile.mkdtemp(prefix="n2cm", dir="/tmp")  # short: AF_UNIX socket paths are limited
    old_env = {k: os.environ.get(k) for k in ("NL2CMD_HOME", "NL2CMD_BACKEND", "PYTHONPATH")}
    os.environ["NL2CMD_HOME"] = home
    if args.backend == "fake":
        use_fake_backend(os.environ)
    else:
        os.environ.pop("NL2CMD_BACKEND", None)
    paths = resolve()
    pid: int | None = None
    result: dict[str, Any] = {"backend": args.backend, "model": ckpt or "(backend default)", "requests": args.requests}
    try:
        Path(home, "config").mkdir(parents=True)
        # a loaded machine may take a while to load the model: be generous with the start-up timeout
        Path(home, "config", "config.toml").write_text("start_timeout = 300\ntimeout = 300\n")
        start = ["daemon", "start", "--idle-timeout", "900"] + (["--model", ckpt] if ckpt else [])
        t0 = time.perf_counter()
        out = cli(home, *start)
        result["start_s"] = time.perf_counter() - t0
        if out.returncode != 0:
            raise BenchError(f"daemon start failed: {out.stderr.strip() or out.stdout.strip()}")
        info = client.ping(paths, timeout=5.0)
        if info is None or not isinstance(info.get("pid"), int):
            raise BenchError("the daemon started but does not answer ping")
        pid = info["pid"]
        samples = [{"after_requests": 0, **proc_status(pid)}]
        checkpoints = {1, args.requests} | {10**i for i in range(1, 7) if 10**i < args.requests}
        latencies: list[float] = []
        errors = 0
        progress(f"daemon pid {pid}: sending {args.requests} requests")
        for i in range(1, args.requests + 1):
            payload = encode_request("suggest", instruction=distinct_request(instructions, i - 1), platform="linux",
                                     n=args.num)
            t0 = time.perf_counter()
            reply = client.request(paths.socket, payload, read_timeout=300.0)
            latencies.append(time.perf_counter() - t0)
            errors += not reply.get("ok")
            if i in checkpoints:
                samples.append({"after_requests": i, **proc_status(pid)})
        latencies.sort()
        cli_walls = []
        for i in range(args.cli_calls):  # the user's view: a whole `nl2cmd "..."` process against the warm daemon
            t0 = time.perf_counter()
            out = cli(home, "--", instructions[i % len(instructions)], timeout=300)
            cli_walls.append(time.perf_counter() - t0)
            errors += out.returncode != 0
        result.update(
            {
                "cli_roundtrip_ms": (median(cli_walls) or 0) * 1000 if cli_walls else None,
                "cli_calls": args.cli_calls,
                "pid": pid,
                "samples": samples,
                "errors": errors,
                "latency_ms": {
                    "median": (median(latencies) or 0) * 1000,
                    "p95": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
                    "max": latencies[-1] * 1000,
                },
                "rss_growth_kib": samples[-1]["VmRSS"] - samples[1]["VmRSS"] if len(samples) > 1 else None,
            }
        )
        return result
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            cli(home, "daemon", "stop", timeout=30)
        if pid is not None and process.pid_alive(pid) and process.is_daemon_process(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)  # our own daemon, if `daemon stop` did not end it
            process.wait_exit(pid, 5.0)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)


# ================================================================================================ main


progress = progress_printer("memory")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(p, "memory")
    p.add_argument("--preset", default=None, help="training preset (default: default)")
    p.add_argument("--batch", type=positive_int, default=None, help="training batch (default 16)")
    p.add_argument("--seq", type=positive_int, default=None, help="training sequence length (default 256)")
    p.add_argument("--train-steps", type=positive_int, default=None, help="training steps (default 3)")
    p.add_argument("--modes", default="bf16,fp32", help="autocast modes to compare: bf16,fp32")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads in the training child")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-daemon", action="store_true")
    p.add_argument(
        "--backend", choices=("real", "fake"), default=None, help="daemon backend (default real; --quick: fake)"
    )
    p.add_argument("--ckpt", type=Path, default=None, help="model file for the daemon (default: the shipped model)")
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="with no model file: serve random weights of --daemon-preset with this SentencePiece model",
    )
    p.add_argument("--daemon-preset", default="default", help="preset of those random weights")
    p.add_argument("--requests", type=positive_int, default=None, help="requests sent to the daemon (default 1000)")
    p.add_argument("--num", type=positive_int, default=1, help="alternatives per request (1 = greedy, >1 = beam)")
    p.add_argument(
        "--cli-calls",
        type=int,
        default=None,
        help="also time this many whole `nl2cmd INSTRUCTION` processes against the warm daemon (default 5)",
    )
    p.add_argument("--requests-jsonl", type=Path, default=None, help="take instructions from this JSONL (dev rows)")
    p.add_argument("--train-child", choices=("bf16", "fp32"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.preset = args.preset or ("micro" if q else "default")
    args.batch = args.batch or (4 if q else 16)
    args.seq = args.seq or (64 if q else 256)
    args.train_steps = args.train_steps or (2 if q else 3)
    args.requests = args.requests or (20 if q else 1000)
    args.backend = args.backend or ("fake" if q else "real")
    args.cli_calls = max(0, args.cli_calls if args.cli_calls is not None else (2 if q else 5))
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in ("bf16", "fp32") for m in args.modes):
        p.error("--modes must be a comma-separated subset of bf16,fp32")
    return args


def main() -> int:
    """Run the memory benchmark (or the hidden --train-child)."""
    args = parse_args()
    if args.train_child:
        return train_child(args)
    if not Path("/proc/self/status").is_file():
        raise BenchError("this benchmark reads /proc/<pid>/status: Linux only")
    info = machine_info(torch_threads=False)
    training = [] if args.skip_train else measure_training(args)
    daemon: dict[str, Any] | str = "skipped (--skip-daemon)"
    if not args.skip_daemon:
        with tempfile.TemporaryDirectory(prefix="nl2cmd-bench-") as tmp:
            ckpt, how = (str(args.ckpt), "--ckpt") if args.ckpt else (None, "fake backend")
            if args.backend == "real":
                ckpt, how = resolve_ckpt(args.ckpt, args.daemon_preset, args.tokenizer, Path(tmp))
            elif args.ckpt is not None and not args.ckpt.is_file():
                raise BenchError(f"{args.ckpt}: model file not found")
            if args.backend == "real" and ckpt is None:
                daemon = "skipped: no model file (give --ckpt or --tokenizer, or use --backend fake)"
            else:
                instructions = (
                    [r["instruction"] for r in read_jsonl_rows(args.requests_jsonl, args.requests)]
                    if args.requests_jsonl
                    else INSTRUCTIONS
                )
                daemon = measure_daemon(args, ckpt, instructions)
                daemon["model_source"] = how
    payload = {"bench": "memory", "quick": args.quick, "machine": info, "training": training, "daemon": daemon}
    return finish(payload, print_report, args.out)


def print_report(p: dict[str, Any]) -> None:
    """The markdown report on stdout."""
    print_header("memory", p)
    if p["training"]:
        t = p["training"][0]
        print(
            f"\n## training step loop (fresh process per mode; {t['preset']}, batch {t['batch']} x seq {t['seq']}, "
            f"{t['steps']} steps)\n"
        )
        print(
            markdown_table(
                [
                    "autocast",
                    "params",
                    "RSS after import torch MiB",
                    "RSS after model+AdamW MiB",
                    "peak RSS MiB",
                    "status",
                ],
                [
                    [
                        r["mode"],
                        f"{r['params'] / 1e6:.2f}M" if "params" in r else "-",
                        fmt(mib(r.get("rss_after_import_torch_kib"))),
                        fmt(mib(r.get("rss_after_build_kib"))),
                        fmt(mib(r.get("peak_rss_kib"))),
                        r["status"],
                    ]
                    for r in p["training"]
                ],
            )
        )
    print("\n## daemon\n")
    d = p["daemon"]
    if isinstance(d, str):
        print(d)
        return
    print(
        f"backend {d['backend']}, model {d['model']} ({d.get('model_source')}), start {fmt(d.get('start_s'), 2)} s, "
        f"{d['requests']} requests, {d['errors']} errors, latency median {fmt(d['latency_ms']['median'], 2)} ms, "
        f"p95 {fmt(d['latency_ms']['p95'], 2)} ms (socket round trip, in-process client); whole `nl2cmd` process "
        f"against the warm daemon: median {fmt(d.get('cli_roundtrip_ms'))} ms over {d.get('cli_calls')} calls\n"
    )
    print(
        markdown_table(
            ["after requests", "VmRSS MiB", "VmHWM (peak) MiB"],
            [[s["after_requests"], fmt(mib(s.get("VmRSS"))), fmt(mib(s.get("VmHWM")))] for s in d["samples"]],
        )
    )
    growth = d.get("rss_growth_kib")
    print(f"\nRSS growth from request 1 to {d['requests']}: {fmt(mib(growth), 2)} MiB")


if __name__ == "__main__":
    run_main(main)
