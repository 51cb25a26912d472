"""The real Suggester: learnt pairs answer close requests at once, input checks, warnings."""

import pytest

pytest.importorskip("torch")

from tinyllm.knowledge import userpairs  # noqa: E402
from tinyllm.serve.suggest import Suggester, SuggestError, word_f1  # noqa: E402
from tinyllm.train.export import export_inference  # noqa: E402

from .lm_fixtures import make_model, make_tokenizer  # noqa: E402


@pytest.fixture()
def suggester(tmp_path):
    tok = make_tokenizer(tmp_path)
    model_file = tmp_path / "micro.npz"
    export_inference(make_model(tok), tok, model_file, {"step": 1}, dtype="float32")
    pairs = tmp_path / "pairs.jsonl"
    return Suggester.load(str(model_file), str(pairs)), pairs


def test_word_f1():
    assert word_f1("deploy the blog", "deploy my blog now") > 0.6
    assert word_f1("deploy the blog", "list files") == 0.0


def test_learnt_pair_answers_close_request_after_reload(suggester):
    s, pairs = suggester
    before = s.suggest("deploy the blog site", "linux")
    assert before.source == "model"
    userpairs.add("deploy the blog site", "make -C ~/blog deploy", path=pairs)
    s.reload_user_pairs()
    exact = s.suggest("Deploy the blog site.", "linux")
    close = s.suggest("please deploy the blog site", "linux")
    assert (exact.command, exact.source) == ("make -C ~/blog deploy", "user")
    assert (close.command, close.source) == ("make -C ~/blog deploy", "user")
    assert len(close.alternatives) >= 1 and close.alternatives[0][0] == "make -C ~/blog deploy"
    far = s.suggest("show the calendar", "linux")
    assert far.source == "model"


def test_platform_specific_pair(suggester):
    s, pairs = suggester
    userpairs.add("open the downloads folder", "open ~/Downloads", platform="macos", path=pairs)
    s.reload_user_pairs()
    assert s.suggest("open the downloads folder", "macos").source == "user"
    assert s.suggest("open the downloads folder", "linux").source == "model"


def test_dangerous_learnt_command_is_flagged(suggester):
    s, pairs = suggester
    userpairs.add("wipe everything", "rm -rf ~", path=pairs)
    s.reload_user_pairs()
    out = s.suggest("wipe everything", "linux")
    assert out.command == "rm -rf ~" and out.warnings


@pytest.mark.parametrize("text, message", [("   ", "empty"), ("x" * 600, "too long")])
def test_bad_requests(suggester, text, message):
    s, _ = suggester
    with pytest.raises(SuggestError, match=message):
        s.suggest(text, "linux")
    with pytest.raises(SuggestError, match="platform"):
        s.suggest("list files", "windows")


def test_repeated_request_is_answered_from_the_cache(suggester, monkeypatch):
    s, pairs = suggester
    first = s.suggest("show the calendar", "linux")
    calls = []
    monkeypatch.setattr(s.runtime, "generate", lambda *a, **k: calls.append(a) or [])
    monkeypatch.setattr(s.runtime, "beam", lambda *a, **k: calls.append(a) or [])
    again = s.suggest("  show the   calendar. ", "linux")  # same request once normalised
    assert (again.command, again.alternatives) == (first.command, first.alternatives)
    assert calls == []
    s.suggest("show the calendar for march", "linux")  # a new request reaches the (broken) model
    assert calls


def test_cache_is_bounded_and_cleared_by_user_pairs(suggester, monkeypatch):
    from tinyllm.serve import suggest as suggest_mod

    s, pairs = suggester
    monkeypatch.setattr(suggest_mod, "CACHE_SIZE", 3)
    for word in ("alpha", "beta", "gamma", "delta"):
        s.suggest(f"print {word}", "linux")
    assert [k[0] for k in s._cache] == ["print beta", "print gamma", "print delta"]
    userpairs.add("deploy the blog site", "make -C ~/blog deploy", path=pairs)
    s.reload_user_pairs()
    assert not s._cache


def test_unreadable_pairs_file_leaves_the_model_serving(suggester, tmp_path):
    s, pairs = suggester
    userpairs.add("deploy the blog site", "make deploy", path=pairs)
    s.reload_user_pairs()
    assert s.user_pairs and s.user_pairs_problem is None
    pairs.unlink()
    pairs.mkdir()  # unreadable: a directory
    s.reload_user_pairs()
    assert s.user_pairs == [] and "Is a directory" in s.user_pairs_problem
    assert s.suggest("deploy the blog site", "linux").source == "model"
    fresh = Suggester.load(s.model_path, str(pairs))  # and at load time
    assert fresh.user_pairs_problem and fresh.suggest("list files", "linux").source == "model"


def test_the_retrieved_fallback_reads_the_index_beside_the_model_on_first_use(tmp_path, monkeypatch):
    """Serving gives the ranking the same fallback source as eval (the nearest training commands), without
    paying for the index at start-up: it is read only when the fallback asks."""
    from tinyllm.infer.rank import RankSettings
    from tinyllm.knowledge.retrieval import BM25Index

    tok = make_tokenizer(tmp_path)
    model_file = tmp_path / "ranked.npz"
    settings = RankSettings({"syntax": 1.0}, beam=2, fallback=2)
    export_inference(make_model(tok), tok, model_file, {"step": 1, "ranking": settings.to_meta()}, dtype="float32")
    index = BM25Index.build([{"instruction": "list all files", "command": "ls -la", "platform": "common"},
                             {"instruction": "show disk usage", "command": "du -sh .", "platform": "common"}])
    index.with_tools()
    index.save(model_file.with_suffix(".idx"))
    s = Suggester.load(str(model_file), str(tmp_path / "pairs.jsonl"))
    assert s.runtime.ranking is not None and s.index is None  # only the lexicon at start-up
    given = []
    monkeypatch.setattr(s.runtime, "ranked", lambda *a, retrieved=None, **k: given.append(retrieved) or ([], False))
    s.suggest("list all the files", "linux")
    assert s.index is None  # the fallback did not ask: nothing read
    assert given[0](1) == ["ls -la"] and s.index is not None
    corrupt = tmp_path / "corrupt.idx"
    corrupt.write_bytes(b"not an index")
    later = Suggester(s.runtime, None, None, s.tools, index_path=corrupt)
    assert later._nearest("list files", "linux")(2) == []  # an unreadable index: no fallback, still an answer
