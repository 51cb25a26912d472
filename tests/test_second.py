"""A second model for unsure answers (tinyllm/infer/second.py): when it is asked, how the pair chooses,
what a model file must hold, `nl2cmd-train pair`, serving, eval and ship taking the second model along."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tinyllm.formats.checkpoint import CheckpointError, read_meta, update_meta  # noqa: E402
from tinyllm.infer.rank import Ranked, RankSettings  # noqa: E402
from tinyllm.infer.runtime import Runtime  # noqa: E402
from tinyllm.infer.second import SECOND_KEY, SecondOpinion, SecondSettings  # noqa: E402
from tinyllm.knowledge.retrieval import BM25Index  # noqa: E402
from tinyllm.train.export import export_inference  # noqa: E402

from .lm_fixtures import make_model, make_tokenizer, write_pairs  # noqa: E402
from .test_curve import one_error_line, train  # noqa: E402

RANKING = RankSettings({"syntax": 1.0}, beam=2, confidence={"bias": 0.5, "logprob": 1.0})


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    """first.npz naming second.npz (two differently seeded micro models, both ranked), with indexes."""
    tmp = tmp_path_factory.mktemp("pair")
    tok = make_tokenizer(tmp)
    for name, seed in (("first", 0), ("second", 1), ("plain", 2)):
        meta = {"step": 1} if name == "plain" else {"step": 1, "ranking": RANKING.to_meta()}
        export_inference(make_model(tok, seed=seed), tok, tmp / f"{name}.npz", meta, dtype="float32")
        index = BM25Index.build([{"instruction": "list all files", "command": "ls -la", "platform": "common"}])
        index.with_tools()
        index.save(tmp / f"{name}.idx")
    update_meta(tmp / "first.npz", {SECOND_KEY: SecondSettings("second.npz", 0.5).to_meta()})
    return tmp


def ranked(*commands: str) -> list[Ranked]:
    return [Ranked(c, -0.1 * (i + 1), {}, -0.1 * (i + 1), "greedy") for i, c in enumerate(commands)]


def test_settings_round_trip_and_reject_what_is_not_a_file_beside_the_model():
    s = SecondSettings("second.npz", 0.3)
    assert SecondSettings.from_meta({SECOND_KEY: s.to_meta()}) == s
    assert SecondSettings.from_meta({}) is None and SecondSettings.from_meta({SECOND_KEY: None}) is None
    for bad in ({"file": "second.npz"}, {"file": "../x.npz", "below": 0.3}, {"file": "", "below": 0.3},
                {"file": "a/b.npz", "below": 0.3}, {"file": ".hidden.npz", "below": 0.3}, "second.npz",
                {"file": "x.npz", "below": "low"}):
        with pytest.raises(ValueError, match=SECOND_KEY):
            SecondSettings.from_meta({SECOND_KEY: bad})


def answer(command: str, **failed: int) -> Ranked:
    return Ranked(command, -0.5, dict(failed), -0.5, "greedy")


def test_the_pair_prefers_the_answer_both_models_find_likelier(pair_dir, monkeypatch):
    first = Runtime.load(pair_dir / "first.npz")
    second = SecondOpinion.load(first)
    assert second is not None and second.settings.below == 0.5 and second.tools is not None
    ls, ls_la = answer("ls"), answer("ls -la")
    # the first model prefers its own answer, the second prefers its own by more: the sum decides
    monkeypatch.setattr(first, "score", lambda prompt, cmds: [-1.0, -3.0])
    monkeypatch.setattr(second.runtime, "score", lambda prompt, cmds: [-4.0, -0.5])
    assert second.prefers(first, "list files", "linux", ls, ls_la)   # -5.0 against -3.5
    monkeypatch.setattr(second.runtime, "score", lambda prompt, cmds: [-2.0, -1.0])
    assert not second.prefers(first, "list files", "linux", ls, ls_la)  # -3.0 against -4.0
    # unmocked: the sum of the two models' own mean log-probs
    monkeypatch.undo()
    first, second = Runtime.load(pair_dir / "first.npz"), SecondOpinion.load(Runtime.load(pair_dir / "first.npz"))
    mine, theirs = "ls -la", "grep -r foo ."
    totals = [sum(rt.score(rt.prompt_ids("list files", "linux"), [mine, theirs])[i] for rt in (first, second.runtime))
              for i in (0, 1)]
    assert second.prefers(first, "list files", "linux", answer(mine), answer(theirs)) == (totals[1] > totals[0])


def test_the_pair_takes_off_both_models_penalties_for_failed_checks(pair_dir, monkeypatch):
    first = Runtime.load(pair_dir / "first.npz")
    second = SecondOpinion.load(first)
    monkeypatch.setattr(first, "score", lambda prompt, cmds: [-1.0, -0.6])
    monkeypatch.setattr(second.runtime, "score", lambda prompt, cmds: [-1.0, -0.6])
    assert second.prefers(first, "list files", "linux", answer("ls"), answer("ls -la"))  # -2.0 against -1.2
    # a syntax failure costs 1.0 under each model's ranking: -1.2 - 2.0 loses to -2.0
    assert not second.prefers(first, "list files", "linux", answer("ls"), answer("ls 'a", syntax=1))
    # a check without a penalty changes nothing; both failing the same check cancels out
    assert second.prefers(first, "list files", "linux", answer("ls"), answer("lz -la", unknown_program=1))
    assert second.prefers(first, "list files", "linux", answer("ls '", syntax=1), answer("ls -la '", syntax=1))


def test_review_asks_the_second_model_only_about_unsure_answers(pair_dir, monkeypatch):
    first = Runtime.load(pair_dir / "first.npz")
    second = SecondOpinion.load(first)
    asked = []
    theirs = ranked("du -sh .")
    monkeypatch.setattr(second.runtime, "ranked", lambda *a, **k: asked.append(a[1]) or (theirs, True))
    monkeypatch.setattr(second, "prefers", lambda *a: True)
    mine = ranked("ls", "ls -la", "du -sh .")
    # sure (0.5 or more), no confidence, or no answer: the second model is never asked
    for conf in (0.5, 0.9, None):
        assert second.review(first, "disk usage", "linux", mine, False, conf) == (mine, False, conf)
    assert second.review(first, "disk usage", "linux", [], False, 0.1) == ([], False, 0.1)
    assert asked == []
    got, escalated, conf = second.review(first, "disk usage", "linux", mine, False, 0.2)
    assert asked == ["disk usage"] and escalated
    assert [r.command for r in got] == ["du -sh .", "ls", "ls -la"]  # theirs first, the first model's after
    assert conf is not None and conf != 0.2  # the second model's own confidence in its answer
    monkeypatch.setattr(second, "prefers", lambda *a: False)
    assert second.review(first, "disk usage", "linux", mine, False, 0.2) == (mine, False, 0.2)
    theirs[:] = ranked("ls")  # the same answer: nothing to choose
    monkeypatch.setattr(second, "prefers", lambda *a: pytest.fail("no choice to make"))
    assert second.review(first, "disk usage", "linux", mine, False, 0.2) == (mine, False, 0.2)
    theirs[:] = ranked("du -sh .")
    empty = ranked("")  # the first model said nothing: the second's answer, without scoring
    assert second.review(first, "disk usage", "linux", empty, False, 0.2)[0][0].command == "du -sh ."


def test_a_broken_pair_is_a_one_line_checkpoint_error(pair_dir, tmp_path):
    import shutil

    for name in ("first", "second", "plain"):
        shutil.copyfile(pair_dir / f"{name}.npz", tmp_path / f"{name}.npz")
    update_meta(tmp_path / "first.npz", {SECOND_KEY: {"file": "missing.npz", "below": 0.3}})
    with pytest.raises(CheckpointError, match="missing.npz: second model not found"):
        SecondOpinion.load(Runtime.load(tmp_path / "first.npz"))
    update_meta(tmp_path / "first.npz", {SECOND_KEY: {"file": "plain.npz", "below": 0.3}})
    with pytest.raises(CheckpointError, match="plain.npz: a model of a pair needs its own candidate ranking"):
        SecondOpinion.load(Runtime.load(tmp_path / "first.npz"))
    update_meta(tmp_path / "first.npz", {SECOND_KEY: {"file": "second.npz"}})
    with pytest.raises(CheckpointError, match="needs a file name"):
        SecondOpinion.load(Runtime.load(tmp_path / "first.npz"))
    update_meta(tmp_path / "first.npz", {SECOND_KEY: None})
    assert SecondOpinion.load(Runtime.load(tmp_path / "first.npz")) is None


def test_pair_command_writes_checks_and_removes(pair_dir, tmp_path):
    import shutil

    for name in ("first", "second", "plain"):
        shutil.copyfile(pair_dir / f"{name}.npz", tmp_path / f"{name}.npz")
    update_meta(tmp_path / "first.npz", {SECOND_KEY: None})
    (tmp_path / "other").mkdir()
    shutil.copyfile(pair_dir / "second.npz", tmp_path / "other" / "second.npz")
    first = tmp_path / "first.npz"
    cases = {"another folder": (["--second", tmp_path / "other" / "second.npz", "--below", "0.3"], "must be in"),
             "no bound": (["--second", tmp_path / "second.npz"], "needs --second FILE and --below"),
             "itself": (["--second", first, "--below", "0.3"], "another file"),
             "unranked second": (["--second", tmp_path / "plain.npz", "--below", "0.3"], "own candidate ranking"),
             "remove with more": (["--remove", "--below", "0.3"], "--remove takes no")}
    for args, message in cases.values():
        assert message in one_error_line(train("pair", "--model", first, *args))
        assert read_meta(first)["meta"].get(SECOND_KEY) is None  # nothing written
    res = train("pair", "--model", first, "--second", tmp_path / "second.npz", "--below", "0.25")
    assert res.exit_code == 0, res.stderr
    assert SecondSettings.from_meta(read_meta(first)["meta"]) == SecondSettings("second.npz", 0.25)
    assert train("pair", "--model", first, "--second", tmp_path / "second.npz", "--below", "0").exit_code == 2
    assert train("pair", "--model", first, "--remove").exit_code == 0
    assert SecondSettings.from_meta(read_meta(first)["meta"]) is None


def test_serving_and_eval_load_the_second_model(pair_dir, tmp_path, monkeypatch):
    from tinyllm.serve.suggest import Suggester

    s = Suggester.load(str(pair_dir / "first.npz"), str(tmp_path / "pairs.jsonl"))
    assert s.second is not None and s.second.path.endswith("second.npz")
    reviewed = []
    real = s.second.review
    monkeypatch.setattr(s.second, "review", lambda *a, **k: reviewed.append(a[1]) or real(*a, **k))
    s.suggest("list all files", "linux")
    assert reviewed == ["list all files"]  # serving passes every ranked answer through the pair
    assert Suggester.load(str(pair_dir / "plain.npz"), None).second is None
    rows = write_pairs(tmp_path / "rows.jsonl", repeat=1)
    res = train("eval", "--ckpt", pair_dir / "first.npz", "--jsonl", rows, "--engine", "numpy")
    assert res.exit_code == 0, res.stderr
    assert "second model second.npz below confidence 0.5" in res.stdout


def test_ship_takes_the_second_model_along_and_leaves_no_stale_one(pair_dir, tmp_path):
    import shutil

    from tinyllm.train.ship import ship

    for name in ("first", "second", "plain"):
        for ext in (".npz", ".idx"):
            shutil.copyfile(pair_dir / f"{name}{ext}", tmp_path / f"{name}{ext}")
    dest = tmp_path / "pkg" / "default.npz"
    dest.parent.mkdir()
    ship(tmp_path / "first.npz", tmp_path / "first.idx", {"model": {"exact_match": 0.1}}, dest)
    assert (dest.parent / "second.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()
    assert (dest.parent / "second.idx").is_file()
    assert SecondOpinion.load(Runtime.load(dest)) is not None  # the package's pair serves as it was scored
    ship(tmp_path / "plain.npz", tmp_path / "plain.idx", {"model": {"exact_match": 0.2}}, dest)
    assert not (dest.parent / "second.npz").exists() and not (dest.parent / "second.idx").exists()
    update_meta(tmp_path / "first.npz", {SECOND_KEY: {"file": "default.npz", "below": 0.3}})
    with pytest.raises(ValueError, match="cannot be called default.npz"):
        ship(tmp_path / "first.npz", tmp_path / "first.idx", {"model": {"exact_match": 0.3}}, dest)
