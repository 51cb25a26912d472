"""Which features sharpen the confidence? For each ranked answer of rank-tune's saved candidates (dev and
calibration rows) the served features (`CONFIDENCE_FEATURES`; "support" from the index's program counts,
recounted for an older index), each also without "support", and, unless `--no-signals`, token-level
signals from one teacher-forced pass (the log-prob of each answer token, the entropy of each next-token
distribution), and with `--second M2.npz` the second model's mean per-token log-prob of the answer (one
teacher-forced pass of the other model, as the pair's choice takes when it asks it), and with
`--neighbours` the nearest training request's word-overlap F1 and whether the answer is its command. The confidence's
logistic model is refitted for each trial, 5-fold cross-validated over dev + calibration, and compared
by log-loss and by the dev answers it rates >= 0.8 (the target: right at least 80% of the time).

    python bench/confidence_features.py --candidates CANDS.jsonl --model M.npz --index M.idx \\
        [--settings REPORT.json] [--no-signals] [--second M2.npz] [--neighbours]

CANDS.jsonl is `nl2cmd-train rank-tune --candidates`'s file; REPORT.json a `rank-tune --report` (its
settings rank the answers; default: the model file's own).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from common import BenchError, markdown_table, run_main

from tinyllm.infer.generate import _log_softmax

REPO = Path(__file__).resolve().parent.parent
SIGNALS = ("min_logprob", "eos_logprob", "first_logprob", "max_entropy", "mean_entropy")
"""Of the answer's tokens (its <eos> included): the lowest log-prob, the <eos>'s, the first token's; the
highest and the mean entropy of the model's next-token distribution along the answer."""
TRIALS = ((), ("min_logprob",), ("eos_logprob",), ("first_logprob",), ("max_entropy",), ("mean_entropy",),
          ("min_logprob", "eos_logprob"), ("eos_logprob", "max_entropy"), SIGNALS[:4])
SECOND = ("second_logprob", "second_above")
"""Of the second model (`--second`): its mean per-token log-prob of the first model's answer, and that plus
one floored at 0 (only how sure it is above a mean of -1 per token counts)."""
NEIGHBOUR = ("nn_f1", "nn_same")
"""Of the nearest training request (`--neighbours`, BM25 over the index): its word-overlap F1 with the
request, and whether the answer is that request's command (whitespace-normalised)."""
NEIGHBOUR_TRIALS = (("nn_f1",), ("nn_same",), NEIGHBOUR)
HIGH = 0.8


def token_signals(runtime, request: str, platform: str, command: str) -> dict[str, float]:
    """`SIGNALS` of `command` as the answer to `request` (one uncached forward)."""
    prompt = runtime.prompt_ids(request, platform)
    target = runtime.tokenizer.encode_target(command)
    logp = _log_softmax(runtime.model.forward(np.array([prompt + target], dtype=np.int64))[0].astype(np.float64))
    pos = len(prompt) - 1 + np.arange(len(target))
    picked = logp[pos, np.array(target)]
    entropy = -(np.exp(logp[pos]) * logp[pos]).sum(axis=-1)
    return {"min_logprob": float(picked.min()), "eos_logprob": float(picked[-1]),
            "first_logprob": float(picked[0]), "max_entropy": float(entropy.max()),
            "mean_entropy": float(entropy.mean())}


def neighbour_signals(index, request: str, platform: str, command: str) -> dict[str, float]:
    """`NEIGHBOUR` features of `command` as the answer to `request`."""
    from tinyllm.knowledge.text import whitespace_key
    from tinyllm.serve.suggest import word_f1

    hits = index.search(request, k=1, platform=platform)
    if not hits:
        return {"nn_f1": 0.0, "nn_same": 0.0}
    return {"nn_f1": word_f1(request, hits[0].instruction),
            "nn_same": float(whitespace_key(hits[0].command) == whitespace_key(command))}


def cross_validated(rows: list[dict], names: tuple[str, ...], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's confidence from a logistic model fitted on the other folds."""
    from tinyllm.train.rank_tune import fit_confidence

    fold = np.random.default_rng(seed).integers(0, folds, len(rows))
    out = np.zeros(len(rows))
    for f in range(folds):
        train = [r for r, k in zip(rows, fold) if k != f]
        w = fit_confidence(train, names=names)
        for i in np.flatnonzero(fold == f):
            z = sum(w[k] * rows[i]["features"][k] for k in names)
            out[i] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
    return out


def main() -> int:
    from tinyllm.formats.checkpoint import read_meta
    from tinyllm.infer.rank import CONFIDENCE_FEATURES, RankSettings
    from tinyllm.infer.runtime import Runtime
    from tinyllm.knowledge.retrieval import BM25Index
    from tinyllm.train.rank_tune import add_checks, read_candidates, score_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=REPO / "tinyllm" / "models" / "default.npz")
    ap.add_argument("--index", type=Path, default=None, help="default: the model's .idx")
    ap.add_argument("--settings", type=Path, default=None, help="a rank-tune --report JSON (its settings)")
    ap.add_argument("--no-signals", action="store_true", help="only the served features, with and without support")
    ap.add_argument("--second", type=Path, default=None,
                    help="another model file: add its mean log-prob of each answer as a feature (SECOND)")
    ap.add_argument("--neighbours", action="store_true",
                    help="add the nearest training request's similarity and command agreement (NEIGHBOUR)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "confidence_features.json")
    args = ap.parse_args()
    for p in (args.candidates, args.model, args.settings, args.second):
        if p is not None and not p.is_file():
            raise BenchError(f"{p}: file not found")
    meta = {"ranking": json.loads(args.settings.read_text())["settings"]} if args.settings \
        else read_meta(args.model)["meta"]
    settings = RankSettings.from_meta(meta)
    if settings is None:
        raise BenchError(f"{args.model} has no ranking settings (run nl2cmd-train rank-tune)")
    index = BM25Index.load(args.index or args.model.with_suffix(".idx"))
    tools = index.with_tools()
    runtime = None if args.no_signals else Runtime.load(args.model)
    second = None if args.second is None else Runtime.load(args.second)
    recs = read_candidates(args.candidates)
    add_checks(recs, tools)
    rows = []
    for split in ("dev", "calibration"):
        part = [r for r in recs if r.get("split", "dev") == split]
        for rec, row in zip(part, score_settings(part, tools, settings)["rows"]):
            if row and row["features"] and row["pred"]:
                if runtime is not None:
                    row["features"].update(token_signals(runtime, rec["request"], rec["platform"], row["pred"]))
                if second is not None:
                    lp = second.score(second.prompt_ids(rec["request"], rec["platform"]), [row["pred"]])[0]
                    row["features"].update(second_logprob=lp, second_above=max(0.0, 1.0 + lp))
                if args.neighbours:
                    row["features"].update(neighbour_signals(index, rec["request"], rec["platform"], row["pred"]))
                rows.append({**row, "split": split})
    y = np.array([float(r["exact"]) for r in rows])
    dev = np.array([r["split"] == "dev" for r in rows])
    served = tuple(CONFIDENCE_FEATURES)
    plain = tuple(k for k in served if k != "support")
    trials = [(plain, ()), (served, ())] + ([] if runtime is None else [(served, extra) for extra in TRIALS if extra])
    trials += [] if second is None else [(served, (name,)) for name in SECOND]
    trials += [(served, extra) for extra in NEIGHBOUR_TRIALS] if args.neighbours else []
    table, results = [], []
    for names, extra in trials:
        p = cross_validated(rows, names + extra)
        loss = float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))
        label = ("the served features" + ("" if "support" in names else " without support")
                 + ("".join(" + " + e for e in extra)))
        res = {"features": label, "signals": list(extra), "log_loss": round(loss, 4)}
        for name, mask in (("dev", dev), ("calibration", ~dev)):
            high = mask & (p >= HIGH)
            res[name] = {"high": int(high.sum()), "right": round(float(y[high].mean()), 4) if high.any() else None}
        results.append(res)
        table.append([label, f"{loss:.4f}",
                      res["dev"]["high"], "-" if res["dev"]["right"] is None else f"{100 * res['dev']['right']:.1f}%",
                      res["calibration"]["high"],
                      "-" if res["calibration"]["right"] is None else f"{100 * res['calibration']['right']:.1f}%"])
    print(markdown_table(["features", "log-loss (5-fold)", f"dev >= {HIGH}", "right", f"calibration >= {HIGH}",
                          "right"], table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    second_name = None if args.second is None else args.second.name
    args.out.write_text(json.dumps({"model": args.model.name, "second": second_name, "rows": len(rows),
                                    "dev_rows": int(dev.sum()), "trials": results}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
