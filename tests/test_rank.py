"""The candidate ranker: penalties move a valid candidate above a likelier broken one, the settings live
in the model file, confidence reaches --json and the low-confidence note reaches stderr."""

import json

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
    high = confidence(confidence_features(good, False), settings)
    low = confidence(confidence_features(bad, True), settings)
    assert 0.0 < low < high < 1.0
    assert confidence(confidence_features(good, False), RankSettings()) is None  # no model fitted


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
                            threshold=0.12, installed_penalty=0.2)
    update_meta(path, {"ranking": settings.to_meta()})
    assert read_meta(path)["meta"]["step"] == 7
    assert Runtime.load(path).ranking == settings
    after = load_inference(path).weights
    assert all((before[k] == after[k]).all() for k in before)
    assert settings.gate() == ("syntax", "not_installed", "stutter")
    with pytest.raises(ValueError):
        RankSettings.from_meta({"ranking": {"penalties": {"syntax": "x"}}})


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
