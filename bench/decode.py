"""Single-stream decode speed of the serving path and its alternatives, measured side by side.

    python bench/decode.py                       # shipped model (or random `default` weights)
    python bench/decode.py --ckpt m.npz --accuracy-jsonl dev.jsonl --accuracy-limit 200
    python bench/decode.py --quick               # smoke test: micro preset, a few tokens

For one prompt of --prompt-tokens tokens: prefill time, then exactly --new-tokens greedy tokens (the
first from the prefill logits, the rest from one-token decode steps; <eos> is ignored so every
variant does the same work). Variants (--variants):

  numpy-cache    numpy engine with its static KV cache (the serving path; the baseline)
  numpy-nocache  numpy engine, full forward over the whole sequence for every token
  c-int8         the int8 C engine (tinyllm/infer/_kernels.c, the default where built): int8 weights and
                 int8 matrix inputs (integer dot products), with its KV cache
  c-int8-a32     the same engine with float32 matrix inputs (int8 weights only)
  torch-cache    torch eager, static KV cache (Transformer.prefill/decode)
  torch-nocache  torch eager, full forward for every token
  torch-compile  torch.compile of the cached step (Transformer._step); compile time reported separately
  torch-int8     torch.ao dynamic int8 quantisation of every nn.Linear, with cache
  torch-bf16     torch weights and cache in bfloat16, with cache

each at every thread count of --threads. Each (engine family, thread count) runs in its own worker
process with OMP/OPENBLAS/MKL_NUM_THREADS set before numpy/torch load (BLAS pools are sized at import),
and torch.set_num_threads. Workers stay loaded; measurements are interleaved (every variant once per
round, the order rotated each round) and the median over --repeats rounds is reported.

Also: import time of the thin client (tinyllm.cli.app) and the serving path (tinyllm.serve.suggest), the cold
first call (new process: import, load the model file, one greedy suggestion), and with
--accuracy-jsonl the exact-match change of the numerics-changing variants against the numpy engine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    REPO,
    BenchError,
    add_common_args,
    finish,
    fmt,
    load_weights,
    machine_info,
    markdown_table,
    median,
    positive_int,
    positive_ints,
    print_header,
    progress_printer,
    read_jsonl_rows,
    resolve_ckpt,
    run_main,
    thread_env,
)

VARIANTS: dict[str, tuple[str, str]] = {  # name -> (worker family, kind)
    "numpy-cache": ("numpy", "cache"),
    "numpy-nocache": ("numpy", "nocache"),
    "c-int8": ("c", "int8"),  # its own worker: an OpenBLAS pool spinning after numpy-cache would take a core
    "c-int8-a32": ("c", "float32"),
    "torch-cache": ("torch", "cache"),
    "torch-nocache": ("torch", "nocache"),
    "torch-compile": ("torch", "compile"),
    "torch-int8": ("torch", "int8"),
    "torch-bf16": ("torch", "bf16"),
}
BASELINE = "numpy-cache"
ACCURACY_VARIANTS = ("c-int8", "c-int8-a32", "torch-cache", "torch-int8", "torch-bf16")  # fp32 torch is the sanity check
PROMPT_TEXT = "find all python files modified in the last 7 days and count their lines"


# ================================================================================================ worker


class Worker:
    """Runs inside a worker process: builds models lazily, times one generation per request."""

    def __init__(self, family: str, threads: int, ckpt: str | None, preset: str, compile_mode: str) -> None:
        self.family, self.threads, self.compile_mode = family, threads, compile_mode
        self.cfg, self.weights, self.source = load_weights(ckpt, preset)
        self.models: dict[str, Any] = {}
        if family == "torch":
            import torch

            torch.set_num_threads(threads)

    def build(self, kind: str) -> Any:
        """The model object of a variant kind (built once)."""
        if kind in self.models:
            return self.models[kind]
        if self.family == "c":
            from tinyllm.infer.cengine import CTransformer

            model: Any = CTransformer(self.cfg, self.weights, threads=self.threads, activations=kind)
        elif self.family == "numpy":
            from tinyllm.infer.engine import NumpyTransformer

            model = NumpyTransformer(self.cfg, self.weights)
        else:
            model = build_torch(self.cfg, self.weights, kind, self.compile_mode)
        self.models[kind] = model
        return model

    def run(self, kind: str, prompt: list[int], n_new: int) -> dict[str, float]:
        """Prefill `prompt`, then make exactly n_new greedy tokens; returns seconds per phase."""
        t0 = time.perf_counter()
        model = self.build(kind)
        build_s = time.perf_counter() - t0
        gen = torch_generate if self.family == "torch" else numpy_generate
        prefill_s, decode_s = gen(model, kind, prompt, n_new)
        return {"build_s": build_s, "prefill_s": prefill_s, "decode_s": decode_s}


def build_torch(cfg: Any, weights: dict[str, Any], kind: str, compile_mode: str) -> Any:
    """A torch Transformer in eval mode, transformed for the variant kind."""
    import torch
    import torch.nn as nn

    from tinyllm.train.model import Transformer, load_numpy_state

    model = load_numpy_state(Transformer(cfg), weights).eval()
    if kind == "int8":
        with warnings.catch_warnings():  # torch.ao.quantization is deprecated but still the CPU int8 path
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    elif kind == "bf16":
        model = model.to(torch.bfloat16)
    elif kind == "compile":
        # The step's shapes grow by one token per call: dynamic=True avoids a recompile per length.
        model._step = torch.compile(model._step, dynamic=True, mode=None if compile_mode == "default" else compile_mode)
    return model


def numpy_generate(model: Any, kind: str, prompt: list[int], n_new: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds) for n_new greedy tokens with the numpy engine."""
    import numpy as np

    if kind == "nocache":
        ids = np.array([prompt], dtype=np.int64)
        t0 = time.perf_counter()
        tok = int(model.forward(ids)[0, -1].argmax())
        t1 = time.perf_counter()
        for _ in range(n_new - 1):
            ids = np.concatenate([ids, np.array([[tok]], dtype=np.int64)], axis=1)
            tok = int(model.forward(ids)[0, -1].argmax())
        return t1 - t0, time.perf_counter() - t1
    model.setup_cache(1, len(prompt) + n_new)
    t0 = time.perf_counter()
    tok = model.prefill([prompt]).argmax(axis=-1)
    t1 = time.perf_counter()
    for _ in range(n_new - 1):
        tok = model.decode(tok).argmax(axis=-1)
    return t1 - t0, time.perf_counter() - t1


def torch_generate(model: Any, kind: str, prompt: list[int], n_new: int) -> tuple[float, float]:
    """(prefill seconds, decode seconds) for n_new greedy tokens with a torch Transformer."""
    import torch

    with torch.inference_mode():
        if kind == "nocache":
            ids = torch.tensor([prompt], dtype=torch.long)
            t0 = time.perf_counter()
            tok = model(ids)[:, -1].argmax(-1)
            t1 = time.perf_counter()
            for _ in range(n_new - 1):
                ids = torch.cat([ids, tok[:, None]], dim=1)
                tok = model(ids)[:, -1].argmax(-1)
            return t1 - t0, time.perf_counter() - t1
        model.setup_cache(1, len(prompt) + n_new)
        t0 = time.perf_counter()
        tok = model.prefill([prompt]).argmax(-1)
        t1 = time.perf_counter()
        for _ in range(n_new - 1):
            tok = model.decode(tok).argmax(-1)
        return t1 - t0, time.perf_counter() - t1


def worker_main(args: argparse.Namespace) -> int:
    """Serve JSON-line requests on stdin: {"kind", "prompt", "n_new"} -> timings (or an error)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle (it closes us)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints (compiler logs, warnings) must not corrupt the protocol stream

    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    try:
        worker = Worker(args.worker, args.threads[0], args.worker_ckpt or None, args.preset, args.compile_mode)
    except Exception as exc:  # reported to the parent, which marks this worker's variants failed
        send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"ok": True, "ready": True, "info": machine_info(torch_threads=args.worker == "torch")})
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        try:
            send({"ok": True, **worker.run(req["kind"], req["prompt"], req["n_new"])})
        except Exception as exc:
            send({"ok": False, "error": first_line(f"{type(exc).__name__}: {exc}")})
    return 0


def first_line(text: str, limit: int = 300) -> str:
    """First non-empty line of an error message, shortened."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else text)[:limit]


# ============================================================================================ orchestrator


class WorkerProc:
    """A worker process seen from the orchestrator."""

    def __init__(self, family: str, threads: int, ckpt: str | None, preset: str, compile_mode: str) -> None:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            family,
            "--threads",
            str(threads),
            "--worker-ckpt",
            ckpt or "",
            "--preset",
            preset,
            "--compile-mode",
            compile_mode,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=thread_env(threads), cwd=REPO
        )
        hello = self._read()
        self.error: str | None = None if hello.get("ok") else hello.get("error", "worker failed to start")
        self.info: dict[str, Any] = hello.get("info", {})

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            return {"ok": False, "error": f"worker exited (status {rc})"}
        return json.loads(line)

    def ask(self, kind: str, prompt: list[int], n_new: int) -> dict[str, Any]:
        """One timed generation (or {"ok": False, "error": ...})."""
        if self.error:
            return {"ok": False, "error": self.error}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"kind": kind, "prompt": prompt, "n_new": n_new}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.error = f"worker exited (status {self.proc.wait()})"
            return {"ok": False, "error": self.error}
        reply = self._read()
        if not reply.get("ok") and self.proc.poll() is not None:
            self.error = reply.get("error")
        return reply

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None and self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class VariantResult:
    """Measurements of one (variant, threads) pair."""

    name: str
    threads: int
    status: str = "ok"
    warmup_s: float | None = None
    prefill_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)

    def summary(self, n_new: int) -> dict[str, Any]:
        """Medians and derived rates (JSON-ready)."""
        pre, dec = median(self.prefill_s), median(self.decode_s)
        total = [p + d for p, d in zip(self.prefill_s, self.decode_s)]
        steps = max(n_new - 1, 1)
        return {
            "variant": self.name,
            "threads": self.threads,
            "status": self.status,
            "warmup_s": self.warmup_s,
            "repeats": len(self.decode_s),
            "prefill_ms": pre * 1000 if pre is not None else None,
            "decode_ms_per_token": dec * 1000 / steps if dec is not None else None,
            "decode_tokens_per_s": steps / dec if dec else None,
            "time_to_n_tokens_ms": median(total) * 1000 if total else None,
            "decode_spread": (max(self.decode_s) - min(self.decode_s)) / dec if dec else None,
            "prefill_s": self.prefill_s,
            "decode_s": self.decode_s,
        }


def measure_decode(args: argparse.Namespace, ckpt: str | None, prompt: list[int]) -> tuple[list[VariantResult], dict]:
    """Warm up every variant once, then --repeats interleaved rounds; returns results and worker infos."""
    pairs = [(v, t) for t in args.threads for v in args.variants]
    results = {(v, t): VariantResult(v, t) for v, t in pairs}
    workers: dict[tuple[str, int], WorkerProc] = {}
    try:
        for v, t in pairs:
            family = VARIANTS[v][0]
            if (family, t) not in workers:
                workers[(family, t)] = WorkerProc(family, t, ckpt, args.preset, args.compile_mode)
        for v, t in pairs:  # warm-up: builds/compiles the model, touches every code path once
            progress(f"warm-up {v} threads={t}")
            t0 = time.perf_counter()
            reply = workers[(VARIANTS[v][0], t)].ask(VARIANTS[v][1], prompt, args.new_tokens)
            results[(v, t)].warmup_s = time.perf_counter() - t0
            if not reply.get("ok"):
                results[(v, t)].status = f"failed: {reply.get('error')}"
        live = [p for p in pairs if results[p].status == "ok"]
        for r in range(args.repeats):
            progress(f"round {r + 1}/{args.repeats}")
            shift = r % len(live) if live else 0
            for v, t in live[shift:] + live[:shift]:  # rotate so no variant always runs first
                res = results[(v, t)]
                if res.status != "ok":
                    continue
                reply = workers[(VARIANTS[v][0], t)].ask(VARIANTS[v][1], prompt, args.new_tokens)
                if reply.get("ok"):
                    res.prefill_s.append(reply["prefill_s"])
                    res.decode_s.append(reply["decode_s"])
                else:
                    res.status = f"failed: {reply.get('error')}"
    finally:
        for w in workers.values():
            w.close()
    infos = {f"{fam}-t{t}": w.info for (fam, t), w in workers.items()}
    return [results[p] for p in pairs], infos


progress = progress_printer("decode")


# ------------------------------------------------------------------------------------------ import / cold


def importtime_total_us(stderr: str) -> int:
    """Sum of the 'self' column of `python -X importtime` output (microseconds)."""
    total = 0
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|", line)
        if m:
            total += int(m.group(1))
    return total


IMPORT_CASES: dict[str, str] = {
    "python -c pass": "pass",
    "import tinyllm.cli.entry, frontend, client (plain request)": "import tinyllm.cli.entry, tinyllm.cli.frontend, tinyllm.serve.client",
    "import tinyllm.cli.app (click CLI)": "import tinyllm.cli.app",
    "import tinyllm.serve.suggest (serving)": "import tinyllm.serve.suggest",
    "import tinyllm.train.model (torch)": "import tinyllm.train.model",
}
HEAVY = ("numpy", "torch", "sentencepiece", "prompt_toolkit")


def measure_imports(repeats: int, quick: bool) -> list[dict[str, Any]]:
    """Process wall time and -X importtime total of each import, interleaved; plus heavy modules pulled in."""
    cases = {k: v for k, v in IMPORT_CASES.items() if not (quick and "torch" in k)}
    walls: dict[str, list[float]] = {k: [] for k in cases}
    totals: dict[str, list[int]] = {k: [] for k in cases}
    heavy: dict[str, list[str]] = {}
    for name, stmt in cases.items():
        code = f"import sys, json; {stmt}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
        heavy[name] = json.loads(out.stdout) if out.returncode == 0 else [f"failed: {first_line(out.stderr)}"]
    for _ in range(repeats):
        for name, stmt in cases.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], capture_output=True, cwd=REPO)
            walls[name].append(time.perf_counter() - t0)
            out = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, cwd=REPO
            )
            totals[name].append(importtime_total_us(out.stderr))
    return [
        {
            "case": name,
            "wall_ms": (median(walls[name]) or 0) * 1000,
            "importtime_ms": (median(totals[name]) or 0) / 1000,
            "heavy_modules": heavy[name],
            "wall_s": walls[name],
        }
        for name in cases
    ]


COLD_CODE = """
import json, sys, time
t_start = time.time()
from tinyllm.infer.runtime import Runtime
t_import = time.time()
rt = Runtime.load(sys.argv[1])
t_load = time.time()
g = rt.generate([rt.prompt_ids(sys.argv[2], "linux")])[0]
t_answer = time.time()
print(json.dumps({"t_start": t_start, "t_import": t_import, "t_load": t_load, "t_answer": t_answer,
                  "command": g.command}))
"""


def measure_cold(ckpt: str, repeats: int) -> list[dict[str, Any]]:
    """New-process first suggestion: Runtime (k=0) timings by stage, and `nl2cmd --no-daemon` end to end."""
    stages: dict[str, list[float]] = {"interpreter": [], "import": [], "load": [], "generate": [], "answer": []}
    cli_walls: list[float] = []
    cli_status = "ok"
    with tempfile.TemporaryDirectory(prefix="n2cb") as home:
        env = {**os.environ, "NL2CMD_HOME": home}
        env.pop("NL2CMD_BACKEND", None)
        for _ in range(repeats):
            t0 = time.time()
            out = subprocess.run(
                [sys.executable, "-c", COLD_CODE, ckpt, PROMPT_TEXT], capture_output=True, text=True, cwd=REPO
            )
            if out.returncode != 0:
                tail = out.stderr.strip().splitlines()
                raise BenchError(f"cold call failed: {tail[-1] if tail else f'exit status {out.returncode}'}")
            d = json.loads(out.stdout.strip().splitlines()[-1])
            for key, a, b in (
                ("interpreter", t0, d["t_start"]),
                ("import", d["t_start"], d["t_import"]),
                ("load", d["t_import"], d["t_load"]),
                ("generate", d["t_load"], d["t_answer"]),
                ("answer", t0, d["t_answer"]),
            ):
                stages[key].append(b - a)
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "tinyllm.cli.app", "--no-daemon", "--model", ckpt, PROMPT_TEXT],
                capture_output=True,
                text=True,
                cwd=REPO,
                env=env,
            )
            cli_walls.append(time.perf_counter() - t0)
            if out.returncode != 0:
                cli_status = f"failed: {first_line(out.stderr)}"
    rows = [{"case": f"Runtime: {k}", "ms": (median(v) or 0) * 1000, "s": v} for k, v in stages.items()]
    rows.append(
        {
            "case": "nl2cmd --no-daemon (process start to exit)",
            "ms": (median(cli_walls) or 0) * 1000,
            "s": cli_walls,
            "status": cli_status,
        }
    )
    return rows


# ----------------------------------------------------------------------------------------------- accuracy


def measure_accuracy(args: argparse.Namespace, ckpt: str) -> dict[str, Any]:
    """Exact match (whitespace_key equality with the gold command) of the numpy engine and each variant."""
    import torch

    from tinyllm.infer.runtime import Runtime
    from tinyllm.knowledge.text import whitespace_key
    from tinyllm.train.evaluate import model_predictor
    from tinyllm.train.model import TorchStepModel

    rows = read_jsonl_rows(args.accuracy_jsonl, args.accuracy_limit)
    rt = Runtime.load(ckpt, engine="numpy")  # the float32 reference
    index, k, note = None, 0, "retrieval off (k=0)"
    if args.index is not None:
        from tinyllm.knowledge.retrieval import BM25Index

        try:
            index = BM25Index.load(args.index)
        except Exception as exc:
            raise BenchError(f"{args.index}: unreadable retrieval index ({exc})") from None
        k = rt.retrieval_k or args.k
        note = f"retrieval k={k} from {args.index}"
    elif rt.retrieval_k:
        note += f"; the model was trained with k={rt.retrieval_k}, so absolute numbers are low (pass --index)"
    torch.set_num_threads(max(args.threads))

    def run(runtime: Runtime) -> tuple[list[str], float]:
        t0 = time.perf_counter()
        preds = model_predictor(runtime, index, k, batch_size=args.accuracy_batch, max_new_tokens=args.max_new_tokens)(
            rows
        )
        return preds, time.perf_counter() - t0

    gold = [whitespace_key(r["command"]) for r in rows]
    progress(f"accuracy: numpy-cache on {len(rows)} rows")
    base, base_s = run(rt)
    base_em = sum(whitespace_key(p) == g for p, g in zip(base, gold)) / len(rows)
    out = [{"variant": BASELINE, "exact_match": base_em, "delta_pp": 0.0, "agreement": 1.0, "seconds": base_s}]
    for v in ACCURACY_VARIANTS:
        progress(f"accuracy: {v}")
        try:
            variant_rt = copy.copy(rt)
            if VARIANTS[v][0] == "c":
                from tinyllm.infer.cengine import CTransformer

                variant_rt.model = CTransformer(rt.ckpt.config, rt.ckpt.weights, threads=1, activations=VARIANTS[v][1])
            else:
                variant_rt.model = TorchStepModel(build_torch(rt.ckpt.config, rt.ckpt.weights, VARIANTS[v][1], "default"))
            preds, secs = run(variant_rt)
        except Exception as exc:
            out.append({"variant": v, "status": f"failed: {first_line(str(exc))}"})
            continue
        em = sum(whitespace_key(p) == g for p, g in zip(preds, gold)) / len(rows)
        agree = sum(whitespace_key(p) == whitespace_key(b) for p, b in zip(preds, base)) / len(rows)
        out.append(
            {"variant": v, "exact_match": em, "delta_pp": 100 * (em - base_em), "agreement": agree, "seconds": secs}
        )
    return {"rows": len(rows), "file": str(args.accuracy_jsonl), "retrieval": note, "results": out}


# ------------------------------------------------------------------------------------------------- main


def encode_prompt(args: argparse.Namespace, ckpt: str | None, vocab: int) -> tuple[list[int], str]:
    """The benchmark prompt: --prompt encoded with the checkpoint's tokenizer, else synthetic ids."""
    if args.prompt is not None:
        if ckpt is None:
            raise BenchError("--prompt needs a model file with a tokenizer (--ckpt or --tokenizer)")
        from tinyllm.infer.runtime import Runtime
        from tinyllm.knowledge.text import normalize_instruction

        ids = Runtime.load(ckpt).prompt_ids(normalize_instruction(args.prompt), "linux")
        return ids, f"--prompt ({len(ids)} tokens)"
    import numpy as np

    from tinyllm.formats.prompt import BOS_ID, SPECIAL_IDS

    rng = np.random.default_rng(0)
    body = rng.integers(len(SPECIAL_IDS), vocab, size=args.prompt_tokens - 1).tolist()
    return [BOS_ID, *body], f"synthetic ({args.prompt_tokens} tokens)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(p, "decode")
    p.add_argument("--ckpt", type=Path, default=None, help="inference .npz (default: tinyllm/models/default.npz)")
    p.add_argument("--preset", default=None, help="random-weight preset when there is no checkpoint (default: default)")
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="SentencePiece model to build a random-weight checkpoint when there is none (enables cold-call)",
    )
    p.add_argument("--variants", default=None, help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    p.add_argument("--threads", type=positive_ints, default=None, help="thread counts to compare (default: 1,2)")
    p.add_argument("--repeats", type=positive_int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--prompt-tokens", type=positive_int, default=30)
    p.add_argument("--prompt", default=None, help="encode this instruction instead of synthetic prompt ids")
    p.add_argument("--new-tokens", type=positive_int, default=None, help="tokens generated per run (default 64)")
    p.add_argument("--compile-mode", default="default", choices=("default", "reduce-overhead", "max-autotune"))
    p.add_argument("--skip-imports", action="store_true", help="skip the import-time and cold-call measurements")
    p.add_argument("--accuracy-jsonl", type=Path, default=None, help="dev rows (instruction, command, platform)")
    p.add_argument("--accuracy-limit", type=positive_int, default=200)
    p.add_argument("--accuracy-batch", type=positive_int, default=16)
    p.add_argument("--max-new-tokens", type=positive_int, default=96, help="generation budget for accuracy")
    p.add_argument("--index", type=Path, default=None, help="BM25 index (.idx) for retrieval in the accuracy run")
    p.add_argument("--k", type=int, default=4, help="retrieved examples with --index if the model does not say")
    p.add_argument("--worker", choices=("numpy", "c", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--worker-ckpt", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.preset = args.preset or ("micro" if q else "default")
    args.threads = args.threads or ([1] if q else [1, 2])
    args.repeats = args.repeats or (2 if q else 5)
    args.new_tokens = args.new_tokens or (8 if q else 64)
    if args.new_tokens < 2:
        p.error("--new-tokens must be at least 2 (one from prefill, at least one decode step)")
    if args.variants is None:
        from tinyllm.infer.cengine import unavailable_reason

        no_c = unavailable_reason()  # not built here (no compiler) or no AVX2: leave its variants out
        args.variants = [v for v in VARIANTS if not (q and v == "torch-compile") and not (no_c and v.startswith("c-"))]
    else:
        args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in args.variants if v not in VARIANTS]
        if unknown or not args.variants:
            p.error(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}")
    return args


def measure_roofline(params: int, repeats: int, quick: bool) -> dict[str, Any]:
    """The memory-bandwidth ceiling of single-stream decode: every token reads all fp32 weights once.

    Read bandwidth is measured here with one thread (a numpy sum over a buffer far larger than the L3
    cache), median of `repeats`; ceiling tok/s = bandwidth / (4 bytes x params).
    """
    import numpy as np

    buf = np.ones((8 if quick else 64) * 2**20, dtype=np.float32)  # 32 or 256 MiB
    buf.sum()
    times = []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        buf.sum()
        times.append(time.perf_counter() - t0)
    gbps = buf.nbytes / (median(times) or 1e-9) / 1e9
    per_token = 4 * params
    return {"read_gb_per_s": gbps, "bytes_per_token_fp32": per_token, "ceiling_tokens_per_s_fp32": gbps * 1e9 / per_token,
            "ceiling_tokens_per_s_int8": gbps * 1e9 / params}


def main() -> int:
    """Run the decode benchmark (or a worker, with the hidden --worker option)."""
    args = parse_args()
    if args.worker:
        return worker_main(args)
    from tinyllm.formats.checkpoint import CheckpointError, read_meta
    from tinyllm.formats.config import ModelConfig

    if args.accuracy_jsonl is not None and not args.accuracy_jsonl.is_file():
        raise BenchError(f"{args.accuracy_jsonl}: file not found")
    with tempfile.TemporaryDirectory(prefix="nl2cmd-bench-") as tmp:
        # --quick stays on the tiny preset unless a model is named explicitly
        ckpt_arg = args.ckpt
        if args.quick and ckpt_arg is None and args.tokenizer is None:
            ckpt, how = None, f"random weights (preset {args.preset}), --quick"
        else:
            ckpt, how = resolve_ckpt(ckpt_arg, args.preset, args.tokenizer, Path(tmp))
        try:
            cfg = ModelConfig.from_dict(read_meta(ckpt)["config"]) if ckpt else ModelConfig.from_name(args.preset)
        except (CheckpointError, ValueError) as exc:
            raise BenchError(str(exc)) from None
        prompt, prompt_how = encode_prompt(args, ckpt, cfg.vocab_size)
        if len(prompt) + args.new_tokens > cfg.max_seq_len:
            raise BenchError(
                f"prompt + new tokens ({len(prompt) + args.new_tokens}) exceed the model's "
                f"{cfg.max_seq_len}-token context"
            )
        info = machine_info(torch_threads=False)
        results, worker_info = measure_decode(args, ckpt, prompt)
        roofline = measure_roofline(cfg.num_params(), args.repeats, args.quick)
        imports = [] if args.skip_imports else measure_imports(1 if args.quick else args.repeats, args.quick)
        cold: list[dict[str, Any]] | str = "skipped: no model file with a tokenizer (give --ckpt or --tokenizer)"
        if args.skip_imports:
            cold = "skipped (--skip-imports)"
        elif ckpt is not None:
            progress("cold first call")
            cold = measure_cold(ckpt, 1 if args.quick else args.repeats)
        accuracy: dict[str, Any] | str = "not requested (--accuracy-jsonl)"
        if args.accuracy_jsonl is not None:
            accuracy = (
                measure_accuracy(args, ckpt)
                if ckpt is not None
                else "skipped: needs a model file with a tokenizer (--ckpt or --tokenizer)"
            )

    summaries = [r.summary(args.new_tokens) for r in results]
    base = next(
        (
            s
            for s in summaries
            if s["variant"] == BASELINE and s["threads"] == max(args.threads) and s["decode_tokens_per_s"]
        ),
        None,
    )
    for s in summaries:
        s["speedup_vs_baseline"] = (
            s["decode_tokens_per_s"] / base["decode_tokens_per_s"] if base and s["decode_tokens_per_s"] else None
        )
    payload = {
        "bench": "decode",
        "quick": args.quick,
        "machine": info,
        "workers": worker_info,
        "model": {"source": how, "path": ckpt, "config": cfg.to_dict(), "params": cfg.num_params()},
        "settings": {
            "prompt": prompt_how,
            "prompt_tokens": len(prompt),
            "new_tokens": args.new_tokens,
            "repeats": args.repeats,
            "threads": args.threads,
            "compile_mode": args.compile_mode,
            "baseline": f"{BASELINE} threads={max(args.threads)}",
        },
        "decode": summaries,
        "roofline": roofline,
        "imports": imports,
        "cold_call": cold,
        "accuracy": accuracy,
    }
    return finish(payload, print_report, args.out)


def print_report(p: dict[str, Any]) -> None:
    """The markdown report on stdout."""
    s = p["settings"]
    print_header("decode benchmark", p)
    print(f"- model: {p['model']['source']}, {p['model']['params'] / 1e6:.2f}M params")
    print(
        f"- prompt: {s['prompt']}, {s['new_tokens']} new tokens (eos ignored), median of {s['repeats']} "
        f"interleaved rounds, baseline {s['baseline']}\n"
    )
    rows = [
        [
            d["variant"],
            d["threads"],
            fmt(d["prefill_ms"]),
            fmt(d["decode_tokens_per_s"]),
            fmt(d["decode_ms_per_token"], 2),
            fmt(d["time_to_n_tokens_ms"]),
            fmt(d["speedup_vs_baseline"], 2, "x"),
            fmt(100 * d["decode_spread"] if d["decode_spread"] is not None else None, 0, "%"),
            fmt(d["warmup_s"], 2),
            d["status"],
        ]
        for d in p["decode"]
    ]
    print(
        markdown_table(
            [
                "variant",
                "threads",
                "prefill ms",
                "decode tok/s",
                "ms/token",
                f"time to {s['new_tokens']} tokens ms",
                "vs baseline",
                "spread",
                "warm-up s",
                "status",
            ],
            rows,
        )
    )
    r = p["roofline"]
    best = max((d["decode_tokens_per_s"] or 0 for d in p["decode"] if d["variant"] == BASELINE), default=0)
    print(f"\n- memory roofline: one-thread read bandwidth {r['read_gb_per_s']:.1f} GB/s; decode reads "
          f"{r['bytes_per_token_fp32'] / 2**20:.1f} MiB of fp32 weights per token, so at most "
          f"{r['ceiling_tokens_per_s_fp32']:.0f} tok/s in fp32 ({r['ceiling_tokens_per_s_int8']:.0f} with int8 "
          f"weights); {BASELINE} reaches {100 * best / r['ceiling_tokens_per_s_fp32']:.0f}% of the fp32 ceiling")
    if p["imports"]:
        print("\n## import time (new process, median)\n")
        print(
            markdown_table(
                ["import", "process wall ms", "-X importtime total ms", "heavy modules loaded"],
                [
                    [r["case"], fmt(r["wall_ms"]), fmt(r["importtime_ms"]), ", ".join(r["heavy_modules"]) or "none"]
                    for r in p["imports"]
                ],
            )
        )
    print("\n## cold first call (new process; the model file is in the page cache)\n")
    if isinstance(p["cold_call"], str):
        print(p["cold_call"])
    else:
        print(
            markdown_table(
                ["stage", "ms", "status"], [[r["case"], fmt(r["ms"]), r.get("status", "ok")] for r in p["cold_call"]]
            )
        )
    print("\n## accuracy of numerics-changing variants\n")
    acc = p["accuracy"]
    if isinstance(acc, str):
        print(acc)
    else:
        print(
            f"{acc['rows']} rows of {acc['file']}, greedy, {acc['retrieval']}; exact match = whitespace_key equality\n"
        )
        print(
            markdown_table(
                ["variant", "exact match", "delta (pp)", "agreement with numpy", "seconds", "status"],
                [
                    [
                        r["variant"],
                        fmt(100 * r["exact_match"], 1, "%") if "exact_match" in r else "-",
                        fmt(r.get("delta_pp"), 1),
                        fmt(100 * r["agreement"], 1, "%") if "agreement" in r else "-",
                        fmt(r.get("seconds")),
                        r.get("status", "ok"),
                    ]
                    for r in acc["results"]
                ],
            )
        )


if __name__ == "__main__":
    run_main(main)
