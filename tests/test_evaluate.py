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
