"""The candidate ranker: penalties move a valid candidate above a likelier broken one, the settings live
in the model file, confidence reaches --json and the low-confidence note reaches stderr."""

import json
import math
from pathlib import Path

import pytest

from tinyllm.infer.rank import RankSettings, all_fail, confidence, confidence_features, rank
from tinyllm.knowledge.tools import ToolLexicon

LEXICON = ToolLexicon.build([{"instruction": "list files", "command": "ls -la"},
                             {"instruction": "search text", "command": "grep -r foo ."}])


def test_valid_candidate_beats_a_higher_scored_invalid_one():
    cands = [("ls -la |", -0.1, "greedy"), ("lss -la", -0.15, "named"), ("ls -la", -0.4, "beam")]
    plain = rank(cands, "list files", LEXICON, RankSettings())
    assert plain[0].command == "ls -la |"  # no penalties: the model's order
    tuned = rank(cands, "list files", LEXICON, RankSettings({"syntax": 1.0, "unknown_program": 1.0}))
    assert [r.command for r in tuned] == ["ls -la", "ls -la |", "lss -la"]
    assert tuned[0].failed == {} and tuned[1].failed == {"syntax": 1}
    assert tuned[0].score == pytest.approx(-0.4) and tuned[1].score == pytest.approx(-1.1)


def test_duplicates_keep_the_best_logprob_and_empty_commands_go():
    ranked = rank([("ls -la", -0.5, "greedy"), ("", 0.0, "beam"), ("ls -la", -0.2, "beam")], "list", LEXICON,
                  RankSettings())
    assert [(r.command, r.logprob, r.origin) for r in ranked] == [("ls -la", -0.2, "greedy")]


def test_confidence_and_all_fail():
    settings = RankSettings(confidence={"bias": -1.0, "logprob": 4.0, "margin": 1.0, "structure": -3.0})
    good = rank([("ls -la", -0.05, "greedy"), ("grep -r foo .", -0.9, "beam")], "list files", LEXICON, settings)
    bad = rank([("ls -la |", -0.6, "greedy"), ("lss", -0.9, "beam")], "list files", LEXICON,
               RankSettings({"syntax": 0.5}, confidence=settings.confidence))
    assert not all_fail(good) and all_fail(bad)
    high = confidence(confidence_features(good, False, "list files"), settings)
    low = confidence(confidence_features(bad, True, "list files"), settings)
    assert 0.0 < low < high < 1.0
    assert confidence(confidence_features(good, False, "list files"), RankSettings()) is None  # no model fitted


def test_settings_round_trip_through_the_model_file(tmp_path):
    pytest.importorskip("torch")
    from tinyllm.formats.checkpoint import load_inference, read_meta, update_meta
    from tinyllm.infer.runtime import Runtime
    from tinyllm.train.export import export_inference

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    path = tmp_path / "m.npz"
    export_inference(make_model(tok), tok, path, {"step": 7}, dtype="float16")
    before = load_inference(path).weights
    assert Runtime.load(path).ranking is None
    settings = RankSettings({"syntax": 2.0, "stutter": 0.5}, beam=6, confidence={"bias": 0.3, "logprob": 2.0},
                            threshold=0.12, installed_penalty=0.2, fallback=3, fill=2, beam_below=-0.2)
    update_meta(path, {"ranking": settings.to_meta()})
    assert read_meta(path)["meta"]["step"] == 7
    assert Runtime.load(path).ranking == settings
    after = load_inference(path).weights
    assert all((before[k] == after[k]).all() for k in before)
    assert settings.gate() == ("syntax", "not_installed", "stutter")
    with pytest.raises(ValueError):
        RankSettings.from_meta({"ranking": {"penalties": {"syntax": "x"}}})
    older = {k: v for k, v in settings.to_meta().items() if k not in ("fallback", "fill", "beam_below")}  # an older file
    assert RankSettings.from_meta({"ranking": older}).beam_below is None  # the beam after failed checks only
    assert RankSettings.from_meta({"ranking": older}).fallback == 0
    assert RankSettings.from_meta({"ranking": older}).fill == 0  # and before filled-in values


def test_ranked_runtime_adds_beam_only_when_the_answer_fails(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from tinyllm.infer.runtime import Generated, Runtime
    from tinyllm.train.export import export_inference

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    export_inference(make_model(tok), tok, tmp_path / "m.npz", {}, dtype="float32")
    rt = Runtime.load(tmp_path / "m.npz")
    prompt = rt.prompt_ids("list files", "linux")
    beams = []
    monkeypatch.setattr(rt, "beam", lambda *a, **k: beams.append(k) or [Generated("ls -la", -0.9, True, -0.9)])
    settings = RankSettings({"syntax": 1.0})
    ranked, escalated = rt.ranked(prompt, "list files", LEXICON, settings, first=Generated("ls -la", -0.3, True, -0.3))
    assert not escalated and not beams and ranked[0].command == "ls -la"
    ranked, escalated = rt.ranked(prompt, "list files", LEXICON, settings, first=Generated("ls '", -0.1, True, -0.1))
    assert escalated and beams[0]["beam"] == 4
    assert ranked[0].command == "ls -la"  # the parsing beam candidate beats the likelier broken answer
    unsure = RankSettings({"syntax": 1.0}, beam_below=-0.2)  # the beam also runs for an unsure first answer
    _, escalated = rt.ranked(prompt, "list files", LEXICON, unsure, first=Generated("ls -la", -0.1, True, -0.1))
    assert not escalated and len(beams) == 1
    _, escalated = rt.ranked(prompt, "list files", LEXICON, unsure, first=Generated("ls -la", -0.3, True, -0.3))
    assert escalated and len(beams) == 2


def test_ranked_runtime_falls_back_to_retrieved_commands_only_when_every_candidate_is_nonsense(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from tinyllm.infer.runtime import Generated, Runtime
    from tinyllm.train.export import export_inference

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    export_inference(make_model(tok), tok, tmp_path / "m.npz", {}, dtype="float32")
    rt = Runtime.load(tmp_path / "m.npz")
    prompt = rt.prompt_ids("list files", "linux")
    monkeypatch.setattr(rt, "beam", lambda *a, **k: [Generated("ls '", -0.5, True, -0.5), Generated("lss -la", -0.6, True, -0.6)])
    asked = []

    def retrieved(k):
        asked.append(k)
        return ["grep -r foo .", "ls  -la", "ls -la"]  # the nearest training commands (one spelt twice)

    broken = Generated("ls -la |", -0.1, True, -0.1)
    settings = RankSettings({"syntax": 20.0, "unknown_program": 20.0}, beam=2)  # the untrained model finds every
    ranked, _ = rt.ranked(prompt, "list files", LEXICON, settings, first=broken, retrieved=retrieved)  # command unlikely
    assert all_fail(ranked) and not asked  # fallback 0: the least bad candidate, nothing retrieved
    settings.fallback = 2
    ranked, _ = rt.ranked(prompt, "list files", LEXICON, settings, first=broken, retrieved=retrieved)
    assert asked == [2] and not all_fail(ranked)
    assert ranked[0].origin == "retrieved" and ranked[0].command in {"grep -r foo .", "ls -la"}
    retrieved_lp = dict(zip(["grep -r foo .", "ls -la"], rt.score(prompt, ["grep -r foo .", "ls -la"])))
    assert ranked[0].logprob == pytest.approx(retrieved_lp[ranked[0].command])  # scored by the model
    assert ranked[0].logprob == pytest.approx(max(retrieved_lp.values()))
    assert [r.command for r in ranked].count("ls -la") <= 1  # "ls  -la" normalised and merged
    asked.clear()
    ranked, _ = rt.ranked(prompt, "list files", LEXICON, settings, first=Generated("ls -la", -0.3, True, -0.3),
                          retrieved=retrieved)
    assert not asked and ranked[0].command == "ls -la"  # a valid answer never asks for the fallback


def test_filled_values_are_ranked_as_served_and_as_simulated(tmp_path, monkeypatch):
    """A top candidate that lacks the request's values gets rewrites with them in its placeholders, scored by
    the model; the offline ranker (rank_tune.add_filled + simulate) sees exactly what serving ranks."""
    pytest.importorskip("torch")
    from tinyllm.infer.runtime import Generated, Runtime
    from tinyllm.train.export import export_inference
    from tinyllm.train.rank_tune import add_checks, add_filled, simulate

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    export_inference(make_model(tok), tok, tmp_path / "m.npz", {}, dtype="float32")
    rt = Runtime.load(tmp_path / "m.npz")
    request = "show the last 50 lines of app.log"
    prompt = rt.prompt_ids(request, "linux")
    lexicon = ToolLexicon.build([{"instruction": "show the end of a file", "command": "tail -n 5 a.txt"}])
    beam = [Generated("tail -f {{path/to/file}}", -0.7, True, -0.7)]
    monkeypatch.setattr(rt, "beam", lambda *a, **k: list(beam))
    first = Generated("tail -n {{10}} {{path/to/file}}", -0.2, True, -0.2)
    settings = RankSettings({"missing_value": 50.0}, beam=2)  # the untrained model finds every command unlikely
    plain, _ = rt.ranked(prompt, request, lexicon, settings, first=first, named=False)
    assert all(r.origin != "filled" for r in plain)
    settings.fill = 2
    ranked, escalated = rt.ranked(prompt, request, lexicon, settings, first=first, named=False)
    filled = {r.command: r for r in ranked if r.origin == "filled"}
    assert escalated and "tail -n 50 app.log" in filled and "tail -f app.log" in filled  # both top ones
    assert ranked[0].command == "tail -n 50 app.log" and not ranked[0].failed
    assert ranked[0].logprob == pytest.approx(rt.score(prompt, ["tail -n 50 app.log"])[0])

    rec = {"request": request, "platform": "linux", "command": "tail -n 50 app.log", "accept": [],
           "greedy": {"command": first.command, "logprob": -0.2}, "named": [], "own": -0.2,
           "beam2": [{"command": b.command, "logprob": b.mean_logprob} for b in beam], "retrieved": []}
    add_checks([rec], lexicon)
    assert add_filled(rt, [rec], lexicon) == 1 and add_filled(rt, [rec], lexicon) == 0  # kept once scored
    offline, _ = simulate(rec, lexicon, settings)
    assert [(r.command, r.origin) for r in offline] == [(r.command, r.origin) for r in ranked]
    assert [r.logprob for r in offline] == pytest.approx([r.logprob for r in ranked], abs=1e-4)
    settings.fill = 0
    assert [r.command for r in simulate(rec, lexicon, settings)[0]] == [r.command for r in plain]


def test_rank_tune_simulates_the_fallback_as_served():
    """The offline ranker (rank_tune.simulate) adds the saved retrieved commands exactly when serving would."""
    from tinyllm.infer.runtime import Generated
    from tinyllm.train.rank_tune import add_beams, add_checks, needs_fallback, simulate

    rec = {"request": "list files", "platform": "linux", "command": "ls -la", "accept": [],
           "greedy": {"command": "ls -la |", "logprob": -0.1}, "named": [], "own": -0.1,
           "beam2": [{"command": "ls '", "logprob": -0.5}], "retrieved": [{"command": "ls -la", "logprob": -0.9}]}
    add_checks([rec], LEXICON)
    assert needs_fallback(rec, LEXICON)
    settings = RankSettings({"syntax": 5.0}, beam=2)
    ranked, escalated = simulate(rec, LEXICON, settings)
    assert escalated and all_fail(ranked)
    settings.fallback = 3
    ranked, _ = simulate(rec, LEXICON, settings)
    assert ranked[0].command == "ls -la" and ranked[0].origin == "retrieved"
    empty = {"request": "list files", "platform": "linux", "greedy": {"command": "", "logprob": -9.0}, "named": []}

    class Beams:  # an empty first answer escalates, so its row must get the beam n-best decoded
        def prompt_ids(self, request, platform):
            return [1, 2]

        def beam(self, prompt, beam, n_best, max_new_tokens):
            return [Generated("ls -la", -0.5, True, -0.5)]

    add_beams(Beams(), [empty], LEXICON, beams=(2,))
    assert empty["beam2"][0]["command"] == "ls -la"
    add_checks([empty], LEXICON)
    assert simulate(empty, LEXICON, RankSettings({"syntax": 5.0}, beam=2))[0][0].command == "ls -la"
    ok = {**rec, "greedy": {"command": "ls -la", "logprob": -0.1}}
    ok.pop("checks")
    add_checks([ok], LEXICON)
    assert not needs_fallback(ok, LEXICON)


def test_confidence_in_json_and_low_confidence_note(nl2cmd_home):
    from .test_cli import run

    data = json.loads(run("--no-daemon", "--json", "copy a placeholder").stdout)
    assert data["confidence"] == 0.9 and data["notes"] == []
    unsure = run("--no-daemon", "--json", "unsure placeholder")
    data = json.loads(unsure.stdout)
    assert data["confidence"] == 0.05 and data["notes"] == ["low confidence"]
    plain = run("--no-daemon", "unsure placeholder")
    assert plain.exit_code == 0 and plain.stdout == "cp {{path/to/source}} {{path/to/target}}\n"
    assert plain.stderr.splitlines() == ["nl2cmd: low confidence"]


def _decoded(request: str, gold: str, answer: str, logprob: float, accept=()) -> dict:
    """A saved candidate row with an empty beam n-best (the beam finds nothing new)."""
    return {"instruction": request, "request": request, "platform": "linux", "command": gold, "accept": list(accept),
            "greedy": {"command": answer, "logprob": logprob, "finished": True}, "named": [], "own": logprob,
            "retrieved": [], "beam2": []}


def test_confidence_is_fitted_on_dev_and_calibration_rows_together():
    """Calibration rows (everyday requests with accept lists) enter the confidence fit and its threshold
    (in the penalty tuning they only break dev's ties), and get their own reliability table; an accepted
    answer counts as right."""
    from tinyllm.train.rank_tune import fit

    dev = [_decoded(f"list files {i}", "grep -r foo .", "ls -la", -0.2 - 0.01 * i) for i in range(40)]
    dev += [_decoded(f"search text {i}", "grep -r foo .", "grep -r foo .", -0.05) for i in range(4)]
    calib = [_decoded(f"show files {i}", "ls -al", "ls -la", -0.02, accept=["ls -la"]) for i in range(30)]
    calib += [_decoded(f"show text {i}", "grep -r bar .", "ls -la", -0.9) for i in range(10)]
    alone, report_alone = fit(dev, LEXICON, beams=(2,))
    both, report = fit(dev, LEXICON, beams=(2,), calibration=calib)
    assert "reliability_calibration" not in report_alone
    assert report["calibration"]["n"] == 40 and report["calibration"]["exact"] == pytest.approx(0.75)
    assert sum(b["n"] for b in report["reliability_calibration"]) == 40
    assert sum(b["n"] for b in report["reliability"]) == 84
    assert both.penalties == alone.penalties and both.beam == alone.beam  # tuned on dev alone
    feats = confidence_features(rank([("ls -la", -0.02, "greedy")], "show files", LEXICON, both), False, "show files")
    assert confidence(feats, both) > 0.5 > confidence(feats, alone)  # right at this log-prob only in calibration


def test_calibration_set_is_apart_from_training_and_evaluation():
    """The calibration set holds everyday requests with accept lists; none is a training request, and none is
    within word-overlap F1 0.7 of an evaluation request (the confidence fit never sees those)."""
    from tinyllm.knowledge.text import description_key
    from tinyllm.train.pairs import CORE_PAIRS, own_pair_files
    from tinyllm.train.rank_tune import CALIBRATION_SET
    from tinyllm.train.validate import held_out_requests, validate

    rows = [json.loads(x) for x in CALIBRATION_SET.read_text().splitlines() if x.strip()]
    assert len(rows) >= 300 and all(isinstance(r["accept"], list) for r in rows)
    assert sum(len(r["accept"]) > 0 for r in rows) >= len(rows) // 2
    own = {description_key(r) for r in held_out_requests(own_pair_files(CORE_PAIRS))}
    assert not [r["instruction"] for r in rows if description_key(r["instruction"]) in own]
    evaluation = held_out_requests(sorted((Path(__file__).resolve().parent.parent / "bench" / "data").glob("*.jsonl")))
    report = validate(rows, lambda name: True, evaluation, None, check_shell=False)
    assert report.rejected == [], report.rejected[:3]


def test_confidence_features_of_the_winner():
    """Placeholder, sureness and length describe the winning command, not the runner-up."""
    ranked = rank([("tar -czf {{archive.tar.gz}} {{dir}}", -0.01, "greedy"), ("ls", -0.8, "beam")], "pack", LEXICON,
                  RankSettings())
    f = confidence_features(ranked, False, "pack the src folder into an archive")
    assert (f["placeholder"], f["sure"], f["length"]) == (1.0, 1.0, 4 / 12)
    assert f["request_length"] == 7 / 20  # the request's words, not the command's
    f = confidence_features(rank([("ls " + "a " * 20, -0.3, "greedy")], "list", LEXICON, RankSettings()), True,
                            "list " * 30)
    assert (f["placeholder"], f["sure"], f["length"], f["escalated"], f["request_length"]) == (0.0, 0.0, 1.0, 1.0, 1.0)
    old = RankSettings(confidence={"bias": -1.0, "logprob": 4.0})  # fitted before these features: weight 0
    assert confidence(f, old) == pytest.approx(1 / (1 + math.exp(-(-1.0 + 4.0 * -0.3))))


def test_support_feature_needs_a_lexicon_with_counts_and_lowers_a_rare_programs_confidence():
    """With counts in the lexicon the winner's program gets a "support" feature (none without them, so a
    model fitted without counts is unchanged), and a positive weight on it rates an answer with a program
    training saw once below the same answer shape with a common program."""
    rows = [{"instruction": "list files", "command": "ls -la"}] * 200 + [{"instruction": "x", "command": "lsd -la"}]
    lex = ToolLexicon.build(rows)
    ls = rank([("ls -la", -0.1, "greedy")], "list files", lex, RankSettings())
    lsd = rank([("lsd -la", -0.1, "greedy")], "list files", lex, RankSettings())
    assert "support" not in confidence_features(ls, False, "list files")
    assert "support" not in confidence_features(ls, False, "list files", ToolLexicon(lex.known, lex.named))
    f_ls, f_lsd = (confidence_features(r, False, "list files", lex) for r in (ls, lsd))
    assert f_ls["support"] > f_lsd["support"] > 0.0
    settings = RankSettings(confidence={"bias": -1.0, "logprob": 2.0, "support": 3.0})
    assert confidence(f_ls, settings) > confidence(f_lsd, settings)


def test_fit_confidence_reads_the_named_features_only():
    """The logistic fit learns the sign of a feature that predicts "right", over the features it is given
    (a trial feature beside the served ones), and ignores the others."""
    from tinyllm.infer.rank import CONFIDENCE_FEATURES
    from tinyllm.train.rank_tune import fit_confidence

    rows = []
    for i in range(200):
        feats = dict.fromkeys(CONFIDENCE_FEATURES, 0.0) | {"bias": 1.0, "trial": (i % 10) / 10,
                                                         "noise": float(i % 3)}
        rows.append({"features": feats, "exact": (i % 10) >= 5})
    w = fit_confidence(rows, names=("bias", "trial"))
    assert set(w) == {"bias", "trial"} and w["trial"] > 1.0 and w["bias"] < 0
    assert set(fit_confidence(rows)) == set(CONFIDENCE_FEATURES)  # default: the served features
    assert fit_confidence(rows)["logprob"] == 0.0  # a constant feature gets no weight under L2
    for r in rows:  # an index without program counts gives no "support": the default fit leaves it out
        del r["features"]["support"]
    assert set(fit_confidence(rows)) == set(CONFIDENCE_FEATURES) - {"support"}


def test_fit_turns_filling_on_when_it_helps_on_dev():
    from tinyllm.train.rank_tune import fit

    lexicon = ToolLexicon.build([{"instruction": "show the end of a file", "command": "tail -n 5 a.txt"},
                                 {"instruction": "list files", "command": "ls -la"}])
    dev = []
    for i in range(10):
        request, gold = f"show the last {50 + i} lines of app{i}.log", f"tail -n {50 + i} app{i}.log"
        row = _decoded(request, gold, "tail -n {{10}} {{path/to/file}}", -0.2)
        row["filled"] = {"tail -n {{10}} {{path/to/file}}": [{"command": gold, "logprob": -0.6}]}
        dev.append(row)
    dev += [{**_decoded(f"list files {i}", "ls -la", "ls -la", -0.1), "filled": {}} for i in range(10)]
    settings, report = fit(dev, lexicon, beams=(2,))
    assert settings.fill > 0 and settings.penalties["missing_value"] > 0.4
    assert report["ranked"]["exact"] == 1.0 and report["baseline"]["exact"] == 0.5
    older = [{k: v for k, v in r.items() if k not in ("filled", "checks")} for r in dev]  # decoded before filling
    assert fit(older, lexicon, beams=(2,))[0].fill == 0


def test_fit_beams_for_unsure_answers_when_every_row_has_the_beam():
    """Where the beam finds a command the model scores higher than its unsure greedy answer, which passes
    every check, only a `beam_below` gate reaches it; the tuning tries gates when every row was decoded with
    the beam, keeps one only if the beam then runs for at most half of the requests, and not otherwise."""
    from tinyllm.train.rank_tune import MAX_BEAM_SHARE, fit

    lexicon = ToolLexicon.build([{"instruction": "list files", "command": "ls -la"},
                                 {"instruction": "list files by size", "command": "ls -lS"}])

    def rows(unsure: int, sure: int) -> list[dict]:
        out = []
        for i in range(unsure):
            row = _decoded(f"list files by size {'x' * (i + 1)}", "ls -lS", "ls -la", -0.35)
            row["beam2"] = [{"command": "ls -lS", "logprob": -0.1}, {"command": "ls -la", "logprob": -0.35}]
            out.append(row)
        return out + [_decoded(f"list files {'y' * (i + 1)}", "ls -la", "ls -la", -0.05) for i in range(sure)]

    dev = rows(8, 12)
    settings, report = fit(dev, lexicon, beams=(2,))
    assert settings.beam_below is not None and -0.35 < settings.beam_below <= -0.05
    assert report["ranked"]["exact"] == 1.0 and report["baseline"]["exact"] == 0.6
    assert report["ranked"]["beam_rate"] == 0.4 <= MAX_BEAM_SHARE
    crowded = rows(12, 8)  # the gate would send most requests to the beam: refused
    settings, report = fit(crowded, lexicon, beams=(2,))
    assert settings.beam_below is None and report["ranked"]["exact"] == 0.4
    assert any(v["beam_share"] > MAX_BEAM_SHARE for k, v in report.items() if "_below" in k)
    failing_only = [{k: v for k, v in r.items() if k != "beam2"} if r["greedy"]["command"] == r["command"] else r
                    for r in dev]  # decoded the old way: the beam only where the first answer fails a check
    settings, report = fit(failing_only, lexicon, beams=(2,))
    assert settings.beam_below is None and not any("_below" in k for k in report)


def test_calibration_rows_break_dev_ties_in_the_penalty_tuning():
    """A check that never changes a dev answer (dev ties at every penalty) takes its penalty from the
    calibration rows; without them it keeps the smallest, and dev's own result is the same either way."""
    from tinyllm.train.rank_tune import fit

    lexicon = ToolLexicon.build([{"instruction": "list files", "command": "ls -la"},
                                 {"instruction": "pack a folder", "command": "tar -czf a.tar.gz a"},
                                 {"instruction": "unpack an archive", "command": "tar -xzf a.tar.gz"}])
    dev = [_decoded(f"list files {i}", "ls -la", "ls -la", -0.1) for i in range(20)]
    calib = []
    for i in range(10):
        row = _decoded(f"compress the logs folder into logs{i}.tar.gz", f"tar -czf logs{i}.tar.gz logs",
                       f"tar -xzf logs{i}.tar.gz", -0.1)
        row["beam2"] = [{"command": f"tar -czf logs{i}.tar.gz logs", "logprob": -0.4}]
        calib.append(row)
    alone, report_alone = fit(dev, lexicon, beams=(2,))
    both, report = fit(dev, lexicon, beams=(2,), calibration=calib)
    assert alone.penalties["wrong_direction"] == 0.0
    assert report_alone["ranked"] == report["ranked"]  # dev's result does not move
    assert both.penalties["wrong_direction"] > 0.3  # enough to put the packing candidate first
    assert report["calibration"]["exact"] == 1.0 and report["ranked"]["exact"] == 1.0
    assert report["beam2"]["calibration_objective"] > 0


def test_structure_penalties_are_also_raised_together():
    """Where the first answer does not parse and the beam's best stutters, raising either penalty alone only
    swaps one nonsense answer for the other (no gain, so coordinate ascent stops there); the joint step over
    the structure checks reaches the clean, right candidate below both."""
    from tinyllm.train.rank_tune import PENALTY_GRID, TUNED_CHECKS, fit, score_settings

    lexicon = ToolLexicon.build([{"instruction": "list files", "command": "ls -la"}])
    dev = []
    for i in range(10):
        row = _decoded(f"list all files in long format {'z' * (i + 1)}", "ls -la", 'ls -la "', -0.1)
        row["beam2"] = [{"command": "ls -la -la -la", "logprob": -0.15}, {"command": "ls -la", "logprob": -0.6}]
        dev.append(row)
    dev += [_decoded(f"list files {'y' * (i + 1)}", "ls -la", "ls -la", -0.05) for i in range(10)]
    settings, report = fit(dev, lexicon, beams=(2,))
    assert report["baseline"]["exact"] == 0.5 and report["ranked"]["exact"] == 1.0
    assert min(settings.penalties["syntax"], settings.penalties["stutter"]) > 0.4
    start = {**dict.fromkeys(TUNED_CHECKS, 0.0), "unknown_program": PENALTY_GRID[-1]}  # where the ascent starts
    for c in ("syntax", "stutter"):  # no single step gains: the other nonsense answer wins instead
        for v in PENALTY_GRID:
            assert score_settings(dev, lexicon, RankSettings({**start, c: v}, 2))["exact"] == 0.5


def test_a_named_program_keeps_its_floor_penalty():
    """Where dev never shows the named_unused check at work (ties at every penalty), the tuning still gives
    it its floor, so a command that is a little likelier but drops the program the user named loses."""
    from tinyllm.train.rank_tune import PENALTY_FLOORS, fit

    lexicon = ToolLexicon.build([{"instruction": "list files", "command": "ls -la"},
                                 {"instruction": "bandwidth per process with bandwhich", "command": "bandwhich -n"},
                                 {"instruction": "show bandwidth with bandwhich", "command": "bandwhich -n"},
                                 {"instruction": "bandwidth per connection", "command": "iftop -n"}])
    assert "bandwhich" in lexicon.named
    dev = [_decoded(f"list files {'z' * (i + 1)}", "ls -la", "ls -la", -0.1) for i in range(10)]
    settings, _ = fit(dev, lexicon, beams=(2,))
    assert settings.penalties["named_unused"] == PENALTY_FLOORS["named_unused"] > 0
    cands = [("iftop -n", -0.2, "greedy"), ("bandwhich -n", -0.5, "named")]
    request = "show bandwidth usage per process with bandwhich"
    assert rank(cands, request, lexicon, RankSettings({"named_unused": 0.0}))[0].command == "iftop -n"
    assert rank(cands, request, lexicon, settings)[0].command == "bandwhich -n"
