"""The run report: configuration, data sizes, time per stage, final metrics and loss curves."""

from __future__ import annotations

import json
from pathlib import Path


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(out: Path) -> list[Path]:
    """One PNG per training stage with train loss (and eval points); skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for stage in ("pretrain", "sft"):
        log = _read_log(out / stage / "log.jsonl")
        train = [(r["step"], r["loss"]) for r in log if "loss" in r]
        if not train:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(*zip(*train), label="train loss", lw=1)
        val = [(r["step"], r["eval"]["val_loss"]) for r in log if "eval" in r and "val_loss" in r["eval"]]
        if val:
            ax.plot(*zip(*val), "o-", label="val loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{stage} loss")
        ax.legend()
        fig.tight_layout()
        path = out / f"{stage}_loss.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def write_report(out: Path) -> Path:
    """Write out/report.md from what the stages left in `out`; returns its path."""
    out = Path(out)
    run = _read_json(out / "run.json")
    pairs = _read_json(out / "pairs" / "pairs_manifest.json")
    times = _read_json(out / "times.json")
    ev = _read_json(out / "eval" / "dev_summary.json")
    lines = ["# nl2cmd training report", "", "## Configuration", "```json", json.dumps(run, indent=1), "```", ""]
    if pairs:
        lines += ["## Data", "", "| split | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in pairs.get("sizes", {}).items()]
        lines += [""]
    if times:
        lines += ["## Time per stage (s)", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in times.items()] + [""]
    for stage in ("pretrain", "sft"):
        log = [r for r in _read_log(out / stage / "log.jsonl") if "loss" in r]
        if log:
            last = log[-1]
            lines += [f"- {stage}: {last['step']} steps, final train loss {last['loss']:.3f}, "
                      f"{last.get('tokens_per_s', 0):.0f} tokens/s"]
    if ev:
        from .evaluate import TABLE_HEADER, format_summary

        lines += ["", "## Dev metrics", "", TABLE_HEADER]
        names = {"model": "model", "nearest_neighbour": "nearest neighbour (BM25)"}
        lines += [format_summary(names.get(name, name), s) for name, s in ev.items()]
        cats = ev.get("model", {}).get("categories")
        if cats:
            lines += ["", "Failure categories (model): " + ", ".join(f"{k}: {v}" for k, v in cats.items())]
    plots = plot_losses(out)
    if plots:
        lines += ["", "## Curves", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
