"""`nl2cmd-train scoreboard`: the sign test, paired counts, the table with its BM25 row and everyday total,
scores reused only while model, index and rows are unchanged, and one-line errors."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tinyllm.train.scoreboard import build_table, paired, ship_gate, sign_test

from .lm_fixtures import PAIRS, write_pairs
from .test_curve import models, one_error_line, train  # noqa: F401  (models: the module's fixture)


def test_sign_test_matches_the_binomial_tail():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(0, 5) == sign_test(5, 0)
    # 19 against 17 (g8 against v29 on everyday6): far from significant
    assert sign_test(19, 17) == pytest.approx(2 * sum(math.comb(36, i) for i in range(18)) / 2 ** 36)
    assert 0.8 < sign_test(19, 17) < 0.9
    assert sign_test(20, 2) < 0.001


def _rows(flags: str) -> list[dict]:
    return [{"instruction": f"r{i}", "exact_match": f == "1"} for i, f in enumerate(flags)]


def test_paired_counts_only_the_discordant_requests():
    pair = paired(_rows("110010"), _rows("011010"))
    assert (pair["only_first"], pair["only_other"]) == (1, 1) and pair["p"] == 1.0
    with pytest.raises(ValueError, match="same rows"):
        paired(_rows("11"), _rows("110"))
    with pytest.raises(ValueError, match="same rows"):
        paired(_rows("11"), [{"instruction": "other", "exact_match": True}, *_rows("1")[:1]])


def _score(flags: str, bm25: float | None = 0.25) -> dict:
    rows = _rows(flags)
    exact = sum(r["exact_match"] for r in rows) / len(rows)
    result = {"model": {"n": len(rows), "exact_match": exact, "command_name_acc": 1.0, "nonsense": 0.0}}
    if bm25 is not None:
        result["nearest_neighbour"] = {"exact_match": bm25, "command_name_acc": 0.5}
    return {"result": result, "rows": rows}


def test_table_has_the_bm25_row_the_pairs_and_the_everyday_total():
    scores = {"old": {"dev": _score("1000"), "everyday": _score("1100"), "everyday2": _score("10")},
              "new": {"dev": _score("0100"), "everyday": _score("1110"), "everyday2": _score("11")}}
    table, data = build_table(scores)
    lines = table.splitlines()
    assert lines[0].startswith("| set | old exact") and "BM25 (old's index) exact / command" in lines[0]
    assert "new vs old: only new / only old, p" in lines[0]
    assert lines[2].startswith("| dev (4) | 25.0% / 100.0% / 0.0% | 25.0% / 100.0% / 0.0% | 25.0% / 50.0% | 1 / 1")
    # dev is not an everyday set: 2 + 1 of 6 for old, 3 + 2 for new; new alone right on 2, old on none
    assert lines[-1].startswith("| everyday, exact of 6 | 3 | 5 |  | 2 / 0, p = 0.50")
    assert data["everyday_total"] == {"n": 6, "exact": {"old": 3, "new": 5},
                                      "paired": {"new": {"only_first": 0, "only_other": 2, "p": 0.5}}}
    assert data["sets"]["dev"]["nearest_neighbour"] == {"exact_match": 0.25, "command_name_acc": 0.5}
    assert data["bm25_index_of"] == "old"


def test_the_bm25_row_can_come_from_another_models_index():
    scores = {"old": {"dev": _score("10", bm25=0.0)}, "new": {"dev": _score("11", bm25=0.5)}}
    table, data = build_table(scores, bm25="new")
    assert "BM25 (new's index)" in table.splitlines()[0]
    assert data["sets"]["dev"]["nearest_neighbour"]["exact_match"] == 0.5
    assert "| 50.0% / 50.0% |" in table.splitlines()[2]
    with pytest.raises(ValueError, match="no model named"):
        build_table(scores, bm25="other")


def _gate_rows(exact: str, command: str) -> dict:
    return {"rows": [{"instruction": f"r{i}", "exact_match": e == "1", "command_name_match": c == "1"}
                     for i, (e, c) in enumerate(zip(exact, command))]}


def test_ship_gate_asks_for_no_fall_anywhere_and_a_gain():
    old = {"dev": _gate_rows("1000", "1100"), "everyday": _gate_rows("1100", "1111"), "test": _gate_rows("00", "00")}
    level = {"dev": _gate_rows("0100", "0110"), "everyday": _gate_rows("0011", "1111"), "test": _gate_rows("00", "00")}
    better = {**level, "everyday": _gate_rows("1110", "1111")}
    worse_set = {**better, "dev": _gate_rows("1100", "1111"), "everyday": _gate_rows("1000", "1111")}
    worse_command = {**better, "dev": _gate_rows("1100", "1000")}
    text, data = ship_gate({"old": old, "level": level, "better": better, "worse_set": worse_set,
                            "worse_command": worse_command, "worse_test": {**better, "test": _gate_rows("11", "11")}})
    assert not data["level"]["passes"]   # equal everywhere is no reason to ship
    assert "- level against old: fails: no gain on dev exact nor on the everyday total (2 against 2)" in text
    assert data["better"]["passes"] and "- better against old: passes" in text
    # more on dev, one fewer on an everyday set: the gain elsewhere does not buy the fall
    assert not data["worse_set"]["passes"] and "everyday 1 < 2" in text
    assert not data["worse_command"]["passes"] and "dev command name 1 < 2" in text
    assert data["worse_test"]["passes"]   # the test split is reported, never a gate
    checks = {c["check"]: c for c in data["better"]["checks"]}
    assert checks["everyday"] == {"check": "everyday", "baseline": 2, "candidate": 3, "ok": True}


def test_ship_gate_needs_dev_an_everyday_set_and_two_models():
    old = {"dev": _gate_rows("1", "1"), "everyday": _gate_rows("1", "1")}
    assert ship_gate({"old": old}) == ("", {})
    assert ship_gate({"old": {"dev": old["dev"]}, "new": {"dev": old["dev"]}}) == ("", {})
    assert ship_gate({"old": {"everyday": old["everyday"]}, "new": {"everyday": old["everyday"]}}) == ("", {})


@pytest.mark.slow
def test_scoreboard_scores_once_and_compares(tmp_path, models):  # noqa: F811
    sets = {"a": write_pairs(tmp_path / "a.jsonl", repeat=1), "everyday": write_pairs(tmp_path / "e.jsonl", PAIRS[:3], 1)}
    untrained, learnt = tmp_path / "untrained.npz", tmp_path / "learnt.npz"
    shutil.copyfile(models[0], untrained)
    shutil.copyfile(models[2], learnt)
    out = tmp_path / "board"
    args = ["scoreboard", "--out", out, "--engine", "numpy", "--model", f"old={untrained}", "--model", f"new={learnt}",
            "--set", f"dev={sets['a']}", "--set", f"everyday={sets['everyday']}"]
    res = train(*args)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.count(" on ") == 4  # every (model, set) scored once
    data = json.loads((out / "scoreboard.json").read_text())
    n_a = len(PAIRS)
    assert data["sets"]["dev"]["models"]["old"]["exact_match"] == 0.0  # untrained: empty answers
    assert data["sets"]["dev"]["models"]["new"]["exact_match"] == 1.0  # every fixture pair learnt
    assert data["sets"]["dev"]["paired"]["new"] == {"only_first": 0, "only_other": n_a, "p": round(sign_test(0, n_a), 4)}
    assert data["everyday_total"]["exact"] == {"old": 0, "new": 3}
    assert data["sets"]["dev"]["nearest_neighbour"] is None  # no index beside the model: no BM25 row
    assert data["gate"]["new"]["passes"] and "- new against old: passes" in res.stdout
    assert (out / "scoreboard.md").read_text().strip() == res.stdout.strip()
    rows = [json.loads(line) for line in (out / "new" / "dev.rows.jsonl").read_text().splitlines()]
    assert [r["instruction"] for r in rows] == [i for i, _ in PAIRS] and all(r["exact_match"] for r in rows)

    again = train(*args)
    assert again.exit_code == 0 and " on " not in again.stderr  # nothing scored again
    assert again.stdout == res.stdout

    shutil.copyfile(models[1], learnt)  # the same name, another model file: scored again
    third = train(*args)
    assert third.exit_code == 0 and third.stderr.count(" on ") == 2 and third.stderr.startswith("new on dev")


@pytest.mark.parametrize("case", ["missing model", "repeated model", "index without model", "missing set",
                                  "slash in name", "bm25 of no model"])
def test_scoreboard_bad_input_is_one_line(tmp_path, case):
    model = tmp_path / "m.npz"
    model.write_bytes(b"")
    good = write_pairs(tmp_path / "a.jsonl", repeat=1)
    args = {"missing model": ["--model", f"m={tmp_path / 'nope.npz'}", "--set", str(good)],
            "repeated model": ["--model", f"m={model}", "--model", f"m={model}", "--set", str(good)],
            "index without model": ["--model", f"m={model}", "--index", f"x={model}", "--set", str(good)],
            "missing set": ["--model", f"m={model}", "--set", f"a={tmp_path / 'nope.jsonl'}"],
            "slash in name": ["--model", f"a/b={model}", "--set", str(good)],
            "bm25 of no model": ["--model", f"m={model}", "--bm25", "x", "--set", str(good)]}[case]
    line = one_error_line(train("scoreboard", "--out", tmp_path / "board", *args))
    expected = {"missing model": "not found", "repeated model": "a repeated name",
                "index without model": "no --model of that name", "missing set": "not found",
                "slash in name": "cannot hold '/'", "bm25 of no model": "--bm25 x: no --model"}[case]
    assert expected in line
    assert not (tmp_path / "board" / "scoreboard.md").exists()
