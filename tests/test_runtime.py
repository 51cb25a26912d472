"""Runtime scoring and reranking agree with the decoder's own log-probabilities."""

import pytest

pytest.importorskip("torch")

from tinyllm.infer.runtime import Runtime  # noqa: E402
from tinyllm.train.export import export_inference  # noqa: E402

from .lm_fixtures import make_model, make_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rt")
    tok = make_tokenizer(tmp)
    export_inference(make_model(tok, seed=3), tok, tmp / "m.npz", {}, dtype="float32")
    return Runtime.load(tmp / "m.npz")


def test_score_equals_teacher_forced_cached_logprob(runtime):
    import numpy as np

    prompt = runtime.prompt_ids("list all files", "linux")
    command = "ls -la ~/notes"
    target = runtime.tokenizer.encode_target(command)
    m = runtime.model
    m.setup_cache(1, len(prompt) + len(target))
    logits = m.prefill([prompt])[0]
    total = 0.0
    for tok in target:
        z = logits - logits.max()
        total += float(z[tok] - np.log(np.exp(z).sum()))
        logits = m.decode(np.array([tok]))[0]
    (score,) = runtime.score(prompt, [command])
    assert score == pytest.approx(total / len(target), abs=1e-4)


def test_rerank_orders_by_score_and_includes_extra(runtime):
    prompt = runtime.prompt_ids("count lines in a file", "linux")
    ranked = runtime.rerank(prompt, ["wc -l notes.txt", "pwd"], beam=2, max_new_tokens=8)
    commands = [g.command for g in ranked]
    assert "wc -l notes.txt" in commands and "pwd" in commands
    assert [g.score for g in ranked] == sorted((g.score for g in ranked), reverse=True)
    assert ranked[0].score == pytest.approx(runtime.score(prompt, [commands[0]])[0])


@pytest.mark.parametrize("engine", ["numpy", "auto"])
def test_engine_cache_is_reused_and_stale_slots_do_not_leak(runtime, engine):
    """After a wide beam request, a smaller greedy one reuses the buffers and still matches a fresh engine."""
    from tinyllm.infer import generate

    def buffers(m) -> list[int]:
        caches = m.k_cache if isinstance(m.k_cache, list) else [m.k_cache]
        return [c.__array_interface__["data"][0] for c in caches]

    m = Runtime(runtime.ckpt, engine=engine).model
    prompt = runtime.prompt_ids("copy a directory recursively", "linux")
    generate.beam_search(m, runtime.prompt_ids("show disk usage of every folder here", "linux"), beam=4, n_best=4)
    before = buffers(m)
    got = generate.greedy(m, [prompt], 24)[0].ids
    assert buffers(m) == before  # reused, not reallocated
    fresh = type(m)(m.cfg, runtime.ckpt.weights)
    assert generate.greedy(fresh, [prompt], 24)[0].ids == got


def test_engine_choice_env_and_fallbacks(runtime, monkeypatch):
    from tinyllm.infer import cengine
    from tinyllm.infer.engine import NumpyTransformer
    from tinyllm.infer.runtime import EngineError, make_engine

    ckpt = runtime.ckpt
    monkeypatch.setenv("NL2CMD_ENGINE", "numpy")
    model, name = make_engine(ckpt)
    assert name == "numpy" and isinstance(model, NumpyTransformer)
    assert make_engine(ckpt, "numpy")[1] == "numpy"
    monkeypatch.setenv("NL2CMD_ENGINE", "bogus")
    with pytest.raises(EngineError, match="unknown engine 'bogus'"):
        make_engine(ckpt)
    monkeypatch.delenv("NL2CMD_ENGINE")
    monkeypatch.setattr(cengine, "unavailable_reason", lambda: "C kernels not built (test)")
    assert make_engine(ckpt)[1] == "numpy"  # auto falls back
    with pytest.raises(EngineError, match="c-int8 unavailable: C kernels not built"):
        make_engine(ckpt, "c-int8")


def test_auto_engine_is_c_where_built(runtime):
    from tinyllm.infer import cengine
    from tinyllm.infer.runtime import make_engine

    if cengine.unavailable_reason() is not None:
        pytest.skip(cengine.unavailable_reason())
    model, name = make_engine(runtime.ckpt, "auto")
    assert name == "c-int8" and isinstance(model, cengine.CTransformer)
