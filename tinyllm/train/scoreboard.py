"""Models side by side on every evaluation set, as served, with the BM25 row and a paired test.

`nl2cmd-train scoreboard` scores each (model, set) once with `cli.run_eval` and keeps the per-row
results in OUT/MODEL/SET.rows.jsonl and the summary in OUT/MODEL/SET.json, with the SHA-256 of the
model file, its index and the rows: a later call with the same three reuses them, so models can be
added one at a time and a table rebuilt in seconds. The table has, per set, each model's exact match
and command-name accuracy, the nonsense share, the nearest-neighbour (BM25) row of one model's index,
and for each later model a paired comparison with the first: the requests only one of the two gets exactly
right and the two-sided sign test on them. A set of 30 requests is decided by a handful of
requests that move either way; the paired count shows how many did. Below the table, the ship gate
(`ship_gate`) judges each later model against the first.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .curve import read_records
from .evaluate import write_jsonl
from .shards import file_sha256

EVERYDAY_PREFIX = "everyday"
"""Sets whose name starts with this are summed into the "everyday, of N" row."""
GATE_DEV_SET = "dev"
"""The set whose exact match and command-name accuracy the ship gate reads beside the everyday sets."""

Scorer = Callable[[Path, Path | None, list[dict]], tuple[dict, list[dict]]]
"""Scores a model file with an index on rows: (the `run_eval` result, the per-row results)."""


def sets_sha256(rows: Sequence[dict]) -> str:
    """SHA-256 of a set's rows as scored (a changed set is scored again)."""
    return hashlib.sha256(json.dumps(list(rows), sort_keys=True).encode()).hexdigest()


def sign_test(only_a: int, only_b: int) -> float:
    """Two-sided exact sign test: the probability, if either model were as likely as the other to win a
    discordant request, of a split at least this uneven. 1.0 when nothing differs."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(rows_a: Sequence[dict], rows_b: Sequence[dict]) -> dict:
    """Requests exactly right for only one of two models on the same rows, and the sign test on them."""
    if len(rows_a) != len(rows_b) or any(a["instruction"] != b["instruction"] for a, b in zip(rows_a, rows_b)):
        raise ValueError("paired results must be on the same rows in the same order")
    only_a = sum(1 for a, b in zip(rows_a, rows_b) if a["exact_match"] and not b["exact_match"])
    only_b = sum(1 for a, b in zip(rows_a, rows_b) if b["exact_match"] and not a["exact_match"])
    return {"only_first": only_a, "only_other": only_b, "p": round(sign_test(only_a, only_b), 4)}


def score_model_sets(out: Path, name: str, model: Path, index: Path | None, sets: Mapping[str, list[dict]],
                     scorer: Scorer, on_scored: Callable[[str, str, dict], None] | None = None) -> dict[str, dict]:
    """Each set's stored or new score of one model: {set: {"result", "rows"}}. A score is reused when it was
    made from the same model file, index file and rows; otherwise the set is scored and written."""
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    key = {"model_sha256": file_sha256(model), "index_sha256": file_sha256(index) if index else None}
    scores = {}
    for set_name, rows in sets.items():
        summary_path, rows_path = folder / f"{set_name}.json", folder / f"{set_name}.rows.jsonl"
        want = {**key, "rows_sha256": sets_sha256(rows)}
        stored = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        if stored and {k: stored.get(k) for k in want} == want and rows_path.is_file():
            scores[set_name] = {"result": stored["result"], "rows": read_records(rows_path)}
            continue
        result, per_row = scorer(model, index, rows)
        write_jsonl(rows_path, per_row)
        summary_path.write_text(json.dumps({**want, "model": str(model), "result": result}, indent=1))
        scores[set_name] = {"result": result, "rows": per_row}
        if on_scored:
            on_scored(name, set_name, result)
    return scores


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def build_table(scores: Mapping[str, Mapping[str, dict]], bm25: str | None = None) -> tuple[str, dict]:
    """The markdown table and its JSON for {model: {set: score}} (every model on the same sets, the
    first model the baseline of the paired columns); the BM25 row is the nearest neighbour in the index
    of model `bm25` (default: the first)."""
    models = list(scores)
    first = models[0]
    bm25 = bm25 or first
    if bm25 not in scores:
        raise ValueError(f"no model named {bm25!r} for the BM25 row")
    set_names = list(scores[first])
    header = ["set"] + [f"{m} exact / command / nonsense" for m in models] + [f"BM25 ({bm25}'s index) exact / command"]
    header += [f"{m} vs {first}: only {m} / only {first}, p" for m in models[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    data: dict = {"models": models, "bm25_index_of": bm25, "sets": {}}
    totals = {m: [0, 0] for m in models}
    total_pairs = {m: [0, 0] for m in models[1:]}
    for s in set_names:
        n = scores[first][s]["result"]["model"]["n"]
        cells = [f"{s} ({n:,})"]
        entry: dict = {"n": n, "models": {}, "paired": {}}
        for m in models:
            mod = scores[m][s]["result"]["model"]
            entry["models"][m] = {k: mod.get(k) for k in ("exact_match", "command_name_acc", "nonsense")}
            cells.append(f"{_pct(mod['exact_match'])} / {_pct(mod['command_name_acc'])} / {_pct(mod.get('nonsense'))}")
            if s.startswith(EVERYDAY_PREFIX):
                totals[m][0] += sum(1 for r in scores[m][s]["rows"] if r["exact_match"])
                totals[m][1] += n
        base = scores[bm25][s]["result"].get("nearest_neighbour")
        entry["nearest_neighbour"] = base and {k: base[k] for k in ("exact_match", "command_name_acc")}
        cells.append(f"{_pct(base['exact_match'])} / {_pct(base['command_name_acc'])}" if base else "-")
        for m in models[1:]:
            pair = paired(scores[first][s]["rows"], scores[m][s]["rows"])
            entry["paired"][m] = pair
            cells.append(f"{pair['only_other']} / {pair['only_first']}, p = {pair['p']:.2f}")
            if s.startswith(EVERYDAY_PREFIX):
                total_pairs[m][0] += pair["only_first"]
                total_pairs[m][1] += pair["only_other"]
        data["sets"][s] = entry
        lines.append("| " + " | ".join(cells) + " |")
    if totals[first][1]:
        cells = [f"everyday, exact of {totals[first][1]:,}"] + [f"{totals[m][0]}" for m in models] + [""]
        data["everyday_total"] = {"n": totals[first][1], "exact": {m: totals[m][0] for m in models}, "paired": {}}
        for m in models[1:]:
            a, b = total_pairs[m]
            p = round(sign_test(a, b), 4)
            data["everyday_total"]["paired"][m] = {"only_first": a, "only_other": b, "p": p}
            cells.append(f"{b} / {a}, p = {p:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), data


def _count(rows: Sequence[dict], key: str) -> int:
    return sum(1 for r in rows if r.get(key))


def ship_gate(scores: Mapping[str, Mapping[str, dict]]) -> tuple[str, dict]:
    """The ship gate for each later model against the first, from the per-row results: no fewer right
    answers on dev (exact and command name) nor on any everyday set, and more on dev exact or on the
    everyday total. Counts, not rates, so that equal means equal. Empty when there is no dev set, no
    everyday set or a single model."""
    models = list(scores)
    first = models[0]
    set_names = list(scores[first])
    everyday = [s for s in set_names if s.startswith(EVERYDAY_PREFIX)]
    if len(models) < 2 or GATE_DEV_SET not in set_names or not everyday:
        return "", {}
    checks = [(f"{GATE_DEV_SET} exact", GATE_DEV_SET, "exact_match"),
              (f"{GATE_DEV_SET} command name", GATE_DEV_SET, "command_name_match")]
    checks += [(s, s, "exact_match") for s in everyday]
    lines, data = [], {}
    for m in models[1:]:
        rows = []
        for label, set_name, key in checks:
            base, new = _count(scores[first][set_name]["rows"], key), _count(scores[m][set_name]["rows"], key)
            rows.append({"check": label, "baseline": base, "candidate": new, "ok": new >= base})
        base_total = sum(_count(scores[first][s]["rows"], "exact_match") for s in everyday)
        new_total = sum(_count(scores[m][s]["rows"], "exact_match") for s in everyday)
        gains = rows[0]["candidate"] > rows[0]["baseline"] or new_total > base_total
        rows.append({"check": "more on dev exact or the everyday total", "baseline": base_total,
                     "candidate": new_total, "ok": gains})
        passed = all(r["ok"] for r in rows)
        falls = [f"{r['check']} {r['candidate']} < {r['baseline']}" for r in rows[:-1] if not r["ok"]]
        if not gains:
            falls.append(f"no gain on dev exact nor on the everyday total ({new_total} against {base_total})")
        verdict = "passes" if passed else "fails: " + "; ".join(falls)
        lines.append(f"- {m} against {first}: {verdict}")
        data[m] = {"passes": passed, "checks": rows}
    head = (f"Ship gate (right answers, not below {first} on {GATE_DEV_SET} exact, {GATE_DEV_SET} command name "
            f"and each everyday set; above it on {GATE_DEV_SET} exact or the everyday total):")
    return "\n".join([head, "", *lines]), data
