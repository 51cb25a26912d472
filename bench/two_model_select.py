"""Would a second model pay at serving time? Two models' served answers to the same requests (the per-row
results `nl2cmd-train scoreboard` keeps) are combined offline by simple rules, and each rule's exact
matches are counted beside each model alone and the oracle (right when either is):

* `confidence`: the answer whose model gives it the higher served confidence (ties: the first model's);
* `both log-probs`: the answer with the higher sum of its mean per-token log-prob under both models (one
  teacher-forced pass of each model over each answer where the two differ);
* `both scores`: the same sum, less each model's penalties (its ranking settings) for the checks the answer
  fails, checked with the lexicon of the model that gave it (the index beside its file: MODEL.idx, or
  retrieval.idx in the same folder): a confident answer that does not run loses to one that does.

    python bench/two_model_select.py --board BOARD --first v29=V29.npz --second g9=G9.npz \\
        --set dev --set calibration --set test

With `--below C1,C2,...` a second table asks the second model only where the first model's served
confidence is below each C (what serving would pay for): the share of requests asked, the exact
matches of `both log-probs` and `both scores` then, and the right command names of `both scores` (the
rule serving uses; the ship gate reads both).

BOARD/NAME/SET.rows.jsonl must hold both models' results on each set (scoreboard's layout). Choose a
rule on dev and the calibration set; the everyday sets are for the final report only. Each rule is
paired against the first model (requests only one of them gets right, two-sided sign test). Note that a
served confidence was fitted on dev and the calibration set, so `confidence` is judged out of sample on
the other sets only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import BenchError, markdown_table, run_main

REPO = Path(__file__).resolve().parent.parent
RULES = ("first", "second", "oracle", "confidence", "both log-probs", "both scores")


def named_model(text: str) -> tuple[str, Path]:
    """NAME=FILE -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=MODEL.npz")
    return name, Path(path)


def read_rows(board: Path, model: str, set_name: str) -> list[dict]:
    from tinyllm.train.curve import read_records

    path = board / model / f"{set_name}.rows.jsonl"
    if not path.is_file():
        raise BenchError(f"{path}: not found (score {model} on {set_name} with nl2cmd-train scoreboard first)")
    return read_records(path)


def model_tools(path: Path):
    """The tool lexicon of the index that goes with a model file (eval's rule), or None without one."""
    from tinyllm.knowledge.retrieval import load_tool_lexicon
    from tinyllm.train.cli import default_index_path

    index = default_index_path(path)
    return load_tool_lexicon(index) if index.is_file() else None


def cross_scores(runtimes, rows_a: list[dict], rows_b: list[dict], tools=(None, None)) -> list[dict | None]:
    """For each request where the two answers differ (both non-empty): the sum over both models of each
    answer's mean log-prob, {"first": ..., "second": ...}, and the same less each model's check penalties
    (`pair_penalty`) as "first_scored" and "second_scored"; None where they agree or one is empty."""
    from tinyllm.formats.prompt import serving_platform
    from tinyllm.infer.second import pair_penalty, summed_logprobs
    from tinyllm.knowledge.checks import check
    from tinyllm.knowledge.text import normalize_instruction

    out: list[dict | None] = []
    for a, b in zip(rows_a, rows_b):
        if a["instruction"] != b["instruction"]:
            raise BenchError("the two models' results are not on the same rows in the same order")
        if not a["prediction"] or not b["prediction"] or a["prediction"] == b["prediction"]:
            out.append(None)
            continue
        text = normalize_instruction(a["instruction"])
        platform = serving_platform(a.get("platform", "linux"))
        try:
            total = summed_logprobs(runtimes, text, platform, (a["prediction"], b["prediction"]))
        except ValueError:  # a request longer than a model's context: keep the first model's answer
            total = [0.0, float("-inf")]
        pen = [pair_penalty(check(pred, text, t), runtimes)
               for pred, t in ((a["prediction"], tools[0]), (b["prediction"], tools[1]))]
        out.append({"first": total[0], "second": total[1],
                    "first_scored": total[0] - pen[0], "second_scored": total[1] - pen[1]})
    return out


def asked(a: dict, below: float | None) -> bool:
    """Whether the second model is asked at all: always without a bound, else when the first model's served
    confidence is below it (an answer without one, a learnt pair's, is kept)."""
    return below is None or (a.get("confidence") is not None and a["confidence"] < below)


def choose(rule: str, a: dict, b: dict, both: dict | None, below: float | None = None) -> bool:
    """Whether `rule` takes the second model's answer for this request."""
    if not asked(a, below):
        return False
    if rule == "second":
        return True
    if rule in ("first", "oracle") or a["prediction"] == b["prediction"] or not b["prediction"]:
        return False
    if not a["prediction"]:
        return True
    if rule == "confidence":
        return (b.get("confidence") or 0.0) > (a.get("confidence") or 0.0)
    if rule == "both scores":
        return both is not None and both["second_scored"] > both["first_scored"]
    return both is not None and both["second"] > both["first"]


def main() -> int:
    from tinyllm.infer.runtime import Runtime
    from tinyllm.train.scoreboard import paired

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", type=Path, required=True, help="a scoreboard --out folder")
    ap.add_argument("--first", type=named_model, required=True, metavar="NAME=MODEL.npz")
    ap.add_argument("--second", type=named_model, required=True, metavar="NAME=MODEL.npz")
    ap.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME")
    ap.add_argument("--below", type=lambda t: [float(x) for x in t.split(",")], default=[], metavar="C1,C2,...",
                    help="also ask the second model only below these confidences of the first (second table)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "two_model_select.json")
    args = ap.parse_args()
    (first, first_path), (second, second_path) = args.first, args.second
    for p in (first_path, second_path):
        if not p.is_file():
            raise BenchError(f"{p}: file not found")
    rows = {s: (read_rows(args.board, first, s), read_rows(args.board, second, s)) for s in args.sets}
    runtimes = (Runtime.load(first_path), Runtime.load(second_path))
    tools = (model_tools(first_path), model_tools(second_path))
    table, gated, results = [], [], {}
    for s, (rows_a, rows_b) in rows.items():
        both = cross_scores(runtimes, rows_a, rows_b, tools)
        res = {"n": len(rows_a), "differ": sum(1 for x in both if x is not None), "rules": {}}
        base = [{"instruction": a["instruction"], "exact_match": a["exact_match"]} for a in rows_a]
        for rule in RULES:
            picked = [{"instruction": a["instruction"],
                       "exact_match": (a["exact_match"] or b["exact_match"]) if rule == "oracle"
                       else (b if choose(rule, a, b, x) else a)["exact_match"]}
                      for a, b, x in zip(rows_a, rows_b, both)]
            exact = sum(1 for r in picked if r["exact_match"])
            res["rules"][rule] = {"exact": exact, "against_first": paired(picked, base)}
        results[s] = res
        cells = [f"{s} ({res['n']:,}; {res['differ']:,} differ)"]
        for rule in RULES:
            r = res["rules"][rule]
            pair = r["against_first"]
            cells.append(f"{r['exact']} ({100 * r['exact'] / max(1, res['n']):.1f}%)" if rule in ("first", "oracle")
                         else f"{r['exact']} ({100 * r['exact'] / max(1, res['n']):.1f}%; "
                              f"{pair['only_first']} / {pair['only_other']}, p = {pair['p']:.2f})")
        table.append(cells)
        res["below"] = {}
        for c in args.below:
            n_asked = sum(1 for a in rows_a if asked(a, c))
            picked = {rule: [b if choose(rule, a, b, x, c) else a for a, b, x in zip(rows_a, rows_b, both)]
                      for rule in ("both log-probs", "both scores")}
            exact = {rule: sum(1 for r in rows if r["exact_match"]) for rule, rows in picked.items()}
            # the ship gate also reads the command name: count it for the rule serving uses
            named = sum(1 for r in picked["both scores"] if r.get("command_name_match"))
            res["below"][str(c)] = {"asked": n_asked, "exact": exact["both log-probs"],
                                    "exact_scored": exact["both scores"], "command_name_scored": named}
            gated.append([s, f"{c:g}", f"{n_asked:,} ({100 * n_asked / max(1, res['n']):.0f}%)"]
                         + [f"{e} ({100 * e / max(1, res['n']):.1f}%)" for e in (*exact.values(), named)])
    headers = ["set", first, second, "oracle", "confidence", "both log-probs", "both scores"]
    print(f"Exact matches; after each rule, requests only it / only {first} gets right, sign test.\n")
    print(markdown_table(headers, table))
    if gated:
        print(f"\nThe second model asked only below a confidence of {first}:\n")
        print(markdown_table(["set", "below", "asked", "exact: both log-probs", "exact: both scores",
                                   "command name: both scores"], gated))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"first": {"name": first, "model": first_path.name},
                                    "second": {"name": second, "model": second_path.name},
                                    "sets": results}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
