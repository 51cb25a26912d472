"""Shared helpers of the bench scripts: machine info, medians, markdown tables, JSON output, model sources.

Imported by the scripts in this folder as ``from common import ...`` (the script's own folder is on
sys.path when run as ``python bench/<name>.py``). Standard library + numpy only: torch is imported by
the scripts that need it, so a numpy-only worker never loads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class BenchError(Exception):
    """A user-facing problem (bad argument, unreadable checkpoint): reported as one line, exit status 2."""


def die(message: str, code: int = 2) -> NoReturn:
    """Print ``<script>: error: message`` (terminal-safe) on stderr and exit."""
    from tinyllm.knowledge.text import safe_line

    sys.stderr.write(f"{Path(sys.argv[0]).name}: error: {safe_line(message)}\n")
    sys.exit(code)


def run_main(main: Callable[[], int]) -> None:
    """Run a bench's main(): BenchError -> one error line, Ctrl-C -> exit 130, no tracebacks for those."""
    try:
        sys.exit(main())
    except BenchError as exc:
        die(str(exc))
    except KeyboardInterrupt:
        die("interrupted", 130)


# --------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    """numpy's BLAS library name and version (best effort)."""
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:
        return "unknown"


def machine_info(torch_threads: bool = True) -> dict[str, Any]:
    """CPU, cores, OS, Python/numpy/torch versions and thread settings of this process (torch_threads=False:
    torch's version from package metadata, without importing it)."""
    import numpy as np

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas_info(),
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if torch_threads:  # imports torch (seconds): only where torch is used anyway
        try:
            import torch

            info["torch"] = torch.__version__
            info["torch_threads"] = torch.get_num_threads()
            info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except ImportError:
            info["torch"] = None
    else:
        from importlib import metadata

        try:
            info["torch"] = metadata.version("torch")
        except metadata.PackageNotFoundError:
            info["torch"] = None
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """Human summary of machine_info for the top of a report."""
    lines = [
        f"machine: {info['cpu']}, {info['usable_cores']}/{info['logical_cores']} cores usable, {info['os']}",
        f"python {info['python']}, numpy {info['numpy']} ({info['numpy_blas']}), torch {info.get('torch')}"
        + (f" (threads {info['torch_threads']})" if info.get("torch_threads") else "")
        + f", load average {info.get('loadavg_1m')}",
    ]
    if info.get("cuda"):
        lines.append(f"cuda: {info['cuda']}")
    return lines


def use_fake_backend(env: dict[str, str] | os._Environ) -> None:
    """Make daemons started with `env` serve the tests' deterministic double (tests/fake_backend.py).

    NL2CMD_BACKEND names the double's module; the repository root goes on PYTHONPATH so that the
    daemon, which runs in /, can import it.
    """
    env["NL2CMD_BACKEND"] = "tests.fake_backend"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)


def thread_env(threads: int) -> dict[str, str]:
    """os.environ with every BLAS/OpenMP thread variable set to `threads` (for a child process)."""
    env = dict(os.environ)
    for key in THREAD_ENV:
        env[key] = str(threads)
    return env


# --------------------------------------------------------------------------------------------- numbers


def median(values: Sequence[float]) -> float | None:
    """Median, or None for no values."""
    return float(statistics.median(values)) if values else None


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    """A number for a table cell ('-' for None)."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (cells converted with str, '|' escaped)."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` as indented JSON (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def add_common_args(parser: argparse.ArgumentParser, name: str) -> None:
    """--out (default bench/results/<name>.json) and --quick."""
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test; numbers are meaningless)")


def positive_ints(text: str) -> list[int]:
    """Parse '1,2' into [1, 2] (argparse type)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive_int(text: str) -> int:
    """argparse type: one integer >= 1."""
    values = positive_ints(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive integer, got {text!r}")
    return values[0]


# --------------------------------------------------------------------------------------------- models


def default_ckpt() -> Path | None:
    """The shipped model (tinyllm/models/default.npz) if it exists."""
    path = REPO / "tinyllm" / "models" / "default.npz"
    return path if path.is_file() else None


def random_weights(cfg: Any, seed: int = 0) -> dict[str, Any]:
    """Random float32 weights of the right shapes (N(0, 0.02), norms 1): speed does not depend on values."""
    import numpy as np

    from tinyllm.formats.checkpoint import expected_weight_shapes

    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_weight_shapes(cfg).items():
        if name.endswith("norm.weight"):
            weights[name] = np.ones(shape, dtype=np.float32)
        else:
            weights[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
    return weights


def load_weights(ckpt: str | None, preset: str) -> tuple[Any, dict[str, Any], str]:
    """(config, float32 weights, description) from a checkpoint file, else random weights of `preset`.

    Raises BenchError for an unreadable checkpoint or unknown preset.
    """
    from tinyllm.formats.checkpoint import CheckpointError, load_inference
    from tinyllm.formats.config import ModelConfig

    if ckpt:
        try:
            c = load_inference(ckpt)
        except CheckpointError as exc:
            raise BenchError(str(exc)) from None
        return c.config, c.weights, f"checkpoint {ckpt}"
    try:
        cfg = ModelConfig.from_name(preset)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return cfg, random_weights(cfg), f"random weights, preset {preset}"


def make_random_checkpoint(path: Path, preset: str, tokenizer_model: Path) -> Path:
    """Write an inference checkpoint with random weights of `preset` and the given SentencePiece model.

    Lets the cold-start and daemon benches run before a trained model exists (outputs are garbage, timings real).
    """
    from tinyllm.formats.checkpoint import save_inference
    from tinyllm.formats.config import ModelConfig
    from tinyllm.formats.tokenizer import Tokenizer, TokenizerError

    try:
        tok = Tokenizer(Path(tokenizer_model).read_bytes())
        cfg = ModelConfig.from_name(preset, vocab_size=tok.vocab_size)
    except (OSError, TokenizerError, ValueError) as exc:
        raise BenchError(f"{tokenizer_model}: {exc}") from None
    save_inference(path, random_weights(cfg), cfg, tok.model_bytes, {"note": "random weights (bench)"})
    return path


def resolve_ckpt(ckpt: Path | None, preset: str, tokenizer: Path | None, tmpdir: Path) -> tuple[str | None, str]:
    """The model file a bench should use and how it was chosen.

    --ckpt wins; else tinyllm/models/default.npz; else, with --tokenizer, a random-weight checkpoint of
    `preset` written into `tmpdir`; else None (the caller uses in-memory random weights and skips what
    needs a tokenizer).
    """
    if ckpt is not None:
        if not ckpt.is_file():
            raise BenchError(f"{ckpt}: model file not found")
        return str(ckpt), "--ckpt"
    found = default_ckpt()
    if found is not None:
        return str(found), "shipped default model"
    if tokenizer is not None:
        if not tokenizer.is_file():
            raise BenchError(f"{tokenizer}: tokenizer model not found")
        path = make_random_checkpoint(tmpdir / f"random-{preset}.npz", preset, tokenizer)
        return str(path), f"random weights (preset {preset}) + tokenizer {tokenizer}"
    return None, f"random weights (preset {preset}), no tokenizer"


def read_jsonl_rows(path: Path, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` rows of a JSONL file that have instruction, command and platform (BenchError if none)."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if len(rows) >= limit:
                    break
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and all(
                    isinstance(row.get(k), str) for k in ("instruction", "command", "platform")
                ):
                    rows.append(row)
    except OSError as exc:
        raise BenchError(f"{path}: {exc.strerror or exc}") from None
    if not rows:
        raise BenchError(f"{path}: no rows with instruction, command and platform")
    return rows


def progress_printer(tag: str):
    """A function that writes `[tag] text` progress lines on stderr."""

    def progress(text: str) -> None:
        sys.stderr.write(f"[{tag}] {text}\n")
        sys.stderr.flush()

    return progress


def finish(payload: dict, print_report, out: str | None) -> int:
    """Print the markdown report, write the JSON, say where; the exit status of a bench main()."""
    print_report(payload)
    path = write_json(out, payload)
    print(f"\nJSON: {path}")
    return 0


def print_header(title: str, payload: dict) -> None:
    """The report's title (marked when --quick) and the machine lines."""
    print(f"# {title}{' (--quick: smoke settings, not results)' if payload['quick'] else ''}\n")
    for line in machine_lines(payload["machine"]):
        print(f"- {line}")
