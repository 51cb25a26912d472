"""Decode each request's candidates once (greedy, the named-program step, beam n-best), save them, and fit
the ranking settings (check penalties, beam width, confidence) on them offline. No torch.

`nl2cmd-train rank-tune` runs `decode_candidates` on the dev split and `fit` on the result, and writes the
settings into the model file; `ship` does the same for the model it installs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tinyllm.formats.prompt import serving_platform
from tinyllm.infer.runtime import Generated
from tinyllm.knowledge.text import normalize_instruction

CALIBRATION_SET = Path(__file__).parent / "data" / "calibration.jsonl"
"""Everyday requests with accept lists, written for the confidence fit: none is a training request, none
is within word-overlap F1 0.7 of an evaluation request; like users' requests, many are close to own pairs."""
BEAMS = (4, 8)
"""Beam widths decoded per request (each keeps its whole n-best), so the tuning can pick among them."""
BEAM_BELOW = (-0.5, -0.3, -0.2, -0.1)
"""The mean log-probs tried as `RankSettings.beam_below` (the beam also runs below them)."""
MAX_BEAM_SHARE = 0.5
"""A `beam_below` is kept only if the beam then runs for at most this share of the calibration requests
(dev's without them): the median request keeps greedy's latency, inside the warm-latency budget."""


def _cand(g: Generated) -> dict:
    lp = g.mean_logprob if g.mean_logprob is not None else g.score
    return {"command": g.command, "logprob": round(float(lp), 5), "finished": bool(g.finished)}


def decode_candidates(runtime, rows: Sequence[dict], tools, beams: Iterable[int] = BEAMS, only_failing: bool = True,
                      max_new_tokens: int = 96, batch_size: int = 32, progress: bool = False) -> list[dict]:
    """Per row: the request as served, the greedy answer, the named-program candidates (and the greedy
    answer's mean log-prob they are compared with), the named-program step's answer, and each beam
    width's n-best (see `add_beams`); all with their mean per-token log-prob. Rows whose request does
    not fit the context get no candidates."""
    texts = [normalize_instruction(r["instruction"]) for r in rows]
    asked = [serving_platform(r.get("platform", "linux")) for r in rows]
    prompts: dict[int, list[int]] = {}
    for i in range(len(rows)):
        try:
            prompts[i] = runtime.prompt_ids(texts[i], asked[i])
        except ValueError:
            pass
    greedy: dict[int, Generated] = {}
    order = sorted(prompts, key=lambda i: len(prompts[i]))
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        greedy.update(zip(chunk, runtime.generate([prompts[i] for i in chunk], max_new_tokens)))
    out = []
    t0 = time.time()
    for i, row in enumerate(rows):
        rec = {"instruction": row["instruction"], "request": texts[i], "platform": asked[i],
               "command": row["command"], "accept": list(row.get("accept", []))}
        if i in prompts:
            g = greedy[i]
            rec["greedy"] = _cand(g)
            named, own = ([], g.mean_logprob) if tools is None else \
                runtime.named_candidates(prompts[i], texts[i], g, tools, max_new_tokens)
            rec["named"] = [_cand(n) for n in named]
            rec["own"] = round(float(own), 5)
        out.append(rec)
    if progress:
        print(f"  greedy + named: {len(rows)} rows ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    add_beams(runtime, out, tools, beams, only_failing, max_new_tokens, progress)
    return out


def write_candidates(path: str | Path, recs: Sequence[dict]) -> None:
    """One JSON object per line (memos of the tuning, and the checks, which `add_checks` runs again with the
    current code, left out)."""
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps({k: v for k, v in r.items() if not k.startswith("_") and k != "checks"},
                               ensure_ascii=False) + "\n")


def read_candidates(path: str | Path) -> list[dict]:
    """Inverse of `write_candidates` (checks saved by older versions are dropped: `add_checks` runs the
    current ones)."""
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    for r in recs:
        r.pop("checks", None)
    return recs


def first_answer(rec: dict, tools) -> tuple[str, float]:
    """The named-program step's answer of a decoded row (what greedy + the named step serves)."""
    from tinyllm.infer.rank import named_step

    g = rec["greedy"]
    if tools is None:
        return g["command"], g["logprob"]
    return named_step(g["command"], rec.get("own", g["logprob"]), [(c["command"], c["logprob"]) for c in rec["named"]],
                      rec["request"], tools)


def add_beams(runtime, recs: list[dict], tools, beams: Iterable[int] = BEAMS, only_failing: bool = True,
              max_new_tokens: int = 96, progress: bool = False) -> None:
    """Decode each beam width's n-best for the rows whose first answer fails a check (all rows without
    `only_failing`): the only rows where the ranker looks beyond the first answer unless it always beams.
    Widths a row already has are kept, so saved candidates gain only what a new check asks for."""
    from tinyllm.knowledge.checks import check

    t0 = time.time()
    for i, rec in enumerate(recs):
        missing = [b for b in beams if f"beam{b}" not in rec]
        if "greedy" not in rec or not missing:
            continue
        if only_failing:
            cmd, _ = first_answer(rec, tools)
            if cmd and not check(cmd, rec["request"], tools):  # an empty answer escalates too
                continue
        prompt = runtime.prompt_ids(rec["request"], rec["platform"])
        for b in missing:
            rec[f"beam{b}"] = [_cand(c) for c in runtime.beam(prompt, beam=b, n_best=b, max_new_tokens=max_new_tokens)]
        rec.pop("filled", None)  # new candidates: their filled-in rewrites are scored again,
        rec.pop("retrieved", None)  # and whether the fallback can be reached is asked again
        if progress and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(recs)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)


def needs_fallback(rec: dict, tools) -> bool:
    """Could the ranker reach its fallback on this row: with some decoded beam width, does every candidate
    (first answer, greedy, named, that beam's n-best) fail a structure check?"""
    from tinyllm.knowledge.checks import STRUCTURE_CHECKS, check

    if "greedy" not in rec:
        return False
    base = [first_answer(rec, tools)[0], rec["greedy"]["command"], *(c["command"] for c in rec["named"])]
    widths = [key for key in rec if key.startswith("beam")]
    memo: dict[str, bool] = {}

    def bad(cmd: str) -> bool:
        if cmd not in memo:
            failed = rec.get("checks", {}).get(cmd) or check(cmd, rec["request"], tools)
            memo[cmd] = any(failed.get(c) for c in STRUCTURE_CHECKS)
        return memo[cmd]

    return any(all(bad(c) for c in base + [b["command"] for b in rec[w]] if c) for w in widths)


def add_retrieved(runtime, recs: list[dict], index, tools, k: int | None = None) -> int:
    """rec["retrieved"]: the commands of the k (default `FALLBACK`) nearest training requests, scored by
    the model as `Runtime.ranked` scores them when serving, on each row that could reach the ranker's
    fallback (`needs_fallback`); [] on the others. Rows that have them are kept. Returns how many rows
    were scored."""
    from tinyllm.infer.rank import FALLBACK
    from tinyllm.knowledge.checks import check
    from tinyllm.knowledge.retrieval import nearest_commands

    added = 0
    for rec in recs:
        if "retrieved" in rec:
            continue
        if not needs_fallback(rec, tools):
            rec["retrieved"] = []
            continue
        prompt = runtime.prompt_ids(rec["request"], rec["platform"])
        found = nearest_commands(index, rec["request"], rec["platform"])(k or FALLBACK)
        rec["retrieved"] = [{"command": c, "logprob": round(float(lp), 5)}
                            for c, lp, _ in runtime.fallback_candidates(prompt, found)]
        if "checks" in rec:  # a row checked before: only the new commands
            for c in rec["retrieved"]:
                rec["checks"].setdefault(c["command"], check(c["command"], rec["request"], tools))
        added += 1
    return added


def add_filled(runtime, recs: list[dict], tools) -> int:
    """rec["filled"]: for each decoded candidate that lacks a request value, its filled-in rewrites
    (`fill_values`) scored by the model as `Runtime.ranked` scores them ({command: [{command, logprob}]}),
    with their checks. Rows that have them are kept. Returns how many rows were scored."""
    from tinyllm.knowledge.checks import check
    from tinyllm.knowledge.values import fill_values

    added = 0
    for rec in recs:
        if "filled" in rec or "greedy" not in rec:
            continue
        checks = rec.setdefault("checks", {})
        sources = {}
        for c in _decoded_commands(rec):
            failed = checks.setdefault(c, check(c, rec["request"], tools))
            if failed.get("missing_value"):
                sources[c] = fill_values(rec["request"], c)
        rec["filled"] = {}
        if not any(sources.values()):
            continue
        prompt = runtime.prompt_ids(rec["request"], rec["platform"])
        scored = {c: round(float(lp), 5) for c, lp, _ in runtime.filled_candidates(prompt, rec["request"], list(sources))}
        for src, fs in sources.items():
            rec["filled"][src] = [{"command": f, "logprob": scored[f]} for f in fs if f in scored]
        for f in scored:
            checks.setdefault(f, check(f, rec["request"], tools))
        added += 1
    return added


# -- offline ranking: the same `rank` as serving, over saved candidates ------------------------------

PENALTY_GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0)
TUNED_CHECKS = ("syntax", "unknown_program", "unknown_option", "missing_value", "invented_value", "stutter",
                "named_unused", "wrong_direction")
"""The checks tuned on dev (not `not_installed`: eval cannot see the user's machine)."""
PENALTY_FLOORS = {"named_unused": 0.5}
"""The least penalty the tuning gives a check, whatever dev says. A user who names a program expects it
in the answer; dev's tldr requests often name a program that is not the command's first ("... with
mktexfmt"), so dev alone can settle on a penalty that lets a likelier command without the named program
win ("show bandwidth usage per process with bandwhich" -> `sudo iftop`)."""


def _decoded_commands(rec: dict) -> list[str]:
    """The row's greedy, named-program and beam candidates."""
    cmds = [rec["greedy"]["command"], *(c["command"] for c in rec["named"])]
    for key, val in rec.items():
        if key.startswith("beam"):
            cmds += [c["command"] for c in val]
    return [c for c in dict.fromkeys(cmds) if c]


def _all_commands(rec: dict) -> list[str]:
    cmds = _decoded_commands(rec) + [c["command"] for c in rec.get("retrieved", [])]
    cmds += [c["command"] for val in rec.get("filled", {}).values() for c in val]
    return [c for c in dict.fromkeys(cmds) if c]


def add_checks(recs: list[dict], tools) -> None:
    """Run every check once on every candidate of every row: rec["checks"] = {command: failed}."""
    from tinyllm.knowledge.checks import check

    for rec in recs:
        if "greedy" in rec and "checks" not in rec:
            rec["checks"] = {c: check(c, rec["request"], tools) for c in _all_commands(rec)}


def simulate(rec: dict, tools, settings) -> tuple[list, bool]:
    """`Runtime.ranked` on a saved row: (ranked candidates, whether the beam ran). KeyError when the
    row would need a beam width it was not decoded with."""
    from tinyllm.infer.rank import all_fail, fill_sources, rank

    g = rec["greedy"]
    own = rec.get("own", g["logprob"])
    cands = [(g["command"], own, "greedy")] + [(c["command"], c["logprob"], "named") for c in rec["named"]]
    top_cmd, top_lp = first_answer(rec, tools)
    cands.insert(0, (top_cmd, top_lp, "first"))
    known = rec["checks"]
    ranked = rank(cands, rec["request"], tools, settings, None, known)
    escalate = settings.escalates(next(r for r in ranked if r.command == top_cmd) if top_cmd else None)
    if escalate:
        cands += [(c["command"], c["logprob"], "beam") for c in rec[f"beam{settings.beam}"]]
        ranked = rank(cands, rec["request"], tools, settings, None, known)
    if settings.fill:
        seen = {r.command for r in ranked}
        filled = [(c["command"], c["logprob"], "filled") for src in fill_sources(ranked, settings)
                  for c in rec["filled"].get(src, []) if c["command"] not in seen]
        if filled:
            cands += filled
            ranked = rank(cands, rec["request"], tools, settings, None, known)
    if settings.fallback and all_fail(ranked) and rec.get("retrieved"):
        cands += [(c["command"], c["logprob"], "retrieved") for c in rec["retrieved"][: settings.fallback]]
        ranked = rank(cands, rec["request"], tools, settings, None, known)
    return ranked, escalate


def _right(pred: str, rec: dict) -> tuple[bool, bool]:
    """(exact or accepted, same command name as the reference it is closest to)."""
    from .evaluate import closest_gold
    from .metrics import command_name_match, exact_match

    gold = closest_gold(pred, rec)
    return exact_match(pred, gold), command_name_match(pred, gold)


def score_settings(recs: Sequence[dict], tools, settings, baseline: bool = False) -> dict:
    """Exact, command name, nonsense shares (no parse / unknown program / stutter) and beam rate of the
    ranked answers (`baseline`: of the named-program step's answers), with per-row details in "rows"."""
    from tinyllm.infer.rank import all_fail, confidence, confidence_features
    from tinyllm.knowledge.checks import STRUCTURE_CHECKS

    n = exact = name = escalated = 0
    bad = {**dict.fromkeys(STRUCTURE_CHECKS, 0), "any": 0}
    rows = []
    for rec in recs:
        n += 1
        if "greedy" not in rec:
            rows.append(None)
            continue
        if baseline:
            pred = first_answer(rec, tools)[0]
            ranked, esc = [], False
        else:
            ranked, esc = simulate(rec, tools, settings)
            pred = ranked[0].command if ranked else ""
        failed = rec["checks"].get(pred, {})
        memo = rec.setdefault("_right", {})
        if pred not in memo:
            memo[pred] = _right(pred, rec)
        e, m = memo[pred]
        exact += e
        name += m
        escalated += esc
        for k in STRUCTURE_CHECKS:
            bad[k] += bool(failed.get(k))
        bad["any"] += any(failed.get(k) for k in STRUCTURE_CHECKS)
        feats = confidence_features(ranked, esc, rec["request"], tools) if ranked else None
        rows.append({"pred": pred, "exact": e, "name": m, "features": feats,
                     "confidence": confidence(feats, settings) if feats else None,
                     "all_fail": all_fail(ranked) if ranked else False})
    return {"n": n, "exact": exact / max(n, 1), "command_name": name / max(n, 1), "beam_rate": escalated / max(n, 1),
            "nonsense": {k: v / max(n, 1) for k, v in bad.items()}, "rows": rows}


def _objective(s: dict, floor: dict | None = None) -> float:
    """Exact + half the command-name accuracy - half the nonsense share, minus ten times any shortfall from
    `floor`'s exact or command-name accuracy (the named-program step's: the ranking must not lose either)."""
    obj = s["exact"] + 0.5 * s["command_name"] - 0.5 * s["nonsense"]["any"]
    if floor is not None:
        obj -= 10 * (max(0.0, floor["exact"] - s["exact"]) + max(0.0, floor["command_name"] - s["command_name"]))
    return obj


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether objective pair `a` (dev, tie-break) beats `b`: dev first; the tie-break set only where dev ties."""
    return a[0] > b[0] + 1e-9 or (abs(a[0] - b[0]) <= 1e-9 and a[1] > b[1] + 1e-9)


def _objectives(recs: Sequence[dict], tiebreak: Sequence[dict], tools, settings, floors: tuple) -> tuple[float, float]:
    """`_objective` on the dev rows and on the tie-break rows (0.0 when there are none)."""
    dev = _objective(score_settings(recs, tools, settings), floors[0])
    return dev, (_objective(score_settings(tiebreak, tools, settings), floors[1]) if tiebreak else 0.0)


def _floors(recs: Sequence[dict], tiebreak: Sequence[dict], tools) -> tuple:
    """The named-program step's scores on the dev and tie-break rows (the floors of `_objective`)."""
    from tinyllm.infer.rank import RankSettings

    return (score_settings(recs, tools, RankSettings(), baseline=True),
            score_settings(tiebreak, tools, RankSettings(), baseline=True) if tiebreak else None)


def tune_penalties(recs: Sequence[dict], tools, beam: int, checks: Sequence[str] = TUNED_CHECKS,
                   rounds: int = 3, fill: int = 0, tiebreak: Sequence[dict] = (),
                   floors: tuple | None = None, beam_below: float | None = None) -> tuple[dict[str, float], tuple[float, float]]:
    """Coordinate ascent over `PENALTY_GRID` for each check's penalty, never below the named-program step's
    exact or command-name accuracy; `fill` and `beam_below` as in `RankSettings`. Dev's objective decides; where two
    penalties tie on it (a check that never changes a dev answer, such as `wrong_direction` on tldr-style
    requests) the `tiebreak` rows' objective decides (the calibration set's everyday requests); ties on both
    keep the smaller penalty; no penalty goes below its `PENALTY_FLOORS` entry. Each round also tries
    raising the structure checks' penalties together (`STRUCTURE_CHECKS`): where one nonsense candidate
    fails to parse and the next stutters, raising either penalty alone only swaps one for the other, and
    only the joint step reaches the clean candidate below them. `floors`: `_floors(recs, tiebreak, tools)`,
    when the caller has them. Returns the penalties and their (dev, tie-break) objectives."""
    from tinyllm.infer.rank import RankSettings
    from tinyllm.knowledge.checks import STRUCTURE_CHECKS

    floors = floors or _floors(recs, tiebreak, tools)
    pen = {c: PENALTY_FLOORS.get(c, 0.0) for c in checks}
    if "unknown_program" in pen:
        pen["unknown_program"] = PENALTY_GRID[-1]  # where the named-program step stands: it never keeps one
    best = _objectives(recs, tiebreak, tools, RankSettings(dict(pen), beam, beam_below=beam_below, fill=fill), floors)
    structure = tuple(c for c in checks if c in STRUCTURE_CHECKS)
    groups = [(c,) for c in checks] + ([structure] if len(structure) > 1 else [])
    for _ in range(rounds):
        changed = False
        for group in groups:
            for v in PENALTY_GRID:
                if len(group) == 1 and v < PENALTY_FLOORS.get(group[0], 0.0):
                    continue
                # one check set to v, or the structure checks together raised to at least v
                trial = {**pen, group[0]: v} if len(group) == 1 else {**pen, **{c: max(pen[c], v) for c in group}}
                if trial == pen:
                    continue
                obj = _objectives(recs, tiebreak, tools, RankSettings(trial, beam, beam_below=beam_below, fill=fill), floors)
                if _better(obj, best):
                    best, pen, changed = obj, trial, True
        if not changed:
            break
    return pen, best


def fit_confidence(rows: Sequence[dict | None], l2: float = 1.0, iters: int = 50,
                   names: Sequence[str] | None = None) -> dict[str, float]:
    """Logistic regression (Newton, L2 on all but the first, the bias) of "the answer is right" on its
    features `names` (default: the `CONFIDENCE_FEATURES` every row has; "support" needs an index with
    counts)."""
    import numpy as np

    from tinyllm.infer.rank import CONFIDENCE_FEATURES

    data = [r for r in rows if r and r["features"]]
    names = tuple(names or (k for k in CONFIDENCE_FEATURES if all(k in r["features"] for r in data)))
    X = np.array([[r["features"][k] for k in names] for r in data], dtype=np.float64)
    y = np.array([float(r["exact"]) for r in data])
    w = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + reg * w
        hess = X.T @ (X * (p * (1 - p))[:, None]) + np.diag(reg + 1e-6)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {k: round(float(v), 5) for k, v in zip(names, w)}


def reliability(rows: Sequence[dict | None],
                edges: Sequence[float] = (0.0, 0.03, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0001)) -> list[dict]:
    """Per confidence bin: how many answers, their mean confidence and how many were right."""
    out = []
    data = [r for r in rows if r and r["confidence"] is not None]
    for lo, hi in zip(edges, edges[1:]):
        inside = [r for r in data if lo <= r["confidence"] < hi]
        out.append({"bin": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": len(inside),
                    "mean_confidence": round(sum(r["confidence"] for r in inside) / len(inside), 3) if inside else None,
                    "right": round(sum(r["exact"] for r in inside) / len(inside), 3) if inside else None})
    return out


LOW_CONFIDENCE_RIGHT = 0.01
"""The note's threshold: the highest confidence below which dev answers are right at most this often."""


def pick_threshold(rows: Sequence[dict | None]) -> float:
    """The largest confidence t such that dev answers with confidence < t are right <= LOW_CONFIDENCE_RIGHT."""
    data = sorted((r["confidence"], r["exact"]) for r in rows if r and r["confidence"] is not None)
    best, right = 0.0, 0
    for i, (c, e) in enumerate(data):
        right += e
        if right / (i + 1) <= LOW_CONFIDENCE_RIGHT and i + 1 < len(data):
            best = (c + data[i + 1][0]) / 2
    return round(best, 4)


def fit(recs: Sequence[dict], tools, beams: Sequence[int] = BEAMS,
        calibration: Sequence[dict] = ()) -> tuple[object, dict]:
    """Ranking settings for the model the rows were decoded with: penalties and beam width by coordinate
    ascent on `_objective` over the dev rows `recs` (the `calibration` rows break dev's exact ties only),
    then the confidence model and the note's threshold over the dev rows and the `calibration` rows together
    (everyday requests with accept lists, which dev's tldr/NL2Bash rows lack). Returns (settings, report)."""
    from tinyllm.infer.rank import FALLBACK, FILL, INSTALLED_PENALTY, RankSettings

    add_checks(list(recs) + list(calibration), tools)
    floors = _floors(recs, calibration, tools)  # the named-program step's scores: the same for every setting
    report: dict = {"baseline": _public(floors[0])}
    # the filled-in rewrites, when their candidates were scored (`add_filled`)
    fills = (0, FILL) if all("filled" in r for r in recs if "greedy" in r) else (0,)
    # the beam for unsure first answers too, when every row has every width decoded (`add_beams(only_failing=False)`)
    gates = (None, *BEAM_BELOW) if all(f"beam{b}" in r for r in list(recs) + list(calibration) if "greedy" in r
                                       for b in beams) else (None,)
    share_rows = calibration or recs  # the everyday requests, when there are some, stand for the users'
    best = None
    for f in fills:
        for b in beams:
            for g in gates:
                pen, obj = tune_penalties(recs, tools, b, fill=f, tiebreak=calibration, floors=floors, beam_below=g)
                share = score_settings(share_rows, tools, RankSettings(pen, b, beam_below=g, fill=f))["beam_rate"]
                report[f"beam{b}" + (f"_fill{f}" if f else "") + (f"_below{g:g}" if g is not None else "")] = {
                    "penalties": pen, "objective": round(obj[0], 5), "calibration_objective": round(obj[1], 5),
                    "beam_share": round(share, 4)}
                if share > MAX_BEAM_SHARE and g is not None:  # the median request would pay for the beam
                    continue
                if best is None or _better(obj, best[4]):
                    best = (f, b, g, pen, obj)
    f, b, g, pen, _ = best
    settings = RankSettings(pen, b, beam_below=g, fill=f)
    if all("retrieved" in r for r in recs):  # the fallback, when its candidates were scored (`add_retrieved`)
        objs = {k: _objectives(recs, calibration, tools, RankSettings(pen, b, beam_below=g, fallback=k, fill=f),
                               floors) for k in (0, FALLBACK)}
        report["fallback"] = {str(k): round(v[0], 5) for k, v in objs.items()}
        settings.fallback = FALLBACK if _better(objs[FALLBACK], objs[0]) else 0
    scored, calib = score_settings(recs, tools, settings), score_settings(calibration, tools, settings)
    settings.confidence = fit_confidence(scored["rows"] + calib["rows"])
    scored, calib = score_settings(recs, tools, settings), score_settings(calibration, tools, settings)
    settings.threshold = pick_threshold(scored["rows"] + calib["rows"])
    settings.installed_penalty = INSTALLED_PENALTY
    report["ranked"] = _public(scored)
    report["reliability"] = reliability(scored["rows"] + calib["rows"])
    if calibration:
        report["calibration"] = _public(calib)
        report["reliability_dev"] = reliability(scored["rows"])
        report["reliability_calibration"] = reliability(calib["rows"])
    report["settings"] = settings.to_meta()
    return settings, report


def _public(s: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k != "rows"}
