"""The tool lexicon (tinyllm.knowledge.tools) and the named-program decoding step built on it."""

from __future__ import annotations

import numpy as np
import pytest

from tinyllm.infer.runtime import Generated
from tinyllm.knowledge.retrieval import BM25Index
from tinyllm.knowledge.tools import ToolLexicon, request_words

ROWS = [
    {"instruction": "Show DNS queries with bandwhich", "command": "bandwhich --show-dns"},
    {"instruction": "Show all connections with bandwhich", "command": "sudo bandwhich"},
    {"instruction": "Search for a word in files", "command": "grep -r word ."},
    {"instruction": "search the logs for errors", "command": "grep error *.log"},
    {"instruction": "search for python files", "command": "find . -name '*.py'"},
    {"instruction": "find all text files", "command": "find . -name '*.txt'"},
    {"instruction": "find empty folders", "command": "find . -type d -empty"},
    {"instruction": "print lines that contain printf", "command": "grep printf main.c"},
    {"instruction": "format a number with printf", "command": "printf '%05d' 42"},
    {"instruction": "Run a single zellij session", "command": "zellij"},
    {"instruction": "concatenate two files", "command": "cat a b"},
]


def test_lexicon_names_only_words_that_mostly_start_their_commands():
    lex = ToolLexicon.build(ROWS)
    assert {"bandwhich", "grep", "find", "cat", "zellij", "printf"} <= lex.known  # sudo skipped
    assert "bandwhich" in lex.named and "find" in lex.named
    assert "search" not in lex.named  # three mentions, never the program
    assert "printf" in lex.known and "printf" not in lex.named  # 1 of 2 mentions: below NAMED_MIN_HITS
    assert "zellij" not in lex.named  # a single hit is not enough evidence
    assert lex.named_in("Show the bandwhich DNS view, then find more") == ["bandwhich", "find"]
    assert request_words("Use rsync. Then rsync again, with a.b") == ["use", "rsync", "then", "again", "with", "a.b"]


def test_lexicon_repairs_a_misspelt_first_word_to_the_longest_known_prefix():
    lex = ToolLexicon.build(ROWS)
    assert lex.repair("findwork", "find the work files") == "find"
    assert lex.repair("cata", "print a file") == "cat"
    assert lex.repair("grep", "anything") is None  # known
    assert lex.repair("zstdless", "open it with zstdless") is None  # the user named it
    assert lex.repair("ca", "x") is None and lex.repair("cax", "x") is None  # "ca" is shorter than MIN_PREFIX
    assert lex.repair("", "x") is None


def test_lexicon_round_trips_through_json_and_rejects_junk():
    lex = ToolLexicon.build(ROWS)
    assert ToolLexicon.from_json(lex.to_json()) == lex
    for bad in ({"known": ["a"]}, ["known"], {"known": [1], "named": []}):
        with pytest.raises(ValueError):
            ToolLexicon.from_json(bad)


def test_lexicon_counts_the_commands_each_program_starts_and_rates_their_support():
    """`starts` counts first programs (after sudo); `support` grows with the count, is 0 for a program
    training never started with, 1 past SUPPORT_CAP, and None for an older lexicon without counts."""
    from tinyllm.knowledge.tools import SUPPORT_CAP

    lex = ToolLexicon.build(ROWS)
    assert lex.starts == {"bandwhich": 2, "grep": 3, "find": 3, "printf": 1, "zellij": 1, "cat": 1}
    assert ToolLexicon.from_json(lex.to_json()).starts == lex.starts
    assert 1.0 > lex.support("grep") > lex.support("zellij") > lex.support("ls") == 0.0
    many = ToolLexicon.build([{"instruction": "list", "command": "ls"}] * (SUPPORT_CAP + 5))
    assert many.support("ls") == 1.0
    older = {k: v for k, v in lex.to_json().items() if k != "starts"}
    assert ToolLexicon.from_json(older).support("grep") is None
    for bad in ({"grep": -1}, {"grep": "3"}, {"grep": True}, ["grep"]):
        with pytest.raises(ValueError):
            ToolLexicon.from_json({**lex.to_json(), "starts": bad})


def test_with_tools_recounts_a_lexicon_without_program_counts():
    rows = [{**r, "platform": "linux", "source": "t"} for r in ROWS]
    index = BM25Index.build(rows)
    full = ToolLexicon.build(ROWS)
    index.tools = ToolLexicon(full.known, full.named, full.options)  # an older file's lexicon: no counts
    assert index.with_tools().starts == full.starts


def test_index_saves_its_tool_lexicon_and_older_files_load_without_one(tmp_path):
    rows = [{**r, "platform": "linux", "source": "t"} for r in ROWS]
    plain = BM25Index.build(rows)
    plain.save(tmp_path / "plain.idx")
    assert BM25Index.load(tmp_path / "plain.idx").tools is None
    withtools = BM25Index.build(rows)
    assert withtools.with_tools() == ToolLexicon.build(ROWS)
    withtools.save(tmp_path / "tools.idx")
    loaded = BM25Index.load(tmp_path / "tools.idx")
    assert loaded.tools == withtools.tools and loaded.search("dns queries")[0].command == "bandwhich --show-dns"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A Runtime over a random micro model with a tiny tokenizer (needs torch to initialise it)."""
    pytest.importorskip("torch")
    from tinyllm.formats.checkpoint import InferenceCheckpoint
    from tinyllm.infer.runtime import Runtime
    from tinyllm.train.model import state_to_numpy

    from .lm_fixtures import make_model, make_tokenizer

    tmp = tmp_path_factory.mktemp("named")
    tok = make_tokenizer(tmp)
    model = make_model(tok)
    return Runtime(InferenceCheckpoint(model.cfg, state_to_numpy(model), tok.model_bytes, {}), engine="numpy")


LEXICON = ToolLexicon(known=frozenset({"ls", "du", "find", "grep", "kill"}), named=frozenset({"du", "grep"}))


def test_forced_heads_are_scored_like_score_and_stop_at_a_word_boundary(runtime):
    from tinyllm.infer import generate

    prompt = runtime.prompt_ids("show disk usage with du", "linux")
    answer = "ls -la"
    heads = [runtime.tokenizer.encode_target(answer)] + [runtime.tokenizer.encode(w) for w in ("du", "grep", "ls")]
    starts = np.array(runtime.tokenizer.word_starts())
    outs = generate.greedy_from(runtime.model, [prompt] * 4, heads, starts, 24)
    # row 0 is teacher-forced to the end: its mean log-prob is exactly what Runtime.score computes
    assert runtime._clean(outs[0].ids) == answer and outs[0].finished
    assert outs[0].score == pytest.approx(runtime.score(prompt, [answer])[0], abs=1e-4)
    for word, out in zip(("du", "grep", "ls"), outs[1:]):
        command = runtime._clean(out.ids)
        assert command == word or command.startswith(word + " "), command
        assert out.score == pytest.approx(out.logprob / (len(out.ids) + out.finished))


def fake_decoder(scores):
    """A stand-in for generate.greedy_from: row i gets scores[i] and its head as the command."""
    from tinyllm.infer.generate import Candidate

    calls = []

    def decode(model, prompts, heads, after_head=None, max_new_tokens=64):
        calls.append(heads)
        return [Candidate(list(h), s, s, True) for h, s in zip(heads, scores)]

    return decode, calls


def test_request_without_a_named_program_keeps_the_answer(runtime, monkeypatch):
    from tinyllm.infer import generate

    decode, calls = fake_decoder([0.0, 0.0])
    monkeypatch.setattr(generate, "greedy_from", decode)
    answer = Generated("ls -la", -0.1, True)
    prompt = runtime.prompt_ids("list the files here", "linux")
    assert runtime.prefer_named_tool(prompt, "list the files here", answer, LEXICON) is answer
    grep_answer = Generated("grep -r x .", -0.1, True)  # names grep and already uses it
    assert runtime.prefer_named_tool(prompt, "grep for x", grep_answer, LEXICON) is grep_answer
    assert calls == []  # nothing to try: no decoding at all


@pytest.mark.parametrize("scores, answer_text, switched", [
    ([-0.5, -1.0], "ls -la", False),      # a known program that the model prefers stays
    ([-1.0, -0.5], "ls -la", True),       # the named program scores higher: it wins
    ([-0.5, -1.0], "duu -sh .", True),    # "duu" is no known program: the named one wins regardless
])
def test_named_program_wins_by_score_or_over_an_unknown_first_word(runtime, monkeypatch, scores, answer_text,
                                                                    switched):
    from tinyllm.infer import generate

    decode, calls = fake_decoder(scores)
    monkeypatch.setattr(generate, "greedy_from", decode)
    request = "show disk usage with du"
    answer = Generated(answer_text, -0.5, True)
    got = runtime.prefer_named_tool(runtime.prompt_ids(request, "linux"), request, answer, LEXICON)
    assert calls[0][0] == runtime.tokenizer.encode_target(answer_text)  # row 0 re-scores the answer
    assert calls[0][1] == runtime.tokenizer.encode("du")
    assert (got is not answer) == switched
    if switched:
        assert got.command == "du" and got.score == scores[1]


def test_an_answer_that_knows_its_mean_log_prob_is_not_decoded_again(runtime, monkeypatch):
    from tinyllm.infer import generate

    decode, calls = fake_decoder([-0.7])
    monkeypatch.setattr(generate, "greedy_from", decode)
    request = "show disk usage with du"
    prompt = runtime.prompt_ids(request, "linux")
    keep = Generated("ls -la", -3.0, True, mean_logprob=-0.6)
    assert runtime.prefer_named_tool(prompt, request, keep, LEXICON) is keep
    assert calls == [[runtime.tokenizer.encode("du")]]  # one row: the named program only
    lose = Generated("ls -la", -3.0, True, mean_logprob=-0.8)
    assert runtime.prefer_named_tool(prompt, request, lose, LEXICON).command == "du"


def test_greedy_answers_carry_their_mean_log_prob(runtime):
    from tinyllm.formats.prompt import EOS_ID
    from tinyllm.infer import generate

    prompt = runtime.prompt_ids("show disk usage", "linux")
    free = generate.greedy(runtime.model, [prompt], 12)[0]
    head = free.ids + ([EOS_ID] if free.finished else [])
    forced = generate.greedy_from(runtime.model, [prompt], [head], None, 12)[0]  # the same tokens, teacher-forced
    assert forced.ids == free.ids and forced.logprob == pytest.approx(free.logprob, abs=1e-6)
    assert forced.score == pytest.approx(free.logprob / (len(free.ids) + free.finished))
    assert runtime.generate([prompt], 12)[0].mean_logprob == pytest.approx(forced.score)


def test_misspelt_first_word_is_cut_back_to_the_known_program(runtime, monkeypatch):
    from tinyllm.infer import generate

    decode, calls = fake_decoder([0.0, -3.0])
    monkeypatch.setattr(generate, "greedy_from", decode)
    request = "list the files"  # names nothing: the repair is the only candidate
    got = runtime.prefer_named_tool(runtime.prompt_ids(request, "linux"), request,
                                    Generated("findx -l", 0.0, True), LEXICON)
    assert got.command == "find" and len(calls[0]) == 2  # an unknown first word loses even to a worse score


def test_suggester_answers_with_the_named_program_unless_the_model_turns_the_step_off(runtime, monkeypatch):
    from tinyllm.serve.suggest import Suggester

    rows = [{"instruction": "show disk usage", "command": "du -sh", "platform": "linux", "source": "t"}]
    index = BM25Index.build(rows)
    index.tools = LEXICON
    from tinyllm.infer import generate

    monkeypatch.setattr(runtime, "generate", lambda prompts, *a: [Generated("ls -la", -0.5, True)])
    monkeypatch.setattr(generate, "greedy_from", fake_decoder([-1.0, -0.2])[0])
    sugg = Suggester(runtime, index, None)
    s = sugg.suggest("show disk usage with du", "linux", n=1)
    assert s.command == "du"
    runtime.named_tools = False
    try:
        sugg._cache.clear()
        assert sugg.suggest("show disk usage with du", "linux").command == "ls -la"
    finally:
        runtime.named_tools = True


def test_word_starts_marks_eos_and_word_initial_pieces(runtime):
    from tinyllm.formats.prompt import EOS_ID

    starts = np.array(runtime.tokenizer.word_starts())
    assert starts[EOS_ID] and starts.any() and not starts.all()
    ids = runtime.tokenizer.encode("ls -la")
    assert starts[ids[0]]


def test_load_tool_lexicon_reads_only_the_lexicon(tmp_path):
    from tinyllm.knowledge.retrieval import load_tool_lexicon

    rows = [{**r, "platform": "linux", "source": "t"} for r in ROWS]
    index = BM25Index.build(rows)
    index.save(tmp_path / "plain.idx")
    assert load_tool_lexicon(tmp_path / "plain.idx") is None
    index.with_tools()
    index.save(tmp_path / "tools.idx")
    assert load_tool_lexicon(tmp_path / "tools.idx") == ToolLexicon.build(ROWS)
    (tmp_path / "junk.idx").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a retrieval index"):
        load_tool_lexicon(tmp_path / "junk.idx")


def test_suggester_load_takes_the_lexicon_without_the_bm25_index_when_the_prompt_needs_none(runtime, tmp_path):
    from tinyllm.formats.checkpoint import CheckpointError, save_inference
    from tinyllm.serve.suggest import Suggester

    model = tmp_path / "m.npz"
    save_inference(model, runtime.ckpt.weights, runtime.ckpt.config, runtime.ckpt.tokenizer_bytes, {})  # k = 0
    index = BM25Index.build([{**r, "platform": "linux", "source": "t"} for r in ROWS])
    index.with_tools()
    index.save(tmp_path / "m.idx")
    sugg = Suggester.load(str(model))
    assert sugg.index is None and sugg.tools == index.tools  # the ~150 ms BM25 load is skipped
    save_inference(model, runtime.ckpt.weights, runtime.ckpt.config, runtime.ckpt.tokenizer_bytes, {"rerank": 2})
    sugg = Suggester.load(str(model))
    assert sugg.index is not None and sugg.tools == index.tools  # the reranker searches it
    (tmp_path / "m.idx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable retrieval index"):
        Suggester.load(str(model))
