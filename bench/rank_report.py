"""Before/after tables of the candidate ranking over saved candidates (bench/rank_candidates.py): exact,
command name and the share of nonsense answers (no parse / unknown program / stutter) per set, the gain
of each check alone on dev, the reliability table of the confidence; JSON + markdown.

    python bench/rank_report.py --candidates runs/rank --model tinyllm/models/default.npz dev test everyday5
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from common import run_main

REPO = Path(__file__).resolve().parent.parent


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _show(rate: float | None) -> str:
    return "-" if rate is None else pct(rate)


def main() -> int:
    from tinyllm.formats.checkpoint import read_meta
    from tinyllm.infer.rank import RankSettings
    from tinyllm.knowledge.retrieval import load_tool_lexicon
    from tinyllm.train.evaluate import HIGH_CONFIDENCE, confidence_summary
    from tinyllm.train.rank_tune import (
        TUNED_CHECKS,
        _public,
        add_checks,
        read_candidates,
        reliability,
        score_settings,
        tune_penalties,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="names of CANDIDATES/NAME.jsonl; the first is the dev split")
    ap.add_argument("--candidates", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=REPO / "tinyllm" / "models" / "default.npz")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ranking.json")
    args = ap.parse_args()
    settings = RankSettings.from_meta(read_meta(args.model)["meta"])
    if settings is None:
        raise SystemExit(f"{args.model} has no ranking settings (run nl2cmd-train rank-tune)")
    tools = load_tool_lexicon(args.model.with_suffix(".idx"))
    report: dict = {"model": str(args.model.name), "settings": settings.to_meta(), "sets": {}}
    lines = ["| set | n | exact before | exact after | command name before | after | nonsense before | after "
             "| beam ran |", "|---|---|---|---|---|---|---|---|---|"]
    sets, ranked_rows = {}, {}
    for name in args.sets:
        recs = read_candidates(args.candidates / f"{name}.jsonl")
        add_checks(recs, tools)
        sets[name] = recs
        before = score_settings(recs, tools, settings, baseline=True)
        after = score_settings(recs, tools, settings)
        ranked_rows[name] = after["rows"]
        report["sets"][name] = {"before": _public(before), "after": _public(after),
                                "reliability": reliability(after["rows"])}
        lines.append(f"| {name} | {before['n']} | {pct(before['exact'])} | {pct(after['exact'])} | "
                     f"{pct(before['command_name'])} | {pct(after['command_name'])} | {pct(before['nonsense']['any'])} | "
                     f"{pct(after['nonsense']['any'])} | {pct(after['beam_rate'])} |")
    dev = args.sets[0]
    ablation = ["| checks | penalty | dev exact | command name | nonsense | beam ran |", "|---|---|---|---|---|---|"]
    base = score_settings(sets[dev], tools, settings, baseline=True)
    ablation.append(f"| none: greedy + named-program step | - | {pct(base['exact'])} | {pct(base['command_name'])} | "
                    f"{pct(base['nonsense']['any'])} | - |")
    report["ablation"] = {"alone": {}, "all_but": {}}

    def row(label: str, pen: str, s: dict) -> str:
        return (f"| {label} | {pen} | {pct(s['exact'])} | {pct(s['command_name'])} | {pct(s['nonsense']['any'])} | "
                f"{pct(s['beam_rate'])} |")

    # each check alone: tuned on dev with only that penalty, no filling and no fallback (unknown_program's
    # alone is the named-program step's rule, so the others are added to it)
    for check in TUNED_CHECKS:
        others = [c for c in TUNED_CHECKS if c != check]
        pen, _ = tune_penalties(sets[dev], tools, settings.beam, checks=[check] if check == "unknown_program"
                                else ["unknown_program", check])
        pen = {c: pen.get(c, 0.0) for c in TUNED_CHECKS}
        s = score_settings(sets[dev], tools, RankSettings(pen, settings.beam))
        report["ablation"]["alone"][check] = {"penalties": pen, **_public(s)}
        label = check if check == "unknown_program" else f"unknown_program + {check}"
        ablation.append(row(label, str(pen[check]), s))
        del others
    s = score_settings(sets[dev], tools, settings)
    ablation.append(row("all (shipped)", "-", s))
    for check in TUNED_CHECKS:  # the shipped settings (filling, fallback) with one penalty at 0
        s = score_settings(sets[dev], tools, replace(settings, penalties={**settings.penalties, check: 0.0}))
        report["ablation"]["all_but"][check] = _public(s)
        ablation.append(row(f"all but {check}", "0", s))
    labels = {"fill": "the filled-in values", "fallback": "the retrieved fallback",
              "beam_below": "the beam for unsure answers"}
    for step, label in labels.items():
        if getattr(settings, step):
            s = score_settings(sets[dev], tools, replace(settings, **{step: None if step == "beam_below" else 0}))
            report["ablation"]["all_but"][step] = _public(s)
            ablation.append(row(f"all but {label}", "-", s))
    rel = ["| confidence | answers | mean confidence | right |", "|---|---|---|---|"]
    for b in report["sets"][dev]["reliability"]:
        rel.append(f"| {b['bin']} | {b['n']} | {b['mean_confidence']} | {b['right']} |")
    conf = [f"| set | confidence >= {HIGH_CONFIDENCE} | right among them | with the low-confidence note "
            "| right among them | right among the others |", "|---|---|---|---|---|---|"]
    for name, rows in ranked_rows.items():  # the ranked answers scored above, as eval scores served ones
        share = confidence_summary([{"confidence": r["confidence"], "exact_match": r["exact"]} for r in rows if r],
                                   settings.threshold)
        report["sets"][name]["confidence"] = share
        n = max(share["n"], 1)
        conf.append(f"| {name} | {share['high']} ({pct(share['high'] / n)}) | {_show(share['high_right'])} | "
                    f"{pct(share['low'] / n)} | {_show(share['low_right'])} | {_show(share['others_right'])} |")
    text = "\n".join(lines) + "\n\n" + "\n".join(ablation) + "\n\n" + "\n".join(rel) + "\n\n" + "\n".join(conf)
    print(text)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
