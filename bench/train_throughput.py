"""Training throughput (tokens/s) and model FLOPs utilisation, per preset, bf16 autocast on vs off.

    python bench/train_throughput.py                          # micro, default, seed on CPU
    python bench/train_throughput.py --presets default --steps 5 --repeats 3
    python bench/train_throughput.py --device cuda --batch 32 # same script on a GPU
    python bench/train_throughput.py --quick                  # smoke test

One measurement = --steps optimizer steps of the real training step (train/loop.py: forward with the
loss, backward, grad-norm clipping, AdamW with weight decay on matrices, zero_grad) on random token
batches of --batch x --seq. Modes (bf16 autocast on / off) are interleaved per preset, the order
rotated each round, median over --repeats rounds after one warm-up step per mode.

Peak: the best dense-matmul FLOP/s of this machine (torch.matmul of --matmul-size square matrices,
2 n^3 FLOPs) in fp32 and bf16, measured before and after the training runs (best of both).
MFU = 6 N tokens/s / peak (N = parameters, tied head counted once: its matmul is real compute),
and with the attention term: (6 N + 12 L T D) tokens/s / peak. bf16 runs use the bf16 peak.
"""

from __future__ import annotations

import argparse
import math
import time
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
    progress_printer,
    run_main,
)

DEFAULT_STEPS = {"micro": 10, "small": 4, "default": 4, "seed": 1}
MODES = {"bf16": True, "fp32": False}


def sync(device: Any) -> None:
    """Wait for queued GPU work so the clock measures it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype_name: str, n: int, repeats: int, device: Any) -> float:
    """Best FLOP/s of an n x n @ n x n matmul in `dtype_name` over `repeats` timed calls."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up: kernel selection, page faults
    best = math.inf
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


class Run:
    """A model, its optimizer and a fixed random batch for one preset."""

    def __init__(self, preset: str, batch: int, seq: int, device: Any) -> None:
        import torch

        from tinyllm.formats.config import ModelConfig
        from tinyllm.train.loop import TrainConfig, make_optimizer
        from tinyllm.train.model import Transformer

        try:
            self.cfg = ModelConfig.from_name(preset)
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        if seq > self.cfg.max_seq_len:
            raise BenchError(f"--seq {seq} exceeds preset {preset}'s max_seq_len {self.cfg.max_seq_len}")
        torch.manual_seed(0)
        self.preset, self.device = preset, device
        self.model = Transformer(self.cfg).to(device).train()
        self.tc = TrainConfig()
        self.opt = make_optimizer(self.model, self.tc)
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, self.cfg.vocab_size, (batch, seq + 1), generator=g)
        self.x, self.y = ids[:, :-1].contiguous().to(device), ids[:, 1:].contiguous().to(device)
        self.tokens = batch * seq

    def steps(self, n: int, bf16: bool) -> float:
        """Seconds for n optimizer steps (the step of train/loop.py's Trainer.run)."""
        import torch

        from tinyllm.train.device import autocast_dtype

        amp = autocast_dtype(self.device, bf16, cpu_bf16_ok=lambda: True)  # measure bf16 as asked
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(n):
            with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                _, loss = self.model(self.x, self.y)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        sync(self.device)
        return time.perf_counter() - t0


progress = progress_printer("train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(p, "train_throughput")
    p.add_argument("--presets", default=None, help="comma-separated presets (default: micro,default,seed)")
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"optimizer steps per measurement (default per preset: {DEFAULT_STEPS})",
    )
    p.add_argument("--repeats", type=positive_int, default=None, help="interleaved rounds (default 3)")
    p.add_argument("--batch", type=positive_int, default=None, help="sequences per step (default 16)")
    p.add_argument("--seq", type=positive_int, default=None, help="tokens per sequence (default 256)")
    p.add_argument("--modes", default="bf16,fp32", help="autocast modes to compare: bf16,fp32")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto, ...")
    p.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument(
        "--matmul-size", type=positive_int, default=None, help="peak matmul size (default 2048; 8192 on cuda)"
    )
    p.add_argument("--matmul-repeats", type=positive_int, default=5)
    args = p.parse_args(argv)
    q = args.quick
    args.presets = [
        x.strip() for x in (args.presets or ("micro" if q else "micro,default,seed")).split(",") if x.strip()
    ]
    args.repeats = args.repeats or (2 if q else 3)
    args.batch = args.batch or (4 if q else 16)
    args.seq = args.seq or (64 if q else 256)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"unknown mode(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}")
    from tinyllm.formats.config import ModelConfig

    for preset in args.presets:
        try:
            cfg = ModelConfig.from_name(preset)
        except ValueError as exc:
            p.error(str(exc))
        if args.seq > cfg.max_seq_len:
            p.error(f"--seq {args.seq} exceeds preset {preset}'s max_seq_len {cfg.max_seq_len}")
    if q:
        args.matmul_repeats = min(args.matmul_repeats, 2)
        args.steps = args.steps or 2
    return args


def main() -> int:
    """Measure peaks, then tokens/s per (preset, mode), interleaved; print a table and write JSON."""
    args = parse_args()
    import torch

    from tinyllm.train.device import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise BenchError(f"device {args.device!r} unavailable: {str(exc).splitlines()[0]}") from None
    size = args.matmul_size or (256 if args.quick else 8192 if device.type == "cuda" else 2048)
    info = machine_info()
    dtypes = sorted({"bf16" if MODES[m] else "fp32" for m in args.modes})
    peaks: dict[str, list[float]] = {d: [] for d in dtypes}

    def measure_peaks() -> None:
        for d in dtypes:
            progress(f"peak matmul {d} {size}x{size}")
            try:
                peaks[d].append(matmul_peak(d, size, args.matmul_repeats, device))
            except RuntimeError as exc:
                progress(f"peak {d} failed: {exc}")

    measure_peaks()
    results: list[dict[str, Any]] = []
    for preset in args.presets:
        progress(f"preset {preset}: building")
        run = Run(preset, args.batch, args.seq, device)
        n_steps = args.steps or DEFAULT_STEPS.get(preset, 2)
        times: dict[str, list[float]] = {m: [] for m in args.modes}
        status: dict[str, str] = {m: "ok" for m in args.modes}
        for m in args.modes:  # warm-up: allocator, autocast weight casts, AdamW state
            try:
                run.steps(1, MODES[m])
            except RuntimeError as exc:
                status[m] = f"failed: {str(exc).splitlines()[0][:200]}"
        live = [m for m in args.modes if status[m] == "ok"]
        for r in range(args.repeats):
            shift = r % len(live) if live else 0
            for m in live[shift:] + live[:shift]:
                progress(f"preset {preset} round {r + 1}/{args.repeats} {m} ({n_steps} steps)")
                times[m].append(run.steps(n_steps, MODES[m]))
        n_params = run.model.num_params()
        attn = 12 * run.cfg.n_layers * args.seq * run.cfg.dim
        for m in args.modes:
            t = median(times[m])
            results.append(
                {
                    "preset": preset,
                    "mode": m,
                    "status": status[m],
                    "params": n_params,
                    "steps": n_steps,
                    "batch": args.batch,
                    "seq": args.seq,
                    "tokens_per_s": run.tokens * n_steps / t if t else None,
                    "step_ms": t * 1000 / n_steps if t else None,
                    "attn_flops_per_token": attn,
                    "seconds": times[m],
                }
            )
        del run
    measure_peaks()  # again after the runs: the machine is noisy, keep the best of both
    best = {d: max(v, default=None) for d, v in peaks.items()}
    for r in results:
        peak, tok_s = best["bf16" if MODES[r["mode"]] else "fp32"], r["tokens_per_s"]
        r["peak_flops"] = peak
        r["mfu_6n"] = 6 * r["params"] * tok_s / peak if tok_s and peak else None
        r["mfu_6n_attn"] = (6 * r["params"] + r["attn_flops_per_token"]) * tok_s / peak if tok_s and peak else None
    payload = {
        "bench": "train_throughput",
        "quick": args.quick,
        "machine": info,
        "device": str(device),
        "settings": {
            "batch": args.batch,
            "seq": args.seq,
            "repeats": args.repeats,
            "modes": args.modes,
            "matmul_size": size,
            "matmul_repeats": args.matmul_repeats,
        },
        "peak_flops": {"best": best, "samples": peaks},
        "runs": results,
    }
    return finish(payload, print_report, args.out)


def print_report(p: dict[str, Any]) -> None:
    """The markdown report on stdout."""
    s = p["settings"]
    print_header("training throughput", p)
    peaks = ", ".join(f"{d} {fmt(v / 1e9 if v else None)} GFLOP/s" for d, v in p["peak_flops"]["best"].items())
    print(
        f"- device {p['device']}; measured peak (matmul {s['matmul_size']}^2, best of {s['matmul_repeats']}, "
        f"before and after): {peaks}"
    )
    print(f"- batch {s['batch']} x seq {s['seq']}, median of {s['repeats']} interleaved rounds\n")
    rows = [
        [
            r["preset"],
            f"{r['params'] / 1e6:.2f}M",
            r["mode"],
            r["steps"],
            fmt(r["step_ms"], 0),
            fmt(r["tokens_per_s"], 0),
            fmt(100 * r["mfu_6n"] if r["mfu_6n"] is not None else None, 1, "%"),
            fmt(100 * r["mfu_6n_attn"] if r["mfu_6n_attn"] is not None else None, 1, "%"),
            r["status"],
        ]
        for r in p["runs"]
    ]
    print(
        markdown_table(
            ["preset", "params", "autocast", "steps", "step ms", "tokens/s", "MFU (6N)", "MFU (6N+12LTD)", "status"],
            rows,
        )
    )


if __name__ == "__main__":
    run_main(main)
