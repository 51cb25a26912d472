"""Evaluation scoring: an answer equal to any accepted alternative counts as exact; the nonsense share."""

import pytest

from tinyllm.knowledge.tools import ToolLexicon
from tinyllm.train.evaluate import closest_gold, nonsense_share, score_rows
from tinyllm.train.ship import run_path

from .lm_fixtures import PAIRS as FIXTURE_PAIRS


def test_accepted_alternatives_count_as_exact_and_the_command_stays_the_reference_otherwise():
    row = {"instruction": "which process is using port 8080", "command": "sudo lsof -i :8080",
           "accept": ["lsof -i :8080", "sudo ss -ltnp 'sport = :8080'"]}
    assert closest_gold("lsof  -i :8080", row) == "lsof -i :8080"
    assert closest_gold("sudo lsof -i :9090", row) == "sudo lsof -i :8080"
    scored = score_rows([row, row, {"instruction": "x", "command": "ls"}], ["lsof -i :8080", "netstat -tlnp", "ls"])
    assert [r["exact_match"] for r in scored] == [True, False, True]
    assert scored[1]["gold"] == "sudo lsof -i :8080"


def test_run_path_keeps_a_machines_folders_out_of_the_model():
    assert run_path("/home/me/runs/v18/sft/best.npz") == "RUN/sft/best.npz"
    assert run_path("best.npz") == "best.npz"


def test_nonsense_share_counts_structure_failures_only():
    tools = ToolLexicon.build({"instruction": i, "command": c} for i, c in FIXTURE_PAIRS)
    scored = [{"instruction": "list files", "prediction": p}
              for p in ("ls -la", "ls 'unclosed", "ls ls ls", "frobnicate --now", "")]
    assert nonsense_share(scored, tools) == pytest.approx(3 / 5)  # no parse, stutter, unknown program
    assert nonsense_share(scored, None) == pytest.approx(2 / 5)  # the program check needs the lexicon
    assert nonsense_share([], tools) == 0.0


def test_eval_rows_carry_the_served_confidence(tmp_path, monkeypatch):
    """With ranking settings the predictor records each answer's confidence as serving computes it; the
    summary counts answers at >= 0.8 and below the note's threshold, and how often each is right."""
    pytest.importorskip("torch")
    from tinyllm.infer.rank import RankSettings
    from tinyllm.infer.runtime import Generated, Runtime
    from tinyllm.train.evaluate import confidence_summary, evaluate, model_predictor
    from tinyllm.train.export import export_inference

    from .lm_fixtures import make_model, make_tokenizer

    tok = make_tokenizer(tmp_path)
    export_inference(make_model(tok), tok, tmp_path / "m.npz", {}, dtype="float32")
    rt = Runtime.load(tmp_path / "m.npz")
    answers = {"list files": Generated("ls -la", -0.01, True, -0.01), "show text": Generated("ls", -2.0, True, -2.0)}
    by_prompt = {tuple(rt.prompt_ids(text, "linux")): g for text, g in answers.items()}
    monkeypatch.setattr(rt, "generate", lambda prompts, n: [by_prompt[tuple(p)] for p in prompts])
    tools = ToolLexicon.build({"instruction": i, "command": c} for i, c in FIXTURE_PAIRS)
    settings = RankSettings({"syntax": 5.0}, confidence={"bias": 0.0, "logprob": 3.0}, threshold=0.1)
    rows = [{"instruction": "list files", "command": "ls -la"}, {"instruction": "show text", "command": "cat a.txt"}]
    predict = model_predictor(rt, tools=tools, ranking=settings, named=False, batch_size=1)
    summary, scored = evaluate(rows, predict)
    conf = [r["confidence"] for r in scored]
    assert conf[0] == pytest.approx(1 / (1 + 2.718281828 ** 0.03), abs=1e-3) and conf[1] < 0.1
    assert summary["confidence"] == {"n": 2, "high": 0, "high_right": None}  # 0.49 is not high
    out = confidence_summary(scored, settings.threshold)
    assert (out["low"], out["low_right"], out["others_right"]) == (1, 0.0, 1.0)
    scored[0]["confidence"] = 0.9
    assert confidence_summary(scored)["high_right"] == 1.0
