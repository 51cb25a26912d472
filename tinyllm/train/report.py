"""The run report: configuration, data sizes, time per stage, final metrics, loss curves, and the learning
curve of the SFT snapshots (`curve.jsonl`, written by `nl2cmd-train curve`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .curve import CURVE_FILE, read_records

CURVE_PNG = "learning_curve.png"
CURVE_PANELS = (("exact_match", "exact match"), ("command_name_acc", "command name"),
                ("nonsense", "nonsense (no parse, unknown program, stutter)"))
"""The learning curve's panels: curve record field and title."""
CLOCKS = {"log": "the training loop's time in the SFT log", "files": "the snapshot files' modification times"}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_losses(out: Path) -> list[Path]:
    """One PNG per training stage with train loss (and eval points); skipped without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    for stage in ("pretrain", "sft"):
        log = read_records(out / stage / "log.jsonl")
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


def _curve_axis(records: Sequence[dict]) -> tuple[str, str]:
    """(record field, axis label) of the learning curve's x axis: hours when every record has them."""
    if all(r.get("hours") is not None for r in records):
        return "hours", "training hours"
    return "step", "step (no hours estimate yet)"


def _set_names(records: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["set"] for r in records))


def curve_figure(plt, records: Sequence[dict]):
    """The learning curve as a matplotlib figure: one panel per `CURVE_PANELS` entry (percent against training
    hours, or steps while some record has no hours), one line per set."""
    key, label = _curve_axis(records)
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4 * len(CURVE_PANELS), 3.5), sharex=True)
    for ax, (field, title) in zip(axes, CURVE_PANELS):
        for name in _set_names(records):
            points = sorted((r[key], 100 * r[field]) for r in records if r["set"] == name)
            ax.plot(*zip(*points), "o-", ms=3, lw=1, label=name)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(label)
        ax.set_ylabel("% of requests")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_curve(records: Sequence[dict], paths: Sequence[Path]) -> list[Path]:
    """Write the learning curve (`curve_figure`) as PNG to each of `paths`; returns the paths written (none
    without records or matplotlib)."""
    plt = _pyplot()
    if plt is None or not records:
        return []
    fig = curve_figure(plt, records)
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return [Path(p) for p in paths]


def curve_table(records: Sequence[dict]) -> list[str]:
    """The learning curve as markdown table lines, in step then set order."""
    lines = ["| step | hours | set | n | exact match | command name | template | NLC2CMD | nonsense |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["step"], r["set"])):
        hours = "" if r.get("hours") is None else f"{r['hours']:.2f}"
        lines.append(f"| {r['step']} | {hours} | {r['set']} | {r['n']} | {100 * r['exact_match']:.1f}% | "
                     f"{100 * r['command_name_acc']:.1f}% | {100 * r['template_acc']:.1f}% | {r['nlc2cmd']:.3f} | "
                     f"{100 * r['nonsense']:.1f}% |")
    return lines


def _curve_section(out: Path, sft_dir: str, curve_png: Path | None) -> list[str]:
    """The report's learning-curve section (plot and table); none without a curve unless `curve_png` asks."""
    path = out / sft_dir / CURVE_FILE
    records = read_records(path)
    if not records:
        if curve_png is not None:
            raise FileNotFoundError(f"{path} not found or empty: run `nl2cmd-train curve --run {out}` first")
        return []
    written = plot_curve(records, [out / CURVE_PNG] + ([Path(curve_png)] if curve_png is not None else []))
    if not written and curve_png is not None:
        raise ValueError(f"{curve_png}: plotting needs matplotlib (the [train] extra)")
    lines = ["", "## Learning curve", ""] + ([f"![learning curve]({CURVE_PNG})", ""] if written else [])
    clocks = {r.get("clock") for r in records} - {None}
    if clocks:
        lines += ["Hours from " + " and ".join(CLOCKS.get(c, c) for c in sorted(clocks)) + ".", ""]
    return lines + curve_table(records)


def _data_lines(out: Path) -> list[str]:
    pairs = _read_json(out / "pairs" / "pairs_manifest.json")
    if not pairs:
        return []
    lines = ["## Data", "", "| split | rows |", "|---|---|"]
    return lines + [f"| {k} | {v} |" for k, v in pairs.get("sizes", {}).items()] + [""]


def _time_lines(out: Path) -> list[str]:
    times = _read_json(out / "times.json")
    if not times:
        return []
    lines = ["## Time per stage (s)", "", "Wall time of the calls that finished; a call that was interrupted and "
             "resumed counts from its resume (the training loop's own time is below).", "",
             "| stage | seconds |", "|---|---|"]
    return lines + [f"| {k} | {v} |" for k, v in times.items()] + [""]


def _training_lines(out: Path) -> list[str]:
    """One line per training stage from its log: steps, final loss, throughput and, when logged, the
    training loop's time summed over every resumed part (`train_s`)."""
    lines = []
    for stage in ("pretrain", "sft"):
        log = [r for r in read_records(out / stage / "log.jsonl") if "loss" in r]
        if log:
            last = log[-1]
            loop = f", {last['train_s'] / 3600:.2f} h in the training loop" if "train_s" in last else ""
            lines += [f"- {stage}: {last['step']} steps, final train loss {last['loss']:.3f}, "
                      f"{last.get('tokens_per_s', 0):.0f} tokens/s{loop}"]
    return lines


def _dev_lines(out: Path) -> list[str]:
    ev = _read_json(out / "eval" / "dev_summary.json")
    if not ev:
        return []
    from .evaluate import TABLE_HEADER, format_summary

    lines = ["", "## Dev metrics", ""]
    if ev.get("model_file"):
        lines += [f"Model: `{ev['model_file']}`", ""]
    names = {"model": "model", "nearest_neighbour": "nearest neighbour (BM25)"}
    lines += [TABLE_HEADER] + [format_summary(names.get(name, name), s) for name, s in ev.items() if isinstance(s, dict)]
    cats = ev.get("model", {}).get("categories")
    if cats:
        lines += ["", "Failure categories (model): " + ", ".join(f"{k}: {v}" for k, v in cats.items())]
    return lines


def _rank_lines(out: Path) -> list[str]:
    """The rank stage's fit (OUT/eval/rank.json): settings, and dev before and after the ranking."""
    rank = _read_json(out / "eval" / "rank.json")
    if not rank.get("settings"):
        return []
    st, base, ranked = rank["settings"], rank.get("baseline", {}), rank.get("ranked", {})

    def pct(s: dict) -> str:
        return f"{100 * s.get('exact', 0):.1f}% exact, {100 * s.get('command_name', 0):.1f}% command name, " \
               f"{100 * s.get('nonsense', {}).get('any', 0):.1f}% nonsense"

    pens = ", ".join(f"{k} {v:g}" for k, v in st.get("penalties", {}).items() if v)
    return ["", "## Ranking", "",
            f"Fitted on {ranked.get('n', 0)} dev rows (`rank` stage): beam {st.get('beam')}, filling {st.get('fill', 0)}, "
            f"fallback {st.get('fallback', 0)}, low-confidence note below {st.get('threshold', 0):g}; penalties: {pens}.",
            "", f"Dev before the ranking (greedy + named-program step): {pct(base)}; ranked: {pct(ranked)}."]


def write_report(out: Path, sft_dir: str = "sft", curve_png: Path | None = None) -> Path:
    """Write out/report.md from what the stages left in `out`; returns its path. With OUT/SFT_DIR/curve.jsonl
    the learning curve goes in too, plotted to OUT/learning_curve.png and to `curve_png` when given."""
    out = Path(out)
    run = _read_json(out / "run.json")
    lines = ["# nl2cmd training report", "", "## Configuration", "```json", json.dumps(run, indent=1), "```", ""]
    lines += _data_lines(out) + _time_lines(out) + _training_lines(out) + _rank_lines(out) + _dev_lines(out)
    plots = plot_losses(out)
    if plots:
        lines += ["", "## Curves", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += _curve_section(out, sft_dir, curve_png)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
