"""Held-out evaluation: exact match, command-name accuracy, template match, NLC2CMD-style score,
failure analysis, and the nearest-neighbour (BM25) baseline beside the model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tinyllm.formats.prompt import Example, serving_platform
from tinyllm.infer.rank import confidence, confidence_features
from tinyllm.knowledge.checks import STRUCTURE_CHECKS, check
from tinyllm.knowledge.retrieval import nearest_command, nearest_commands
from tinyllm.knowledge.text import normalize_instruction

from . import metrics

Predictor = Callable[[list[dict]], list[str]]


def score_rows(rows: Sequence[dict], predictions: Sequence[str]) -> list[dict]:
    """Per-row results: instruction, gold, prediction, and every metric."""
    out = []
    for row, pred in zip(rows, predictions):
        gold = closest_gold(pred, row)
        out.append({
            "instruction": row["instruction"], "gold": gold, "prediction": pred,
            "platform": row.get("platform", "linux"), "source": row.get("source", ""),
            "exact_match": metrics.exact_match(pred, gold),
            "command_name_match": metrics.command_name_match(pred, gold),
            "template_match": metrics.template_match(pred, gold),
            "nlc2cmd": metrics.nlc2cmd_score(pred, gold),
            "category": metrics.failure_category(pred, gold),
        })
    return out


def closest_gold(pred: str, row: dict) -> str:
    """The reference a prediction is scored against: the row's command, or the first of its `accept` list
    (equivalent answers) that the prediction matches exactly, else the one with the best NLC2CMD score."""
    golds = [row["command"], *(a for a in row.get("accept", ()) if isinstance(a, str))]
    for g in golds:
        if metrics.exact_match(pred, g):
            return g
    return max(golds, key=lambda g: metrics.nlc2cmd_score(pred, g))


def model_predictor(runtime, index=None, k: int = 0, beam: int = 1, batch_size: int = 32,
                    max_new_tokens: int = 96, rerank: int = 0, tools=None, ranking=None,
                    named: bool = True, second=None) -> Predictor:
    """Predictions of a tinyllm.infer.runtime.Runtime: greedy (batched), beam search, or `rerank` > 0: the
    beam n-best plus the commands of the `rerank` nearest training requests, ranked by the model.
    With a `tools` lexicon (tinyllm.knowledge.tools.ToolLexicon) each answer then gets the serving named-program
    step (`Runtime.prefer_named_tool`). With `ranking` (tinyllm.infer.rank.RankSettings) the batched greedy
    answers go through the serving ranker instead (`Runtime.ranked`: named-program candidates, the beam
    n-best when the answer fails a check, penalties for failed checks; `named` False: no named-program
    candidates). With `second` (tinyllm.infer.second.SecondOpinion) an unsure ranked answer goes to the
    second model of the pair, as served."""

    def predict(rows: list[dict]) -> list[str]:
        predict.confidences = [None] * len(rows)  # the served confidence of each ranked answer
        prompts: dict[int, list[int]] = {}  # a request longer than the context stays out: an empty prediction
        asked = [serving_platform(row.get("platform", "linux")) for row in rows]  # as a user on it asks
        texts = [normalize_instruction(row["instruction"]) for row in rows]
        for i, row in enumerate(rows):
            examples = neighbours(index, row, k, asked[i]) if (index is not None and k) else []
            try:
                prompts[i] = runtime.prompt_ids(texts[i], asked[i], examples)
            except ValueError:
                pass
        answers = {}
        if rerank:
            for i, p in prompts.items():
                hits = index.search(texts[i], k=rerank, platform=asked[i])
                outs = runtime.rerank(p, [h.command for h in hits], beam=max(beam, 2), max_new_tokens=max_new_tokens)
                if outs:
                    answers[i] = outs[0]
        elif beam > 1:
            for i, p in prompts.items():
                outs = runtime.beam(p, beam=beam, n_best=1, max_new_tokens=max_new_tokens)
                if outs:
                    answers[i] = outs[0]
        else:
            order = sorted(prompts, key=lambda i: len(prompts[i]))  # similar lengths => less padding
            for s in range(0, len(order), batch_size):
                chunk = order[s : s + batch_size]
                answers.update(zip(chunk, runtime.generate([prompts[i] for i in chunk], max_new_tokens)))
        if ranking is not None:
            for i, g in answers.items():
                nearest = nearest_commands(index, texts[i], asked[i])
                ranked, escalated = runtime.ranked(prompts[i], texts[i], tools, ranking, first=g,
                                                   max_new_tokens=max_new_tokens, named=named, retrieved=nearest)
                conf = confidence(confidence_features(ranked, escalated, texts[i], tools), ranking) if ranked else None
                if second is not None:
                    ranked, escalated, conf = second.review(runtime, texts[i], asked[i], ranked, escalated, conf,
                                                            retrieved=nearest)
                if ranked:
                    answers[i] = ranked[0]
                    predict.confidences[i] = conf
        elif tools is not None:
            for i, g in answers.items():
                answers[i] = runtime.prefer_named_tool(prompts[i], texts[i], g, tools, max_new_tokens)
        return [answers[i].command if i in answers else "" for i in range(len(rows))]

    return predict


def neighbours(index, row: dict, k: int, platform: str) -> list[Example]:
    """k retrieved examples for a row asked with `platform` (the tag its prompt carries), never its own
    command (the shared retrieval rule of SFT/eval/serving)."""
    hits = index.search(normalize_instruction(row["instruction"]), k=k, platform=platform,
                        exclude_command=row.get("command"))
    return [Example(h.instruction, h.command) for h in hits]


def nearest_neighbour_predictor(index) -> Predictor:
    """The baseline: the command of the most similar training description."""

    def predict(rows: list[dict]) -> list[str]:
        return [nearest_command(index, normalize_instruction(r["instruction"]),
                                serving_platform(r.get("platform", "linux"))) or "" for r in rows]

    return predict


def evaluate(rows: Sequence[dict], predictor: Predictor) -> tuple[dict[str, Any], list[dict]]:
    """Run a predictor over rows; returns (summary, per-row results)."""
    t0 = time.perf_counter()
    preds = predictor(list(rows))
    elapsed = time.perf_counter() - t0
    scored = score_rows(rows, preds)
    summary = metrics.summarize([(r["prediction"], r["gold"]) for r in scored])
    summary["n"] = len(scored)
    summary["seconds"] = round(elapsed, 2)
    confidences = getattr(predictor, "confidences", None)
    if confidences and any(c is not None for c in confidences):
        for row, c in zip(scored, confidences):
            row["confidence"] = None if c is None else round(c, 4)
        summary["confidence"] = confidence_summary(scored)
    return summary, scored


HIGH_CONFIDENCE = 0.8


def confidence_summary(scored: Sequence[dict], threshold: float | None = None) -> dict[str, Any]:
    """How the served confidence of per-row results sorts right from wrong: how many answers reach
    `HIGH_CONFIDENCE` and how often they are right (exact or accepted), and with the model's low-confidence
    `threshold`, the same below it and above it."""
    rows = [r for r in scored if r.get("confidence") is not None]

    def rate(sel: list[dict]) -> float | None:
        return round(sum(r["exact_match"] for r in sel) / len(sel), 4) if sel else None

    high = [r for r in rows if r["confidence"] >= HIGH_CONFIDENCE]
    out: dict[str, Any] = {"n": len(rows), "high": len(high), "high_right": rate(high)}
    if threshold is not None:
        low = [r for r in rows if r["confidence"] < threshold]
        rest = [r for r in rows if r["confidence"] >= threshold]
        out.update(threshold=threshold, low=len(low), low_right=rate(low), others_right=rate(rest))
    return out


def nonsense_share(scored: Sequence[dict], tools=None) -> float:
    """Share of per-row results (`score_rows`) whose prediction is nonsense rather than a command to edit: it
    fails a structure check (`tinyllm.knowledge.checks.STRUCTURE_CHECKS`: bash could not parse it, it
    stutters, or, given the `tools` lexicon of the retrieval index, a stage starts with a program the
    training commands never start with and the request does not name). An empty prediction is no answer,
    not nonsense."""
    bad = 0
    for row in scored:
        failed = check(row["prediction"], normalize_instruction(row["instruction"]), tools)
        bad += any(failed.get(c) for c in STRUCTURE_CHECKS)
    return bad / max(len(scored), 1)


def format_summary(name: str, s: dict[str, Any]) -> str:
    """One table row: name | n | exact | command name | template | nlc2cmd."""
    return (f"| {name} | {s['n']} | {100 * s['exact_match']:.1f}% | {100 * s['command_name_acc']:.1f}% | "
            f"{100 * s['template_acc']:.1f}% | {s['nlc2cmd']:.3f} |")


TABLE_HEADER = "| system | n | exact match | command name | template | NLC2CMD |\n|---|---|---|---|---|---|"


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> None:
    """Write per-row results."""
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
